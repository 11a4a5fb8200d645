"""Score a teacher's refined 3D labels on LABELLED splits: the job's refinement as is, or with one knob varied.

The teacher runs once per clip with the job's views (cached); each value of ``--grid KEY=V1,V2,...`` (a
``Tracker3DConfig`` field; values read as YAML, ``null`` = off) refines the same outputs without floors, and each is
scored against the split's ground truth within 25 m (BEV mAP, NDS, mAVE, per-class AP@2m and AVE), as
``benchmarks/bench_data_engine.py`` scores its labels. Without ``--grid``: the job's own setting. ``--raw`` adds the
teacher's raw per-frame output (before any tracking), so the offline gain is visible. Several splits are scored one
after another (choose on a validation split, report on another), or as one with ``--pool``.

    python benchmarks/bench_refine_grid.py TEACHER.pt L_VAL T --grid stationary_max_speed=null,0.3,0.5,0.8,1.0,1.2
    python benchmarks/bench_refine_grid.py A.pt,B.pt L_VAL T U --raw          # an ensemble, the job's setting
    python benchmarks/bench_refine_grid.py TEACHER.pt L_VAL L_VAL2 --pool --grid hold_range_m=30,0

``benchmarks/RESULTS.md``'s V24 is L_val and a second labelled split pooled: ``make demo``'s ``labelled_val`` (seed 4)
and ``perception synth --rig configs/rigs/nuscenes_like_6cam.yaml --clips 12 --frames 30 --seed 5 --out L_VAL2``.

The cache (``--cache``, default ``runs/refine_grid/<the teacher files' sha256>``: ``default_cache``) holds one folder
per split, named as the split's folder; an explicit ``--cache`` is trusted to belong to this teacher and these views.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_data_engine as engine  # noqa: E402

from autolabel.tracking3d import Tracker3DConfig  # noqa: E402
from perception.atomic import atomic_write_text  # noqa: E402
from perception.hashing import file_sha256  # noqa: E402
from perception.labels import DRIVING_CLASSES  # noqa: E402

RAW = "raw per-frame"  # the row label of the teacher's output before tracking


def parse_grid(text: str) -> tuple[str, list]:
    key, _, values = text.partition("=")
    fields = {field.name for field in dataclasses.fields(Tracker3DConfig)}
    if key not in fields or not values:
        raise SystemExit(f"--grid {text!r}: expected KEY=V1,V2,... with KEY one of {sorted(fields)}")
    return key, [yaml.safe_load(value) for value in values.split(",")]


def default_cache(spec: str) -> Path:
    """``runs/refine_grid/<sha256>`` for the teacher ``A.pt`` or ensemble ``A.pt,B.pt``: the digests of its files, as
    the labels' provenance combines them, so another teacher never reads this one's outputs."""
    digests = []
    for part in spec.split(","):
        if not Path(part).is_file():
            raise SystemExit(f"teacher {spec!r}: {part} is not a file")
        digests.append(file_sha256(part))
    digests = sorted(set(digests))
    combined = digests[0] if len(digests) == 1 else hashlib.sha256("+".join(digests).encode()).hexdigest()
    return REPO / "runs" / "refine_grid" / combined[:12]


def table_header(key: str, classes: list[str]) -> list[str]:
    columns = ["split", key, "mAP", "NDS", "mAVE", *(f"AP@2m {c}" for c in classes), *(f"AVE {c}" for c in classes)]
    return ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]


def table_row(split: str, setting: str, result: dict, classes: list[str]) -> str:
    per_class = result["per_class"]

    def figure(value, digits: int) -> str:
        return "-" if value is None or value != value else f"{value:.{digits}f}"

    aps = [figure(per_class[c]["ap"].get("2.0"), 3) for c in classes]
    aves = [figure(per_class[c]["ave"], 2) for c in classes]
    head = [split, setting, f"{result['mAP']:.3f}", f"{result['NDS']:.3f}", f"{result['mAVE']:.3f}"]
    return "| " + " | ".join([*head, *aps, *aves]) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher", help="fleetvision teacher checkpoint (A.pt,B.pt: an ensemble)")
    parser.add_argument("clips", type=Path, nargs="+", help="labelled splits (clips with ground truth)")
    parser.add_argument("--grid", help="KEY=V1,V2,... over a Tracker3DConfig field (default: the job's setting)")
    parser.add_argument("--pool", action="store_true", help="score the splits as one (e.g. two validation splits)")
    parser.add_argument("--raw", action="store_true", help="also score the teacher's raw per-frame output")
    parser.add_argument("--job", type=Path, default=REPO / "configs/autolabel/jobs/fleetvision_offline.yaml")
    parser.add_argument("--cache", type=Path, help="teacher output cache (default runs/refine_grid/<teacher sha>)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    names = [clips.resolve().name for clips in args.clips]
    if len(set(names)) != len(names):
        raise SystemExit(f"splits {names}: their folder names name their caches, so they must differ")
    cache = args.cache or default_cache(args.teacher)
    job = yaml.safe_load(args.job.read_text())
    views = engine.job_views(job)
    base = engine.tracker_config(job.get("tracking3d", {}))  # the job's refinement without its floors
    key, values = parse_grid(args.grid) if args.grid else ("setting", [None])
    classes = list(DRIVING_CLASSES)
    described = f"{key} = {getattr(base, key)!r} there" if args.grid else "its tracking3d without floors"
    lines = [
        f"Teacher {args.teacher}, views {views}; job {args.job.name} ({described}); within {engine.MAX_RANGE:.0f} m.",
        "",
        *table_header(key, classes),
    ]
    print("\n".join(lines), flush=True)
    groups = [(args.clips, names)] if args.pool else [([clips], [name]) for clips, name in zip(args.clips, names)]
    for folders, folder_names in groups:
        raw = {}  # keyed by each clip's absolute path, so refine / score find it under any root (root / abs == abs)
        for clips, name in zip(folders, folder_names):
            outputs = engine.teacher_outputs(Path(args.teacher), clips, views, cache / name)
            raw.update({str(clips.resolve() / clip): frames for clip, frames in outputs.items()})
        split = f"{' + '.join(folder_names)} ({len(raw)} clips)"
        rows = [(RAW, raw)] if args.raw else []
        for value in values:
            config = dataclasses.replace(base, **{key: value}) if args.grid else base
            rows.append((f"{value}" if args.grid else "the job's", engine.refine(raw, Path("/"), config)))
        for setting, per_clip in rows:
            lines.append(table_row(split, setting, engine.score(per_clip, Path("/"), classes), classes))
            print(lines[-1], flush=True)
    if args.markdown:
        atomic_write_text(args.markdown, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
