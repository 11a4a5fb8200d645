"""The data-engine curve: do pseudo-labels train a student nearly as well as ground truth?

Splits of the synthetic world (different seeds): L (labelled, ground truth), L_val (labelled, for choosing the
pseudo-label thresholds), U (unlabelled: its ground truth is used only to score), T (test). The offline teacher is
trained on L (or given with --teacher), labels L_val without score floors, per-class floors are chosen there
(``autolabel calibrate``), then it labels U with them. Three students with the same recipe and steps:
(A) L only; (B) L + U with pseudo-labels; (C) L + U with ground truth (the oracle), each tested on T.

Also measured: pseudo-label quality on U (BEV mAP, NDS, mAVE, per-class precision/recall at 2 m) for the refined
labels and for the teacher's raw per-frame output, and an ablation of the offline steps (each one switched off,
the teacher's views one by one) on U, from teacher outputs computed once.

    .venv/bin/python benchmarks/bench_data_engine.py --out runs/data_engine [--teacher CKPT] [--student-steps 300]

Every stage is the public CLI (subprocesses) except the ablation, which reuses the teacher's outputs in-process.
Stages leave their outputs in --out and are skipped when present (rerun to continue). Writes
benchmarks/results/data_engine.md and data_engine.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SPLITS = {"labelled": 1, "unlabelled": 2, "test": 3, "labelled_val": 4}  # split -> synth seed
STUDENTS = {
    "labelled_only": "(A) L only",
    "labelled_plus_pseudo": "(B) L + U pseudo-labels",
    "oracle": "(C) L + U ground truth",
}
MAX_RANGE = 25.0  # metres: the students' BEV grid half-width


def run(command: list[str], log: Path) -> None:
    """Run one CLI stage; its output goes to ``log``; a failure stops the benchmark with the log's tail."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.perf_counter()
    with open(log, "w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if done.returncode != 0:
        tail = log.read_text().splitlines()[-15:]
        raise SystemExit(f"stage failed (exit {done.returncode}): {' '.join(command)}\n" + "\n".join(tail))
    print(f"  {log.stem}: {time.perf_counter() - started:.0f} s", flush=True)


def tool(name: str) -> list[str]:
    return [sys.executable, "-m", name]


def latest(pattern: str, root: Path) -> Path:
    found = sorted(root.glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(f"{root}: nothing matches {pattern}")
    return found[-1]


# ------------------------------------------------------------------------------------------------ stages
def make_data(args: argparse.Namespace, out: Path) -> dict[str, Path]:
    sizes = {"labelled": args.labelled, "unlabelled": args.unlabelled, "test": args.test, "labelled_val": args.val}
    paths = {}
    for split, seed in SPLITS.items():
        path = out / "data" / split
        paths[split] = path
        if not (path / f"clip_{sizes[split] - 1:04d}" / "labels.json").is_file():
            run(
                [*tool("perception"), "synth", "--rig", args.rig, "--clips", str(sizes[split]), "--frames",
                 str(args.frames), "--seed", str(seed), "--out", str(path)],
                out / "logs" / f"synth_{split}.log",
            )  # fmt: skip
    return paths


def fit(config: str, overrides: list[str], root: Path, log: Path) -> Path:
    """``perception fit`` (if its exported model is not there yet); returns the exported model.pt."""
    done = sorted(root.glob("logs/*/model.pt"))
    if not done:
        run([*tool("perception"), "fit", "-c", config, *overrides, f"--trainer.default_root_dir={root}"], log)
    return latest("logs/*/model.pt", root)


def teacher(args: argparse.Namespace, out: Path, data: dict[str, Path]) -> Path:
    if args.teacher:
        return Path(args.teacher)
    overrides = [
        f"--data.train={data['labelled']}",
        f"--data.val={data['labelled_val']}",
        f"--trainer.max_steps={args.teacher_steps}",
        "--trainer.max_time=null",
        "--trainer.enable_progress_bar=false",
    ]
    return fit(args.teacher_config, overrides, out / "teacher", out / "logs" / "teacher_fit.log")


def autolabel(teacher_path: Path, clips: Path, label_dir: Path, job: list[str], log: Path) -> None:
    if not (label_dir / "config.yaml").is_file():
        command = [
            *tool("autolabel"),
            str(clips),
            "--out",
            str(label_dir),
            *job,
            "--teacher",
            f"fleetvision:{teacher_path}",
        ]
        run([*command, "--no-progress"], log)


def evaluate(label_dir: Path, gt: Path, out_json: Path, log: Path) -> dict[str, Any]:
    if not out_json.is_file():
        run([*tool("autolabel"), "eval", str(label_dir), "--gt", str(gt), "--max-range", str(MAX_RANGE),
             "--out", str(out_json)], log)  # fmt: skip
    return json.loads(out_json.read_text())["overall"]["bev"]


def student(
    args: argparse.Namespace, name: str, out: Path, data: dict[str, Path], pseudo: Path, quality: Path | None = None
) -> dict[str, Any]:
    """``quality``: B trains on soft pseudo-labels weighted by this score calibration (``--soft-labels``)."""
    soft = name == "labelled_plus_pseudo" and quality is not None
    root = out / "students" / (f"{name}_soft" if soft else name)  # never reuse a hard-label B for a soft run
    train = [str(data["labelled"])] if name == "labelled_only" else [str(data["labelled"]), str(data["unlabelled"])]
    overrides = [
        f"--data.train={json.dumps(train)}",
        f"--data.val={data['labelled_val']}",
        f"--trainer.max_steps={args.student_steps}",
        "--trainer.max_time=null",
        "--trainer.max_epochs=1000",
        "--trainer.limit_val_batches=0",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.enable_progress_bar=false",
        *args.student_overrides,
    ]
    if name == "labelled_plus_pseudo":
        overrides.append(f"--data.train_labels={json.dumps({str(data['unlabelled']): str(pseudo)})}")
        overrides += [f"--data.train_labels_quality={quality}"] if soft else []
    fit(args.student_config, overrides, root, out / "logs" / f"student_{name}_fit.log")
    result = root / "test_metrics.json"
    if not result.is_file():
        ckpt = latest("checkpoints/last*.ckpt", root)
        run(
            [*tool("perception"), "test", "-c", args.student_config, *args.student_overrides,
             f"--data.test={data['test']}", f"--ckpt_path={ckpt}", f"--trainer.default_root_dir={root / 'test'}",
             "--trainer.enable_progress_bar=false"],
            out / "logs" / f"student_{name}_test.log",
        )  # fmt: skip
        metrics = json.loads(latest("logs/*/metrics/test_*.json", root / "test").read_text())
        result.write_text(json.dumps(metrics["bev_detection"], indent=1))
    return json.loads(result.read_text())


# ------------------------------------------------------------------------------------------------ ablation
def teacher_outputs(teacher_path: Path, clips: Path, views: dict[str, bool], cache: Path) -> dict[str, list]:
    """Per clip: the teacher's per-frame 3D boxes (job classes) with the given views, cached as npz."""
    from autolabel.jobconfig import parse_teacher_spec
    from autolabel.teachers.fleetvision import FleetvisionTeacher
    from perception.clip import DriveClip, find_clips
    from perception.labels import Boxes3D

    cache.mkdir(parents=True, exist_ok=True)
    tag = "-".join(k for k, v in views.items() if v) or "single"
    out: dict[str, list] = {}
    model = None
    for path in find_clips(clips):
        file = cache / f"{path.name}.{tag}.npz"
        if not file.is_file():
            if model is None:  # A.pt,B.pt: an ensemble, read as autolabel reads --teacher fleetvision:A.pt,B.pt
                checkpoints = parse_teacher_spec(f"fleetvision:{teacher_path}")["init_args"]["checkpoint_path"]
                model = FleetvisionTeacher(checkpoints, score_threshold=0.05, max_boxes=100, **views)
            clip = DriveClip.open(path)
            boxes = model.predict_clip(clip, clip.frames())
            np.savez(file, **{f"{i}_{k}": getattr(b, k) for i, b in enumerate(boxes) for k in Boxes3D._shapes})
        data = np.load(file)
        count = len({key.split("_")[0] for key in data.files})
        out[path.name] = [
            Boxes3D(**{k: data[f"{i}_{k}"] for k in Boxes3D._shapes if f"{i}_{k}" in data.files}) for i in range(count)
        ]
    return out


def score(per_clip: dict[str, list], gt_root: Path, classes: list[str]) -> dict[str, Any]:
    from perception.clip import DriveClip
    from perception.metrics.bev_detection import BevDetectionEvaluator

    evaluator = BevDetectionEvaluator(classes, max_range=MAX_RANGE)
    for name, frames in per_clip.items():
        gt = DriveClip.open(gt_root / name).labels
        assert gt is not None and gt.classes == classes
        for pred, truth in zip(frames, gt.frames):
            evaluator.add_frame(pred, truth.boxes3d)
    result = evaluator.compute()
    keys = ("mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE", "per_class")
    return {"evaluator": evaluator, **{k: result[k] for k in keys}}


def refine(raw: dict[str, list], clips: Path, config) -> dict[str, list]:
    from autolabel.tracking3d import track_and_refine_3d
    from perception.clip import DriveClip
    from perception.labels import DRIVING_CLASSES

    out = {}
    for name, frames in raw.items():
        clip = DriveClip.open(clips / name)
        out[name], _ = track_and_refine_3d(
            frames, clip.world_from_ego, clip.timestamps, classes=list(DRIVING_CLASSES), config=config
        )
    return out


def job_views(job_document: dict) -> dict[str, bool]:
    """The teacher views an autolabel job runs (``teacher.init_args``: bidirectional, mirror)."""
    teacher_args = job_document["teacher"].get("init_args", {})
    return {key: bool(teacher_args.get(key, False)) for key in ("bidirectional", "mirror")}


def tracker_config(job_tracking: dict):
    """The job's ``tracking3d`` section as a Tracker3DConfig without floors (they are chosen per variant)."""
    from autolabel.tracking3d import Tracker3DConfig

    return Tracker3DConfig(**{k: v for k, v in job_tracking.items() if k != "class_min_score"})


def floor_boxes(per_clip: dict[str, list], floors: dict[str, float], classes: list[str]) -> dict[str, list]:
    limit = np.array([floors.get(c, 0.0) for c in classes])
    return {name: [b[b.score >= limit[b.class_id]] for b in frames] for name, frames in per_clip.items()}


def ablation(
    args: argparse.Namespace, teacher_path: Path, data: dict[str, Path], job_tracking: dict, views: dict[str, bool]
) -> list[dict]:
    """Pseudo-label quality on U: raw teacher, the full chain (the job's teacher ``views``), the chain with each step
    switched off, and with the teacher's views changed."""
    from autolabel.calibrate import DistinctObjects, set_floors_by_objects
    from autolabel.tracking3d import Tracker3DConfig
    from perception.clip import DriveClip, find_clips
    from perception.labels import DRIVING_CLASSES

    classes = list(DRIVING_CLASSES)
    cache = Path(args.out) / "ablation_cache"
    base = tracker_config(job_tracking)
    rows = []

    objects = DistinctObjects(MAX_RANGE)  # L_val's ground-truth objects, counted as `autolabel calibrate` counts them
    for path in find_clips(data["labelled_val"]):
        for frame in DriveClip.open(path).labels.frames:
            objects.add(path.name, frame.boxes3d)

    def floors_on_val(per_clip_val: dict[str, list]) -> dict[str, float]:
        """As `autolabel calibrate`: F1-best per class, none for a class of fewer than FEW_OBJECTS objects."""
        chosen = score(per_clip_val, data["labelled_val"], classes)["evaluator"].score_floors()
        return {name: entry["floor"] for name, entry in set_floors_by_objects(chosen, objects).items()}

    def add(name: str, config: Tracker3DConfig | None, teacher_views: dict[str, bool]) -> None:
        raw_val = teacher_outputs(teacher_path, data["labelled_val"], teacher_views, cache / "labelled_val")
        raw_u = teacher_outputs(teacher_path, data["unlabelled"], teacher_views, cache / "unlabelled")
        if config is None:  # the teacher's raw per-frame output, with floors chosen on L_val the same way
            val, u = raw_val, raw_u
        else:
            val, u = refine(raw_val, data["labelled_val"], config), refine(raw_u, data["unlabelled"], config)
        floors = floors_on_val(val) if name != "no class floors" else {}
        result = score(floor_boxes(u, floors, classes), data["unlabelled"], classes)
        per_class = result["per_class"]
        rows.append(
            {
                "variant": name,
                **{k: result[k] for k in ("mAP", "NDS", "mAVE")},
                "precision@2m": {c: e.get("precision") for c, e in per_class.items() if e["num_gt"]},
                "recall@2m": {c: e.get("recall") for c, e in per_class.items() if e["num_gt"]},
            }
        )
        print(f"  ablation {name:32s} mAP {result['mAP']:.3f} NDS {result['NDS']:.3f} mAVE {result['mAVE']:.2f}")

    add("teacher raw per-frame (the job's views)", None, views)
    add("full offline chain", base, views)
    for label, change in [
        ("- class vote", {"class_vote": False}),
        ("- one size per track", {"rigid_size": False}),
        ("- smoothing", {"smooth": False}),
        ("- trajectory velocity", {"trajectory_velocity": False}),
        ("- stationary hold", {"hold_stationary": False}),
        ("- still by straight-line speed", {"stationary_max_speed": None}),
        ("- gap filling", {"max_fill_gap": 0}),
        ("- extrapolation", {"extrapolate_s": 0.0}),
        ("- short/weak track drop", {"min_length": 1, "min_track_score": 0.0}),
    ]:
        add(label, dataclasses.replace(base, **change), views)
    add("no class floors", base, views)
    mirror = {**views, "mirror": not views["mirror"]}
    add(f"{'- mirror view' if views['mirror'] else '+ mirror view'}", base, mirror)
    if views["bidirectional"]:
        add("- backward pass (online teacher)", base, {"bidirectional": False, "mirror": False})
    return rows


def teacher_on_test(
    args: argparse.Namespace, teacher_path: Path, data: dict[str, Path], job_tracking: dict, views: dict[str, bool]
) -> dict[str, dict[str, float]]:
    """The offline teacher itself scored on T (raw per-frame and refined, no floors): the ceiling B's labels set."""
    from perception.labels import DRIVING_CLASSES

    config = tracker_config(job_tracking)
    raw = teacher_outputs(teacher_path, data["test"], views, Path(args.out) / "ablation_cache" / "test")
    out = {}
    for name, per_clip in (("raw per-frame", raw), ("refined", refine(raw, data["test"], config))):
        result = score(per_clip, data["test"], list(DRIVING_CLASSES))
        out[name] = {k: result[k] for k in ("mAP", "NDS", "mAVE")}
        print(f"  teacher on T, {name:14s} mAP {result['mAP']:.3f} NDS {result['NDS']:.3f}")
    return out


def per_class_ratio(b: dict[str, Any], c: dict[str, Any], min_gt: int = 30) -> dict[str, float]:
    """B / C of AP@2m for every class with at least ``min_gt`` ground-truth boxes in T (the issue's per-class bar)."""
    out = {}
    for name, entry in c["per_class"].items():
        if (entry.get("num_gt") or 0) >= min_gt:
            oracle, pseudo = entry["ap"].get("2.0"), b["per_class"].get(name, {}).get("ap", {}).get("2.0")
            out[name] = pseudo / oracle if oracle and pseudo is not None else float("nan")
    return out


# ------------------------------------------------------------------------------------------------ report
def report(results: dict[str, Any], path_md: Path, command: str) -> None:
    students = results["students"]
    lines = [
        "# Data-engine curve (synthetic world)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {results['machine']}  ",
        f"Splits (clips x {results['frames']} frames, 6 cameras): L {results['sizes']['labelled']}, "
        f"L_val {results['sizes']['labelled_val']}, U {results['sizes']['unlabelled']}, T {results['sizes']['test']}; "
        f"teacher: `{results['teacher']}`; students: {results['student_steps']} steps each.",
        (
            f"B: soft pseudo-labels (U labelled without floors, each box weighted by `{results['soft_labels']}`)."
            if results.get("soft_labels")
            else f"B: pseudo-labels with the floors of `{results['floors']['file']}`."
        ),
        "",
        "| student | BEV mAP | NDS | mAVE | " + " | ".join(f"AP {c} @2m" for c in results["classes"]) + " |",
        "|---|---|---|---|" + "---|" * len(results["classes"]),
    ]
    for key, label in STUDENTS.items():
        s = students[key]
        aps = [s["per_class"].get(c, {}).get("ap", {}).get("2.0") for c in results["classes"]]
        lines.append(
            f"| {label} | {s['mAP']:.3f} | {s['NDS']:.3f} | {s['mAVE']:.2f} | "
            + " | ".join("-" if a is None or a != a else f"{a:.3f}" for a in aps)
            + " |"
        )
    engine = results["data_engine"]
    lines += [
        "",
        f"B / C (pseudo-labels vs ground truth) = **{engine['b_over_c']:.1%}**; share of the oracle's gain recovered "
        f"(B - A) / (C - A) = **{engine['recovered_gain']:.1%}**.",
        "",
        "Per class with >= 30 ground-truth boxes in T, B / C of AP@2m: "
        + ", ".join(f"{c} {r:.0%}" if r == r else f"{c} n/a" for c, r in engine["per_class_b_over_c"].items())
        + ".",
        "",
        *(
            [
                "The teacher itself on T (no floors), the ceiling its labels set: "
                + ", ".join(
                    f"{k} mAP {v['mAP']:.3f} / NDS {v['NDS']:.3f}" for k, v in results["teacher_on_test"].items()
                )
                + ".",
                "",
            ]
            if "teacher_on_test" in results
            else []
        ),
        "## Pseudo-label quality on U (within 25 m)",
        "",
        "| variant | mAP | NDS | mAVE |",
        "|---|---|---|---|",
    ]
    quality = results["pseudo_labels"]
    lines.append(f"| the job's labels (`autolabel eval`) | {quality['mAP']:.3f} | {quality['NDS']:.3f} | "
                 f"{quality['mAVE']:.2f} |")  # fmt: skip
    for row in results.get("ablation", []):
        lines.append(f"| {row['variant']} | {row['mAP']:.3f} | {row['NDS']:.3f} | {row['mAVE']:.2f} |")
    lines.append("")
    path_md.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "data_engine")
    parser.add_argument("--rig", default="configs/rigs/nuscenes_like_6cam.yaml")
    parser.add_argument("--labelled", type=int, default=12)
    parser.add_argument("--val", type=int, default=12)
    parser.add_argument("--unlabelled", type=int, default=24)
    parser.add_argument("--test", type=int, default=24)  # 6 clips (the demo's T) hold 3 trucks: too few to score
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument(
        "--teacher",
        default=None,
        help="a teacher checkpoint, or A.pt,B.pt for an ensemble (else one is trained on L with --teacher-config)",
    )
    parser.add_argument("--teacher-config", default="configs/perception/offline_teacher.yaml")
    parser.add_argument("--teacher-steps", type=int, default=4000)
    parser.add_argument("--job", default="configs/autolabel/jobs/fleetvision_offline.yaml")
    parser.add_argument("--student-config", default="configs/perception/student.yaml")
    parser.add_argument("--student-steps", type=int, default=300)
    parser.add_argument(
        "--student-overrides",
        action="extend",
        nargs="*",
        default=[],
        help="more perception-fit options; repeat as --student-overrides=--seed_everything=1 (options start with --)",
    )
    parser.add_argument(
        "--calibrate-args",
        action="extend",
        nargs="*",
        default=[],
        help="more `autolabel calibrate` options, e.g. --calibrate-args=--min-objects=0 (stop 19's floors)",
    )
    parser.add_argument(
        "--floors", type=Path, default=None, help="label U with this floors file instead of calibrating on L_val"
    )
    parser.add_argument(
        "--soft-labels",
        action="store_true",
        help="soft pseudo-labels: U labelled without floors, student B weighting each box by L_val's precision at "
        "its score (autolabel calibrate --score-calibration, perception fit --data.train_labels_quality)",
    )
    parser.add_argument(
        "--no-ablation", action="store_true", help="skip the offline steps' ablation (the teacher is still scored on T)"
    )
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "data_engine")
    args = parser.parse_args(argv)
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/bench_data_engine.py " + " ".join(argv if argv is not None else sys.argv[1:])

    import yaml

    from perception.labels import DRIVING_CLASSES

    data = make_data(args, out)
    teacher_path = teacher(args, out, data)
    job = ["-c", args.job, "--no-progress"]
    autolabel(teacher_path, data["labelled_val"], out / "labels_val", job, out / "logs" / "autolabel_val.log")
    floors, calibration = args.floors or out / "floors.yaml", out / "score_calibration.yaml"
    if not floors.is_file() or not calibration.is_file():
        run([*tool("autolabel"), "calibrate", str(out / "labels_val"), "--gt", str(data["labelled_val"]),
             "--out", str(out / "floors.yaml"), "--score-calibration", str(calibration), "--max-range", str(MAX_RANGE),
             *args.calibrate_args],
            out / "logs" / "calibrate.log")  # fmt: skip
    pseudo = out / ("pseudo_soft" if args.soft_labels else "pseudo")
    label_job = job if args.soft_labels else [*job, "-c", str(floors)]  # soft: every box, weighted, none dropped
    autolabel(teacher_path, data["unlabelled"], pseudo, label_job, out / "logs" / "autolabel_u.log")
    quality = evaluate(pseudo, data["unlabelled"], out / "pseudo_eval.json", out / "logs" / "eval_u.log")
    soft = calibration if args.soft_labels else None
    students = {name: student(args, name, out, data, pseudo, soft) for name in STUDENTS}
    a, b, c = (students[k]["mAP"] for k in STUDENTS)
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        "sizes": {
            "labelled": args.labelled,
            "labelled_val": args.val,
            "unlabelled": args.unlabelled,
            "test": args.test,
        },
        "frames": args.frames,
        "teacher": str(teacher_path),
        "student_steps": args.student_steps,
        "floors": {"file": str(floors), **yaml.safe_load(floors.read_text())["tracking3d"]["class_min_score"]},
        "soft_labels": str(calibration) if args.soft_labels else None,
        "classes": list(DRIVING_CLASSES),
        "students": students,
        "pseudo_labels": quality,
        "data_engine": {
            "per_class_b_over_c": per_class_ratio(students["labelled_plus_pseudo"], students["oracle"]),
            "b_over_c": b / c if c else float("nan"),
            "recovered_gain": (b - a) / (c - a) if c != a else float("nan"),
        },
    }
    job_document = yaml.safe_load((REPO / args.job).read_text())
    views = job_views(job_document)
    if not args.no_ablation:
        results["ablation"] = ablation(args, teacher_path, data, job_document.get("tracking3d", {}), views)
    results["teacher_on_test"] = teacher_on_test(args, teacher_path, data, job_document.get("tracking3d", {}), views)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))
    report(results, args.results.with_suffix(".md"), command)
    print(args.results.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
