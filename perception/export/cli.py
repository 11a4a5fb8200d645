"""``perception export``: a clip and its labels to the viewers robotics people use.

perception export rerun CLIP --out clip.rrd [--labels PSEUDO.json ...] [--detections RUN/detections.jsonl]
perception export foxglove CLIP --out clip.mcap [--labels ...] [--detections ...] [--topic-prefix /fleetvision]

The clip's own labels are shown as ``ground_truth`` (``--no-gt`` hides them); ``--labels`` adds label files
(pseudo-labels, predictions) named by their provenance; ``--detections`` adds a ``deploy run`` output.
Bad input exits with status 2; a missing viewer SDK with status 1 and the package to install.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

VIEWERS = {"rerun": ("rerun-sdk", ".rrd"), "foxglove": ("foxglove-sdk", ".mcap")}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perception export", description="Write a clip with its labels for Rerun (.rrd) or Foxglove (.mcap)."
    )
    sub = parser.add_subparsers(dest="viewer", required=True)
    for viewer, (package, suffix) in VIEWERS.items():
        p = sub.add_parser(viewer, help=f"one {suffix} file for {viewer.capitalize()} (needs {package})")
        p.add_argument("clip", type=Path, help="clip folder")
        p.add_argument("--out", type=Path, required=True, help=f"output {suffix} file")
        p.add_argument("--labels", type=Path, nargs="+", default=[], help="more labels.json files (pseudo-labels ...)")
        p.add_argument("--detections", type=Path, help="deploy run's detections.jsonl for this clip")
        p.add_argument("--classes", nargs="+", help="class names of --detections (default: the clip's label classes)")
        p.add_argument("--no-gt", action="store_true", help="leave out the clip's own labels")
        p.add_argument("--no-images", action="store_true", help="geometry and labels only (e.g. beside the bag)")
        p.add_argument("--max-frames", type=int, help="export at most this many frames")
        p.add_argument("--jpeg-quality", type=int, default=85, help="JPEG quality for video sources (default 85)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        if viewer == "foxglove":
            p.add_argument("--topic-prefix", default="/fleetvision", help="prefix of every topic but /tf")
            p.add_argument("--world-frame", default="odom", help="tf frame of the clip's world (default odom)")
            p.add_argument("--base-frame", default="base_link", help="tf frame of the ego vehicle (default base_link)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from perception.clip import ClipError, DriveClip
    from perception.labels import LabelsError

    args = _parser().parse_args(argv)
    package, suffix = VIEWERS[args.viewer]
    try:
        if args.out.suffix.lower() != suffix:
            raise ClipError(f"--out {args.out}: expected a {suffix} file for {args.viewer}, found {args.out.suffix!r}")
        clip = DriveClip.open(args.clip)
        from perception.export.scene import load_sources

        sources = load_sources(
            clip, labels=args.labels, detections=args.detections, classes=args.classes, include_gt=not args.no_gt
        )
        options = dict(
            max_frames=args.max_frames,
            images=not args.no_images,
            jpeg_quality=args.jpeg_quality,
            progress=not args.no_progress,
        )
        try:
            if args.viewer == "rerun":
                from perception.export.rerun import export_rerun

                summary = export_rerun(clip, args.out, sources, **options)
            else:
                from perception.export.foxglove import export_foxglove

                summary = export_foxglove(
                    clip,
                    args.out,
                    sources,
                    topic_prefix=args.topic_prefix,
                    world_frame=args.world_frame,
                    base_frame=args.base_frame,
                    **options,
                )
        except ModuleNotFoundError as error:
            print(
                f"perception export {args.viewer}: {error.name} is not installed: pip install {package} "
                f"(or fleetvision[robot])",
                file=sys.stderr,
            )
            return 1
    except (ClipError, LabelsError, OSError, ValueError) as error:
        print(f"perception export {args.viewer}: error: {error}", file=sys.stderr)
        return 2
    shown = ", ".join(f"{name} ({count} 3D boxes)" for name, count in summary.get("boxes3d", {}).items())
    shown = shown or ", ".join(s.name for s in sources) or "none"
    print(
        f"wrote {args.out}: {summary['frames']} frames x {summary['cameras']} cameras, labels: {shown} "
        f"({args.out.stat().st_size / 1e6:.1f} MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
