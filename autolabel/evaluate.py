"""``autolabel eval``: score pseudo-labels against ground truth.

2D: COCO AP over every (camera, frame) image (``perception.metrics.CocoDetectionEvaluator``); tracking: CLEAR-MOT
(MOTA, MOTP) and IDF1 per camera sequence with ``motmetrics`` when installed (IoU >= 0.5, same class);
3D (when both sides have 3D boxes, i.e. multi-camera clips): nuScenes-style BEV mAP with ``BevDetectionEvaluator``.

Ground truth for ``LABEL_DIR/<rel>/labels.json`` is looked up as ``GT/<rel>/labels.json`` (clip folders) or a
MOTChallenge ``gt/gt.txt`` in ``GT/<rel>/`` or ``GT/<rel>/..`` (a sequence folder holding its video).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from perception.labels import Boxes2D, ClipLabels

__all__ = [
    "bev_frame_pairs",
    "evaluate_labels",
    "find_ground_truth",
    "format_metrics",
    "mot_metrics",
    "read_mot_ground_truth",
]

log = logging.getLogger("autolabel")


def read_mot_ground_truth(path: Path, num_frames: int, class_id: int) -> list[Boxes2D]:
    """MOTChallenge ``gt.txt`` (frame,id,x,y,w,h,flag,...; 1-based frames) -> Boxes2D per frame; flag 0 rows dropped."""
    table = np.loadtxt(path, delimiter=",", ndmin=2)
    if table.shape[1] < 6:
        raise ValueError(
            f"{path}: expected MOTChallenge rows frame,id,x,y,w,h[,flag,...], found {table.shape[1]} columns"
        )
    if table.shape[1] >= 7:
        table = table[table[:, 6] != 0]
    frames = []
    for index in range(num_frames):
        rows = table[table[:, 0] == index + 1]
        xyxy = np.concatenate([rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]], axis=1)
        frames.append(Boxes2D(xyxy=xyxy, class_id=np.full(len(rows), class_id), track_id=rows[:, 1].astype(np.int64)))
    return frames


def find_ground_truth(gt_root: Path, relative: Path) -> tuple[str, Path] | None:
    """('clip', labels.json) or ('mot', gt.txt) for one labelled input, or None."""
    gt_root = Path(gt_root)
    candidates = [
        ("clip", gt_root / relative / "labels.json"),
        ("mot", gt_root / relative / "gt" / "gt.txt"),
        ("mot", gt_root / relative.parent / "gt" / "gt.txt"),
    ]
    if relative.parent == Path("."):
        candidates += [("clip", gt_root / "labels.json"), ("mot", gt_root / "gt" / "gt.txt")]
    for kind, path in candidates:
        if path.is_file():
            return kind, path
    return None


def class_remap(gt_labels: ClipLabels, target: list[str], gt_path: Path) -> tuple[np.ndarray, dict[str, int]]:
    """Index map from ground-truth class ids to label class ids (-1 when the labels have no such class), and
    {class name: boxes} of the ground-truth classes that cannot be scored (reported with a warning)."""
    source = list(gt_labels.classes)
    remap = np.array([target.index(name) if name in target else -1 for name in source] + [-1], dtype=np.int64)
    counts = np.zeros(len(source) + 1, np.int64)
    for frame in gt_labels.frames:
        for boxes in [frame.boxes3d, *frame.boxes2d.values()]:
            counts += np.bincount(boxes.class_id, minlength=len(counts))[: len(counts)]
    unscored = {name: int(counts[i]) for i, name in enumerate(source) if remap[i] < 0 and counts[i]}
    for name, count in unscored.items():
        log.warning(
            "%s: ground-truth class %r is not one of the label classes %s: its %d boxes are not scored",
            gt_path,
            name,
            target,
            count,
        )
    return remap, unscored


def finished_labels(label_dir: Path) -> list[Path]:
    """Every finished ``labels.json`` (with its ``done`` marker) under ``label_dir``."""
    files = sorted(p for p in Path(label_dir).rglob("labels.json") if (p.parent / "done").is_file())
    if not files:
        raise FileNotFoundError(f"{label_dir}: no finished labels (labels.json + done) found")
    return files


def bev_frame_pairs(labels: ClipLabels, gt_labels: ClipLabels, remap: np.ndarray):
    """(predicted, ground-truth) 3D boxes per frame, ground-truth classes mapped to the label classes."""
    for p, g in zip(labels.frames, gt_labels.frames):
        gt_boxes = g.boxes3d[remap[g.boxes3d.class_id] >= 0]
        gt_boxes.class_id = remap[gt_boxes.class_id]
        yield p.boxes3d, gt_boxes


def _bev_summary(metrics3d: dict[str, Any]) -> dict[str, Any]:
    """mAP, NDS, TP errors, and per class: AP at 2 m, precision and recall of all boxes (matched within 2 m)."""
    out = {k: metrics3d[k] for k in ("mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE", "ap_per_threshold")}
    out["per_class"] = {
        name: {
            "num_gt": entry["num_gt"],
            "num_pred": entry["num_pred"],
            "AP@2m": entry["ap"].get("2.0"),
            "precision@2m": entry.get("precision"),
            "recall@2m": entry.get("recall"),
        }
        for name, entry in metrics3d["per_class"].items()
        if entry["num_gt"] or entry["num_pred"]
    }
    return out


def mot_metrics(pred: list[Boxes2D], gt: list[Boxes2D], *, iou_threshold: float = 0.5) -> dict[str, float] | None:
    """CLEAR-MOT + IDF1 with motmetrics (None if it is not installed); boxes of different classes never match."""
    try:
        import motmetrics
    except ImportError:
        return None
    from perception.geometry import box_iou

    accumulator = motmetrics.MOTAccumulator(auto_id=True)
    for p, g in zip(pred, gt):
        distance = 1.0 - box_iou(g.xyxy, p.xyxy)
        distance[(distance > 1.0 - iou_threshold) | (g.class_id[:, None] != p.class_id[None, :])] = np.nan
        accumulator.update(g.track_id.tolist(), p.track_id.tolist(), distance)
    host = motmetrics.metrics.create()
    names = [
        "mota",
        "motp",
        "idf1",
        "num_switches",
        "num_false_positives",
        "num_misses",
        "num_objects",
        "mostly_tracked",
        "mostly_lost",
        "precision",
        "recall",
    ]
    summary = host.compute(accumulator, metrics=names, name="sequence")
    out = {name: float(summary[name].iloc[0]) for name in names}
    out["motp_iou"] = 1.0 - out.pop("motp") if not math.isnan(out["motp"]) else math.nan
    return out


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(float(value)) else round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    return value


def evaluate_labels(
    label_dir: str | Path, gt_root: str | Path, *, gt_class: str = "pedestrian", max_range: float | None = None
) -> dict[str, Any]:
    """Metrics of every labelled input under ``label_dir`` that has ground truth under ``gt_root``.

    ``max_range`` (metres, BEV distance from the ego) limits the 3D evaluation to what the teacher can perceive,
    e.g. a BEV model's grid half-width; ground truth and labels beyond it are ignored."""
    from perception.metrics.bev_detection import BevDetectionEvaluator
    from perception.metrics.det2d import CocoDetectionEvaluator

    label_dir, gt_root = Path(label_dir), Path(gt_root)
    files = finished_labels(label_dir)
    clips: dict[str, Any] = {}
    coco_all = None
    bev_all = None
    missing = []
    for path in files:
        relative = path.parent.relative_to(label_dir)
        labels = ClipLabels.load(path)
        found = find_ground_truth(gt_root, relative)
        if found is None:
            missing.append(relative.as_posix())
            continue
        kind, gt_path = found
        cameras = sorted({c for f in labels.frames for c in f.boxes2d})
        if kind == "mot":
            if gt_class not in labels.classes:
                raise ValueError(f"--gt-class {gt_class!r} is not one of the label classes {labels.classes}")
            gt_frames = {
                cameras[0] if cameras else "camera": read_mot_ground_truth(
                    gt_path, len(labels.frames), labels.classes.index(gt_class)
                )
            }
            gt_labels, unscored = None, {}
        else:
            gt_labels = ClipLabels.load(gt_path)
            if len(gt_labels.frames) != len(labels.frames):
                raise ValueError(f"{gt_path}: {len(gt_labels.frames)} frames, labels {path} have {len(labels.frames)}")
            remap, unscored = class_remap(gt_labels, labels.classes, gt_path)
            gt_frames = {}
            for camera in cameras:
                gt_frames[camera] = []
                for frame in gt_labels.frames:
                    boxes = frame.boxes2d.get(camera, Boxes2D.empty())
                    boxes = boxes[remap[boxes.class_id] >= 0]
                    gt_frames[camera].append(
                        Boxes2D(xyxy=boxes.xyxy, class_id=remap[boxes.class_id], track_id=boxes.track_id)
                    )
        if coco_all is None:
            coco_all = CocoDetectionEvaluator(labels.classes)
        coco = CocoDetectionEvaluator(labels.classes)
        result: dict[str, Any] = {"ground_truth": str(gt_path), "kind": kind, "tracking": {}}
        if unscored:
            result["unscored_gt_classes"] = unscored
        for camera, gt_list in gt_frames.items():
            pred_list = [f.boxes2d.get(camera, Boxes2D.empty()) for f in labels.frames]
            for p, g in zip(pred_list, gt_list):
                for evaluator in (coco, coco_all):
                    evaluator.add_image(p.xyxy, p.score, p.class_id, g.xyxy, g.class_id)
            tracking = mot_metrics(pred_list, gt_list)
            if tracking is not None:
                result["tracking"][camera] = tracking
        detection = coco.compute()
        result["det2d"] = {k: v for k, v in detection.items() if k in ("AP", "AP50", "AP75", "AR100", "per_class")}
        has_3d = gt_labels is not None and any(len(f.boxes3d) for f in gt_labels.frames)  # no predictions scores 0
        if has_3d:
            bev = BevDetectionEvaluator(labels.classes, max_range=max_range)
            if bev_all is None:
                bev_all = BevDetectionEvaluator(labels.classes, max_range=max_range)
            for pred_boxes, gt_boxes in bev_frame_pairs(labels, gt_labels, remap):
                for evaluator in (bev, bev_all):
                    evaluator.add_frame(pred_boxes, gt_boxes)
            result["bev"] = _bev_summary(bev.compute())
        clips[relative.as_posix()] = result
    overall: dict[str, Any] = {"num_clips": len(clips), "without_ground_truth": missing}
    if coco_all is not None and clips:
        detection = coco_all.compute()
        overall["det2d"] = {k: detection[k] for k in ("AP", "AP50", "AP75", "AR100")}
    trackings = [t for c in clips.values() for t in c["tracking"].values()]
    if trackings:
        objects = sum(t["num_objects"] for t in trackings)
        errors = sum(t["num_false_positives"] + t["num_misses"] + t["num_switches"] for t in trackings)
        overall["tracking"] = {
            "mota": 1.0 - errors / max(objects, 1),
            "idf1_mean": float(np.mean([t["idf1"] for t in trackings])),
            "num_switches": int(sum(t["num_switches"] for t in trackings)),
        }
    if bev_all is not None:
        overall["bev"] = _bev_summary(bev_all.compute())
    return _clean({"overall": overall, "clips": clips})


