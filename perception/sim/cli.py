"""``perception synth``: generate a synthetic multi-camera dataset of drive clips."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perception synth",
        description="Generate synthetic multi-camera drive clips (images, poses, 3D/2D boxes, BEV maps) for a rig.",
    )
    parser.add_argument("--rig", required=True, type=Path, help="rig.yaml (e.g. configs/rigs/nuscenes_like_6cam.yaml)")
    parser.add_argument("--clips", type=int, default=4, help="number of clips (default 4)")
    parser.add_argument("--frames", type=int, default=40, help="frames per clip (default 40)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (clips clip_0000, clip_0001, ...)")
    parser.add_argument(
        "--seed", type=int, default=0, help="dataset seed (default 0); clip i uses a seed derived from it"
    )
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate, Hz (default 10)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument("--image-format", default="mp4", choices=["mp4", "avi", "jpg", "png"], help="camera storage")
    parser.add_argument(
        "--capture-offset",
        type=float,
        default=0.008,
        help="seconds between consecutive cameras' capture times, rig order (default 0.008)",
    )
    parser.add_argument("--bev-range", type=float, default=25.0, help="BEV grid half extent, metres (default 25)")
    parser.add_argument("--bev-resolution", type=float, default=0.5, help="BEV cell size, metres (default 0.5)")
    parser.add_argument(
        "--weather",
        choices=["fog", "low_light", "snow"],
        default=None,
        help="render every clip under this test condition (same world and labels as the clear clip of the seed)",
    )
    parser.add_argument("--weather-severity", type=int, choices=[1, 2, 3], default=2, help="1..3 (default 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from perception.geometry import BevGrid
    from perception.rig import Rig, RigError
    from perception.sim.generate import generate_dataset

    for name in ("clips", "frames", "workers"):
        if getattr(args, name) < 1:
            print(
                f"perception synth: --{name.replace('_', '-')}: expected >= 1, found {getattr(args, name)}",
                file=sys.stderr,
            )
            return 2
    start = time.perf_counter()
    try:
        rig = Rig.load(args.rig)
        grid = BevGrid(-args.bev_range, args.bev_range, -args.bev_range, args.bev_range, args.bev_resolution)
        paths = generate_dataset(
            args.out,
            rig,
            clips=args.clips,
            frames=args.frames,
            seed=args.seed,
            workers=args.workers,
            progress=not args.quiet,
            fps=args.fps,
            image_format=args.image_format,
            capture_offset=args.capture_offset,
            bev_grid=grid,
            weather=args.weather,
            weather_severity=args.weather_severity,
        )
    except (RigError, FileExistsError, ValueError) as error:
        print(f"perception synth: {error}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    print(f"wrote {len(paths)} clips x {args.frames} frames x {len(rig)} cameras to {args.out} in {elapsed:.1f} s")
    return 0
