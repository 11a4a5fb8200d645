"""Cross-camera identity of 2D-teacher labels on the synthetic world, where every object's global id is known.

    .venv/bin/python benchmarks/bench_multicam.py [--clips 8] [--frames 60] [--seed 1] [--data DIR] \
        [--out benchmarks/results/multicam.md]

Clips come from ``perception synth`` (nuScenes-like 6-camera rig; generated into --data when absent). The teacher is
``autolabel.teachers.simulated.GroundTruthTeacher``: each camera's ground-truth 2D boxes with detector-like errors
(misses, jitter, clutter, duplicates; ``DetectorNoise`` defaults), so what is measured is the association, not a
detector. Each clip is labelled twice through ``ClipLabeler`` (the 2D path of ``autolabel``): ids unique per camera
(``multicam.enabled=False``, the behaviour before cross-camera association) and associated across cameras.
Reported: handovers and id switches at them (``perception.metrics.camera_handover_ids``), objects seen by two or
more cameras that keep one id, false merges, IDF1/IDSW over all (frame, camera) boxes with global ids (motmetrics),
and the 3D boxes from lifted tracks against the ground-truth 3D boxes of objects some camera sees (BEV centre
distance, ``perception.metrics.BevDetectionEvaluator``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autolabel.jobconfig import TeacherInfo  # noqa: E402
from autolabel.labeler import ClipLabeler  # noqa: E402
from autolabel.multicam import CrossCameraConfig  # noqa: E402
from autolabel.teachers.simulated import GroundTruthTeacher  # noqa: E402
from perception.clip import DriveClip, find_clips  # noqa: E402
from perception.geometry import box_iou  # noqa: E402
from perception.metrics import BevDetectionEvaluator, camera_handover_ids  # noqa: E402


def global_identity(pred_frames, gt_frames, cameras) -> dict:
    """IDF1 / IDSW / MOTA (percent) of global ids over every (frame, camera) as one event (motmetrics, IoU 0.5)."""
    if not hasattr(np, "asfarray"):  # motmetrics 1.4.0 calls np.asfarray, removed in NumPy 2 (benchmark process only)
        np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)
    import motmetrics as mm

    accumulator = mm.MOTAccumulator(auto_id=True)
    for pred, gt in zip(pred_frames, gt_frames):
        for camera in cameras:
            g, p = gt.get(camera), pred.get(camera)
            g_xyxy = np.zeros((0, 4)) if g is None else g.xyxy
            p_xyxy = np.zeros((0, 4)) if p is None else p.xyxy
            distance = 1.0 - box_iou(g_xyxy, p_xyxy)
            distance[distance > 0.5] = np.nan
            accumulator.update(
                [] if g is None else g.track_id.tolist(), [] if p is None else p.track_id.tolist(), distance
            )
    summary = mm.metrics.create().compute(accumulator, metrics=["idf1", "num_switches", "mota"], name="x")
    return {
        "IDF1": 100 * float(summary["idf1"].iloc[0]),
        "IDSW": int(summary["num_switches"].iloc[0]),
        "MOTA": 100 * float(summary["mota"].iloc[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1, help="synthetic world seed (the association was developed on 7)")
    parser.add_argument("--noise_seed", type=int, default=0, help="seed of the simulated detector's errors")
    parser.add_argument("--rig", type=Path, default=REPO / "configs/rigs/nuscenes_like_6cam.yaml")
    parser.add_argument("--data", type=Path, default=None, help="clips folder (default: a temp folder per seed)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/multicam.md")
    args = parser.parse_args()

    data = args.data or Path("/tmp") / f"fleetvision_bench_multicam_s{args.seed}_{args.clips}x{args.frames}"
    if not data.exists() or not find_clips(data):
        from perception.rig import Rig
        from perception.sim import generate_dataset

        print(f"generating {args.clips} clips x {args.frames} frames (seed {args.seed}) into {data}", flush=True)
        generate_dataset(data, Rig.load(args.rig), clips=args.clips, frames=args.frames, seed=args.seed, progress=False)
    paths = find_clips(data)[: args.clips]
    teacher = GroundTruthTeacher([str(p) for p in paths], seed=args.noise_seed)
    info = TeacherInfo("ground_truth_simulated", None)
    modes = {"per camera (before)": CrossCameraConfig(enabled=False), "associated (after)": CrossCameraConfig()}
    totals: dict[str, dict] = {m: {} for m in modes}
    rows = []
    evaluator = None
    for path in paths:
        clip = DriveClip.open(path)
        gt = clip.labels
        gt2d = [frame.boxes2d for frame in gt.frames]
        for mode, config in modes.items():
            labeler = ClipLabeler(teacher=teacher, teacher_info=info, classes=gt.classes, multicam=config)
            start = time.perf_counter()
            labels = labeler.label_deferred(clip)()
            elapsed = time.perf_counter() - start
            pred2d = [frame.boxes2d for frame in labels.frames]
            handover = camera_handover_ids(pred2d, gt2d)
            identity = global_identity(pred2d, gt2d, clip.rig.names)
            for key, value in {**handover, "IDSW": identity["IDSW"], "seconds": elapsed}.items():
                totals[mode][key] = totals[mode].get(key, 0) + value
            rows.append((clip.name, mode, handover, identity, elapsed))
            print(clip.name, mode, handover, identity, f"{elapsed:.1f} s", flush=True)
            if config.enabled:
                if evaluator is None:
                    evaluator = BevDetectionEvaluator(gt.classes, distance_thresholds=(1.0, 2.0, 4.0))
                for pred_frame, gt_frame in zip(labels.frames, gt.frames):
                    seen = {int(t) for boxes in gt_frame.boxes2d.values() for t in boxes.track_id}
                    visible = gt_frame.boxes3d[np.isin(gt_frame.boxes3d.track_id, sorted(seen))]
                    evaluator.add_frame(pred_frame.boxes3d, visible)
    # global IDF1 over all clips at once would need one accumulator; report the per-clip mean
    idf1 = {m: np.mean([r[3]["IDF1"] for r in rows if r[1] == m]) for m in modes}
    metrics3d = evaluator.compute() if evaluator is not None else None

    lines = [
        "# Cross-camera identity of 2D-teacher labels (synthetic world)",
        "",
        f"Command: `{' '.join(['.venv/bin/python', 'benchmarks/bench_multicam.py', *sys.argv[1:]])}`",
        f"{len(paths)} clips x {args.frames} frames, rig `{args.rig.relative_to(REPO)}`, world seed {args.seed} "
        f"(the association's settings were developed on other clips, seed 7), detector noise seed {args.noise_seed}. "
        "Teacher: ground-truth 2D boxes through `DetectorNoise()` (misses, jitter, clutter, duplicates). "
        "Handover: an object matched in a camera it was not matched in for 10 frames while another camera saw it "
        "in those frames; a switch when its id there is none of the other cameras' latest ids for it.",
        "",
        "| clip | labels | handovers | switches at handovers | objects in >= 2 cameras | ... with one id | "
        "false merges | IDF1 (global ids) | IDSW (global) | MOTA | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, mode, handover, identity, elapsed in rows:
        lines.append(
            f"| {name} | {mode} | {handover['handovers']} | {handover['handover_switches']} | "
            f"{handover['objects_multi_camera']} | {handover['objects_single_id']} | {handover['false_merges']} | "
            f"{identity['IDF1']:.1f} | {identity['IDSW']} | {identity['MOTA']:.1f} | {elapsed:.1f} |"
        )
    for mode in modes:
        t = totals[mode]
        lines.append(
            f"| **all** | **{mode}** | {t['handovers']} | **{t['handover_switches']}** | {t['objects_multi_camera']} | "
            f"{t['objects_single_id']} | {t['false_merges']} | {idf1[mode]:.1f} (mean) | {t['IDSW']} | - | "
            f"{t['seconds']:.1f} |"
        )
    if metrics3d is not None:
        lines += [
            "",
            "3D boxes from lifted 2D tracks (associated labels) vs ground-truth 3D boxes of objects some camera sees "
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
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