def format_metrics(metrics: dict[str, Any]) -> str:
    """Human-readable summary lines."""

    def show(value: Any) -> str:
        return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = []
    for name, clip in metrics["clips"].items():
        parts = [f"AP {show(clip['det2d'].get('AP'))}", f"AP50 {show(clip['det2d'].get('AP50'))}"]
        for camera, tracking in clip["tracking"].items():
            parts.append(
                f"[{camera}] MOTA {show(tracking['mota'])} IDF1 {show(tracking['idf1'])} "
                f"IDsw {show(tracking['num_switches'])}"
            )
        if "bev" in clip:
            parts.append(f"BEV mAP {show(clip['bev']['mAP'])} NDS {show(clip['bev']['NDS'])}")
        if clip.get("unscored_gt_classes"):
            parts.append(f"ground truth not scored (class unknown to the labels): {clip['unscored_gt_classes']}")
        lines.append(f"{name}: " + ", ".join(parts))
    overall = metrics["overall"]
    lines.append(
        f"overall ({overall['num_clips']} clips): "
        + ", ".join(
            f"{key} {show(value)}"
            for section in ("det2d", "tracking", "bev")
            for key, value in overall.get(section, {}).items()
        )
    )
    if overall["without_ground_truth"]:
        lines.append(f"no ground truth for: {', '.join(overall['without_ground_truth'])}")
    return "\n".join(lines)
