"""The offline 3D teacher's speed: the time-reversed pass reusing the forward pass's BEV features, against encoding
every frame in every pass, on the same clips in alternating runs (this machine is shared and noisy: ratios are
taken per clip and run, side by side). Every pair of runs must give identical boxes, or the benchmark fails.

    python benchmarks/bench_offline_teacher.py TEACHER.pt CLIPS [--clips 6] [--repeats 3] [--markdown OUT.md]

TEACHER as ``autolabel --teacher fleetvision:...`` takes it (``A.pt,B.pt`` is an ensemble); the views are the
offline job's (``configs/autolabel/jobs/fleetvision_offline.yaml``: forward and time-reversed) unless ``--mirror``
adds the mirrored ones. Timed: ``FleetvisionTeacher.predict_clip`` on a clip's frames (image preparation, both
passes, BEV fusion of the views and decoding), the clip's videos decoded beforehand.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from perception.atomic import atomic_write_text  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("teacher", help="checkpoint, or A.pt,B.pt for an ensemble")
    parser.add_argument("clips", type=Path, help="a folder of drive clips")
    parser.add_argument("--clips", dest="num_clips", type=int, default=6, help="the first N clips (default 6)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating pairs of runs per clip (default 3)")
    parser.add_argument("--mirror", action="store_true", help="add the mirrored views (four passes per clip)")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args(argv)

    import torch

    from autolabel.jobconfig import parse_teacher_spec
    from autolabel.teachers.fleetvision import FleetvisionTeacher
    from perception.clip import DriveClip, find_clips
    from perception.labels import Boxes3D

    checkpoints = parse_teacher_spec(f"fleetvision:{args.teacher}")["init_args"]["checkpoint_path"]
    options = {"score_threshold": 0.05, "max_boxes": 100, "bidirectional": True, "mirror": args.mirror}
    variants = {
        "reused": FleetvisionTeacher(checkpoints, **options),
        "every pass": FleetvisionTeacher(checkpoints, **options, feature_cache_mb=0),
    }
    paths = find_clips(args.clips)[: args.num_clips]
    if not paths:
        raise SystemExit(f"{args.clips}: no drive clips")
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    ratios, frames_total = [], 0
    for path in paths:
        clip = DriveClip.open(path)
        frames = list(clip.frames())  # decoded once, outside the timed runs
        frames_total += len(frames)
        for repeat in range(args.repeats):
            order = list(variants) if repeat % 2 == 0 else list(variants)[::-1]
            timed, boxes = {}, {}
            for name in order:
                start = time.perf_counter()
                boxes[name] = variants[name].predict_clip(clip, frames)
                timed[name] = time.perf_counter() - start
                seconds[name].append(timed[name])
            for a, b in zip(*boxes.values()):
                for key in Boxes3D._shapes:
                    if not np.array_equal(getattr(a, key), getattr(b, key)):
                        raise SystemExit(f"{path}: the two variants' boxes differ ({key}); the reuse is wrong")
            ratios.append(timed["every pass"] / timed["reused"])
        print(f"{path.name}: {len(frames)} frames, reused {timed['reused']:.2f} s, every pass "
              f"{timed['every pass']:.2f} s (last repeat)", flush=True)  # fmt: skip
    runs = len(paths) * args.repeats
    lines = [
        f"Teacher `{args.teacher}`, {len(paths)} clips of `{args.clips}` ({frames_total} frames), views "
        f"{variants['reused'].views} (reversed, mirrored); {args.repeats} alternating pairs per clip; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads. Boxes identical in all {runs} pairs.",
        "",
        "| variant | s per clip, median | frames/s | speed-up, median of per-pair ratios |",
        "|---|---|---|---|",
    ]
    per_clip_frames = frames_total / len(paths)
    for name in variants:
        median = statistics.median(seconds[name])
        ratio = f"**{statistics.median(ratios):.2f}x**" if name == "reused" else "1.00x"
        lines.append(f"| {name} | {median:.2f} | {per_clip_frames / median:.1f} | {ratio} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        atomic_write_text(args.markdown, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
