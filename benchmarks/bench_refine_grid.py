"""Choose a 3D refinement setting on a LABELLED split: the job's refinement with one knob varied, each value scored.

The teacher runs once per clip with the job's views (cached under ``--cache``); each value of ``--grid KEY=V1,V2,...``
(a ``Tracker3DConfig`` field; values read as YAML, ``null`` = off) refines the same outputs without floors and is
scored against the split's ground truth within 25 m (BEV mAP, NDS, mAVE, per-class AVE), as
``benchmarks/bench_data_engine.py`` scores its labels. Choose on a validation split, report on another.

    python benchmarks/bench_refine_grid.py TEACHER.pt CLIPS --grid stationary_max_speed=null,0.3,0.5,0.8,1.0,1.2
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_data_engine as engine  # noqa: E402

from autolabel.tracking3d import Tracker3DConfig  # noqa: E402
from perception.labels import DRIVING_CLASSES  # noqa: E402


def parse_grid(text: str) -> tuple[str, list]:
    key, _, values = text.partition("=")
    fields = {field.name for field in dataclasses.fields(Tracker3DConfig)}
    if key not in fields or not values:
        raise SystemExit(f"--grid {text!r}: expected KEY=V1,V2,... with KEY one of {sorted(fields)}")
    return key, [yaml.safe_load(value) for value in values.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher", type=Path, help="fleetvision teacher checkpoint (A.pt,B.pt: an ensemble)")
    parser.add_argument("clips", type=Path, help="a labelled split (clips with ground truth)")
    parser.add_argument("--grid", required=True, help="KEY=V1,V2,... over a Tracker3DConfig field")
    parser.add_argument("--job", type=Path, default=REPO / "configs/autolabel/jobs/fleetvision_offline.yaml")
    parser.add_argument("--cache", type=Path, default=REPO / "runs" / "refine_grid", help="teacher output cache")
    args = parser.parse_args(argv)
    key, values = parse_grid(args.grid)
    job = yaml.safe_load(args.job.read_text())
    views = engine.job_views(job)
    base = engine.tracker_config(job.get("tracking3d", {}))  # the job's refinement without its floors
    raw = engine.teacher_outputs(args.teacher, args.clips, views, args.cache / args.clips.name)
    classes = list(DRIVING_CLASSES)
    print(f"{args.clips} ({len(raw)} clips), job {args.job.name} ({key} = {getattr(base, key)!r} there)")
    print(f"| {key} | mAP | NDS | mAVE | " + " | ".join(f"AVE {name}" for name in classes) + " |")
    print("|---" * (len(classes) + 4) + "|")
    for value in values:
        result = engine.score(
            engine.refine(raw, args.clips, dataclasses.replace(base, **{key: value})), args.clips, classes
        )
        per_class = result["evaluator"].compute()["per_class"]
        ave = " | ".join(f"{per_class[name]['ave']:.2f}" for name in classes)
        print(f"| {value} | {result['mAP']:.3f} | {result['NDS']:.3f} | {result['mAVE']:.3f} | {ave} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
