"""Cross-camera identity of 2D-teacher labels on the synthetic world, where every object's global id is known.

    .venv/bin/python benchmarks/bench_multicam.py [--clips 8] [--frames 60] [--seed 1] [--data DIR] \
        [--refine configs/autolabel/default.yaml] [--set KEY=VALUE ...] [--calibrate-seed 7] \
        [--out benchmarks/results/multicam.md]

Clips come from ``perception synth`` (nuScenes-like 6-camera rig; generated into --data when absent, into a temporary
folder without --data). The teacher is ``autolabel.teachers.simulated.GroundTruthTeacher``: each camera's
ground-truth 2D boxes with detector-like errors (misses, jitter, clutter, duplicates; ``DetectorNoise`` defaults), so
what is measured is the association, not a detector. Each clip is labelled twice through ``ClipLabeler`` (the 2D
path of ``autolabel``; a third time with --calibrate-seed, below): ids unique per camera (``multicam.enabled=False``,
the behaviour before cross-camera association) and associated across cameras, with the 2D chain preset ``--refine``
(``--set min_observed_fraction=0`` changes one of its settings, as ``--refine.KEY`` does for ``autolabel``).
Reported: handovers and id switches at them (``perception.metrics.camera_handover_ids``), objects seen by two or
more cameras that keep one id, false merges, HOTA/IDF1/IDSW/MOTA over all (frame, camera) boxes with global ids
(``perception.metrics.tracking_scores``; every labelled box counts, hardly visible ones too),
and the 3D boxes from lifted tracks against the ground-truth 3D boxes of objects some camera sees (BEV centre
distance, ``perception.metrics.BevDetectionEvaluator``).

``--calibrate-seed S`` (default 7, the association's development seed; -1: off) adds a third labelling, the
associated one with the lifting measured on a labelled split of other clips (world seed S, as many clips): those
clips are labelled the same way, written as a label folder, and ``autolabel calibrate --lifting``'s function
(``autolabel.calibrate.lifting_calibration``) measures ``multicam.bottom_offset_px`` and ``multicam.size_priors_m``
on them; the scored clips' ground truth is not read for it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autolabel.jobconfig import TeacherInfo  # noqa: E402
from autolabel.labeler import ClipLabeler  # noqa: E402
from autolabel.multicam import CrossCameraConfig  # noqa: E402
from autolabel.offline import OfflineLabelConfig  # noqa: E402
from autolabel.teachers.simulated import GroundTruthTeacher  # noqa: E402
from perception.atomic import atomic_write_text  # noqa: E402
from perception.clip import DriveClip, find_clips  # noqa: E402
from perception.labels import Boxes2D  # noqa: E402
from perception.metrics import (  # noqa: E402
    BevDetectionEvaluator,
    box_similarity,
    camera_handover_ids,
    combine_tracking_scores,
    tracking_scores,
)


def global_identity(pred_frames, gt_frames, cameras):
    """HOTA / IDF1 / IDSW / MOTA of global ids with every (frame, camera) as one step of one sequence
    (``perception.metrics.tracking_scores``, TrackEval's definitions, IoU 0.5)."""
    gt_ids, pred_ids, similarity = [], [], []
    for pred, gt in zip(pred_frames, gt_frames):
        for camera in cameras:
            g, p = gt.get(camera, Boxes2D.empty()), pred.get(camera, Boxes2D.empty())
            gt_ids.append(g.track_id)
            pred_ids.append(p.track_id)
            similarity.append(box_similarity(g.xyxy, p.xyxy))
    return tracking_scores(gt_ids, pred_ids, similarity)


def parse_overrides(items: list[str]) -> dict:
    """``KEY=VALUE`` strings as OfflineLabelConfig fields (values read as YAML: ``0``, ``0.5``, ``false``)."""
    import yaml

    fields = {f.name for f in dataclasses.fields(OfflineLabelConfig)}
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE with KEY an OfflineLabelConfig field")
        overrides[key] = yaml.safe_load(value)
    return overrides


def clips_of(data: Path | None, args, seed: int, scratch: Path) -> list[Path]:
    """The clips of world ``seed``: ``data`` when it holds clips, else generated into it (or into ``scratch``)."""
    folder = data or scratch / f"s{seed}_{args.clips}x{args.frames}"
    if not folder.exists() or not find_clips(folder):
        from perception.rig import Rig
        from perception.sim import generate_dataset

        print(f"generating {args.clips} clips x {args.frames} frames (seed {seed}) into {folder}", flush=True)
        generate_dataset(folder, Rig.load(args.rig), clips=args.clips, frames=args.frames, seed=seed, progress=False)
    return find_clips(folder)[: args.clips]


def calibrated_lifting(paths: list[Path], refine: OfflineLabelConfig, noise_seed: int, out: Path) -> dict:
    """``autolabel calibrate --lifting`` on ``paths`` labelled as the scored clips are (associated, defaults)."""
    from autolabel.calibrate import lifting_calibration
    from autolabel.outputs import DONE_FILE

    teacher = GroundTruthTeacher([str(p) for p in paths], seed=noise_seed)
    info = TeacherInfo("ground_truth_simulated", None)
    for path in paths:
        clip = DriveClip.open(path)
        labeler = ClipLabeler(teacher=teacher, teacher_info=info, classes=clip.labels.classes, refine=refine)
        folder = out / path.name
        folder.mkdir(parents=True, exist_ok=True)
        labeler.label_deferred(clip)().save(folder / "labels.json")
        (folder / DONE_FILE).write_text("")
    return lifting_calibration(out, paths[0].parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1, help="synthetic world seed (the association was developed on 7)")
    parser.add_argument("--noise_seed", type=int, default=0, help="seed of the simulated detector's errors")
    parser.add_argument("--rig", type=Path, default=REPO / "configs/rigs/nuscenes_like_6cam.yaml")
    parser.add_argument(
        "--data", type=Path, default=None, help="clips folder, reused if it holds clips (default: generated fresh)"
    )
    parser.add_argument("--refine", type=Path, default=REPO / "configs/autolabel/default.yaml", help="2D chain preset")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one preset setting")
    parser.add_argument(
        "--calibrate-seed",
        type=int,
        default=7,
        help="world seed of the labelled split the lifting is calibrated on (-1: no calibrated row)",
    )
    parser.add_argument(
        "--calibrate-data", type=Path, default=None, help="clips folder of the calibration seed (default: generated)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/multicam.md")
    args = parser.parse_args()
    if args.calibrate_seed == args.seed:
        raise SystemExit(f"--calibrate-seed {args.calibrate_seed}: expected a world other than the scored one")
    overrides = parse_overrides(args.set)
    refine = OfflineLabelConfig.from_yaml(args.refine, **overrides)

    # generated fresh unless --data is given: clips cached in /tmp by an older build once moved every figure
    scratch = tempfile.TemporaryDirectory(prefix="fleetvision_bench_multicam_")
    paths = clips_of(args.data, args, args.seed, Path(scratch.name))
    modes = {"per camera (before)": CrossCameraConfig(enabled=False), "associated (after)": CrossCameraConfig()}
    calibration = None
    if args.calibrate_seed >= 0:
        labelled = clips_of(args.calibrate_data, args, args.calibrate_seed, Path(scratch.name))
        print(f"calibrating the lifting on seed {args.calibrate_seed}", flush=True)
        calibration = calibrated_lifting(labelled, refine, args.noise_seed, Path(scratch.name) / "calibration_labels")
        modes[f"associated, lifting calibrated on seed {args.calibrate_seed}"] = CrossCameraConfig(
            bottom_offset_px=calibration["bottom_offset_px"], size_priors_m=calibration["size_priors_m"]
        )
    teacher = GroundTruthTeacher([str(p) for p in paths], seed=args.noise_seed)
    info = TeacherInfo("ground_truth_simulated", None)
    totals: dict[str, dict] = {m: {} for m in modes}
    combined: dict[str, list] = {}
    rows = []
    evaluators: dict[str, BevDetectionEvaluator] = {}
    for path in paths:
        clip = DriveClip.open(path)
        gt = clip.labels
        gt2d = [frame.boxes2d for frame in gt.frames]
        for mode, config in modes.items():
            labeler = ClipLabeler(
                teacher=teacher, teacher_info=info, classes=gt.classes, refine=refine, multicam=config
            )
            start = time.perf_counter()
            labels = labeler.label_deferred(clip)()
            elapsed = time.perf_counter() - start
            pred2d = [frame.boxes2d for frame in labels.frames]
            handover = camera_handover_ids(pred2d, gt2d)
            scores = global_identity(pred2d, gt2d, clip.rig.names)
            combined.setdefault(mode, []).append(scores)
            identity = scores.summary()
            for key, value in {**handover, "seconds": elapsed}.items():
                totals[mode][key] = totals[mode].get(key, 0) + value
            rows.append((clip.name, mode, handover, identity, elapsed))
            print(clip.name, mode, handover, {k: identity[k] for k in ("HOTA", "IDF1", "IDSW", "MOTA")}, flush=True)
            if config.enabled:
                evaluator = evaluators.setdefault(
                    mode, BevDetectionEvaluator(gt.classes, distance_thresholds=(1.0, 2.0, 4.0))
                )
                for pred_frame, gt_frame in zip(labels.frames, gt.frames):
                    seen = {int(t) for boxes in gt_frame.boxes2d.values() for t in boxes.track_id}
                    visible = gt_frame.boxes3d[np.isin(gt_frame.boxes3d.track_id, sorted(seen))]
                    evaluator.add_frame(pred_frame.boxes3d, visible)
    overall = {m: combine_tracking_scores(combined[m]).summary() for m in modes}  # all clips as TrackEval combines

    lines = [
        "# Cross-camera identity of 2D-teacher labels (synthetic world)",
        "",
        f"Command: `{' '.join(['.venv/bin/python', 'benchmarks/bench_multicam.py', *sys.argv[1:]])}`",
        f"{len(paths)} clips x {args.frames} frames, rig `{args.rig.relative_to(REPO)}`, world seed {args.seed} "
        f"(the association's settings were developed on other clips, seed 7), detector noise seed {args.noise_seed}. "
        "Teacher: ground-truth 2D boxes through `DetectorNoise()` (misses, jitter, clutter, duplicates). "
        f"2D chain: `{args.refine.relative_to(REPO) if args.refine.is_relative_to(REPO) else args.refine}`"
        f"{''.join(f', {k} {v}' for k, v in overrides.items())}. "
        "Handover: an object matched in a camera it was not matched in for 10 frames while another camera saw it "
        "in those frames; a switch when its id there is none of the other cameras' latest ids for it.",
        "",
        "| clip | labels | handovers | switches at handovers | objects in >= 2 cameras | ... with one id | "
        "false merges | HOTA (global ids) | IDF1 | IDSW | MOTA | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, mode, handover, identity, elapsed in rows:
        lines.append(
            f"| {name} | {mode} | {handover['handovers']} | {handover['handover_switches']} | "
            f"{handover['objects_multi_camera']} | {handover['objects_single_id']} | {handover['false_merges']} | "
            f"{100 * identity['HOTA']:.1f} | {100 * identity['IDF1']:.1f} | {identity['IDSW']} | "
            f"{100 * identity['MOTA']:.1f} | {elapsed:.1f} |"
        )
    for mode in modes:
        t, o = totals[mode], overall[mode]
        lines.append(
            f"| **all** | **{mode}** | {t['handovers']} | **{t['handover_switches']}** | {t['objects_multi_camera']} | "
            f"{t['objects_single_id']} | {t['false_merges']} | {100 * o['HOTA']:.1f} | {100 * o['IDF1']:.1f} | "
            f"{o['IDSW']} | {100 * o['MOTA']:.1f} | {t['seconds']:.1f} |"
        )
    if calibration is not None:
        sizes = ", ".join(
            f"{name} {' x '.join(f'{v:.2f}' for v in entry['size'])}" + ("" if entry["measured"] else " (default kept)")
            for name, entry in calibration["sizes"].items()
        )
        lines += [
            "",
            f"Lifting calibrated on seed {args.calibrate_seed} ({len(paths)} clips, labelled as above): "
            f"`bottom_offset_px` {calibration['bottom_offset_px']:.2f} over {calibration['offset_boxes']} boxes; "
            f"sizes (m): {sizes}.",
        ]
    for mode, evaluator in evaluators.items():
        metrics3d = evaluator.compute()
        lines += [
            "",
            f"3D boxes from lifted 2D tracks ({mode}) vs ground-truth 3D boxes of objects some camera sees "
            "(BEV centre distance; TP errors at 2 m):",
            "",
            "| class | GT boxes | predicted | recall @2 m | precision @2 m | AP @1/2/4 m | ATE m | ASE | AOE rad |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, entry in metrics3d["per_class"].items():
            if not entry["num_gt"] and not entry["num_pred"]:
                continue
            ap = "/".join(f"{entry['ap'][k]:.2f}" for k in ("1.0", "2.0", "4.0"))
            lines.append(
                f"| {name} | {entry['num_gt']} | {entry['num_pred']} | {entry.get('recall', float('nan')):.2f} | "
                f"{entry.get('precision', float('nan')):.2f} | {ap} | {entry['ate']:.2f} | {entry['ase']:.2f} | "
                f"{entry['aoe']:.2f} |"
            )
        lines.append(f"| mean | | | | | mAP {metrics3d['mAP']:.3f} | {metrics3d['mATE']:.2f} | "
                     f"{metrics3d['mASE']:.2f} | {metrics3d['mAOE']:.2f} |")  # fmt: skip
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
