"""``autolabel eval``: score pseudo-labels against ground truth.

2D: COCO AP over every (camera, frame) image (``perception.metrics.CocoDetectionEvaluator``); tracking per camera
sequence and class: HOTA (DetA, AssA, LocA), CLEAR-MOT (MOTA, MOTP, ID switches) and IDF1 with
``perception.metrics.tracking_scores``, which equals TrackEval's figures (IoU similarity; MOTA/IDF1 matches at
IoU >= 0.5; classes never match each other), combined over classes and sequences as TrackEval does
(detection-weighted). 3D (when the ground truth has 3D boxes): nuScenes-style BEV mAP with
``BevDetectionEvaluator``; "not applicable" when the labels have no 3D boxes (a 2D teacher).

Class names are matched by name; a ground-truth class the labels lack, or a label class the ground truth lacks, is
reported (warning + ``unscored_gt_classes`` / ``unscored_label_classes`` in metrics.json), never silently dropped.

Ground truth for ``LABEL_DIR/<rel>/labels.json`` is looked up as ``GT/<rel>/labels.json`` (clip folders, or labels
brought back from CVAT by ``autolabel import-cvat``) or a MOTChallenge ``gt/gt.txt`` in ``GT/<rel>/`` or
``GT/<rel>/..`` (a sequence folder holding its video).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from perception.labels import Boxes2D, ClipLabels
from perception.metrics.tracking import TrackingScores, box_similarity, combine_tracking_scores, tracking_scores

__all__ = [
    "TRACKING_KEYS",
    "bev_frame_pairs",
    "class_tracking_scores",
    "evaluate_labels",
    "find_ground_truth",
    "format_metrics",
    "read_mot_ground_truth",
    "tracking_pairs",
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


TRACKING_KEYS = {  # metrics.json key -> TrackingScores.summary() field
    "hota": "HOTA", "deta": "DetA", "assa": "AssA", "loca": "LocA", "detre": "DetRe", "detpr": "DetPr",
    "assre": "AssRe", "asspr": "AssPr", "mota": "MOTA", "motp_iou": "MOTP", "idf1": "IDF1", "idp": "IDP",
    "idr": "IDR", "num_switches": "IDSW", "num_false_positives": "FP", "num_misses": "FN", "mostly_tracked": "MT",
    "partly_tracked": "PT", "mostly_lost": "ML", "fragmentations": "Frag", "precision": "CLR_Pr", "recall": "CLR_Re",
    "num_objects": "num_gt_dets", "num_predictions": "num_pred_dets",
}  # fmt: skip


def _tracking_dict(scores: TrackingScores) -> dict[str, Any]:
    summary = scores.summary()
    return {key: summary[field] for key, field in TRACKING_KEYS.items()}


def _sequence_ids(frames: list[Boxes2D]) -> list[np.ndarray]:
    """Track ids per frame; boxes without one (-1) become one-frame tracks with ids of their own."""
    out, next_free = [], -2
    for boxes in frames:
        ids = np.asarray(boxes.track_id, np.int64).copy()
        untracked = ids < 0
        ids[untracked] = next_free - np.arange(int(untracked.sum()))
        next_free -= int(untracked.sum())
        out.append(ids)
    return out


def class_tracking_scores(
    pred: list[Boxes2D], gt: list[Boxes2D], class_ids: list[int], *, iou_threshold: float = 0.5
) -> dict[int, TrackingScores]:
    """HOTA / CLEAR-MOT / IDF1 per class id over one sequence (frame i of ``pred`` vs frame i of ``gt``): boxes of
    different classes never match; classes with neither ground truth nor predictions are left out."""
    out: dict[int, TrackingScores] = {}
    for class_id in class_ids:
        pred_c = [p[p.class_id == class_id] for p in pred]
        gt_c = [g[g.class_id == class_id] for g in gt]
        if not any(len(b) for b in pred_c + gt_c):
            continue
        similarity = [box_similarity(g.xyxy, p.xyxy) for p, g in zip(pred_c, gt_c)]
        out[class_id] = tracking_scores(_sequence_ids(gt_c), _sequence_ids(pred_c), similarity, threshold=iou_threshold)
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


def _unscored_label_classes(labels: ClipLabels, known: list[str], gt_path: Path) -> dict[str, int]:
    """{class name: boxes} of label classes the ground truth does not know (reported, not scored)."""
    counts = np.zeros(len(labels.classes) + 1, np.int64)
    for frame in labels.frames:
        for boxes in [frame.boxes3d, *frame.boxes2d.values()]:
            counts += np.bincount(boxes.class_id, minlength=len(counts))[: len(counts)]
    unscored = {name: int(counts[i]) for i, name in enumerate(labels.classes) if name not in known and counts[i]}
    for name, count in unscored.items():
        log.warning(
            "%s: label class %r is not a class of the ground truth %s: its %d boxes are not scored",
            gt_path,
            name,
            known,
            count,
        )
    return unscored


def _ground_truth_2d(
    labels: ClipLabels, path: Path, kind: str, gt_path: Path, gt_class: str
) -> tuple[ClipLabels | None, np.ndarray | None, dict[str, int], list[str], dict[str, list[Boxes2D]]]:
    """(ground-truth clip labels and their class remap (``class_remap``), both None for MOTChallenge, unscored
    ground-truth classes, the ground truth's class names, {camera: ground-truth boxes per frame in the label classes'
    ids}) for the labels ``path``."""
    cameras = sorted({c for f in labels.frames for c in f.boxes2d})
    if kind == "mot":
        if gt_class not in labels.classes:
            raise ValueError(
                f"{gt_path}: MOTChallenge ground truth is scored as class --gt-class {gt_class!r}, which is not "
                f"one of the label classes {labels.classes} (of {path})"
            )
        gt_frames = {
            cameras[0] if cameras else "camera": read_mot_ground_truth(
                gt_path, len(labels.frames), labels.classes.index(gt_class)
            )
        }
        return None, None, {}, [gt_class], gt_frames
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
            gt_frames[camera].append(Boxes2D(xyxy=boxes.xyxy, class_id=remap[boxes.class_id], track_id=boxes.track_id))
    return gt_labels, remap, unscored, list(gt_labels.classes), gt_frames


def _is_stills(labels: ClipLabels, gt_labels: ClipLabels | None) -> bool:
    """True for labels of an image set (stills: no tracks to score), by either side's provenance."""
    kinds = (labels.provenance.get("input_kind"), (gt_labels.provenance if gt_labels else {}).get("input_kind"))
    return "stills" in kinds


def tracking_pairs(label_dir: str | Path, gt_root: str | Path, *, gt_class: str = "pedestrian"):
    """(labels file, camera, label classes, predicted boxes per frame, ground-truth boxes per frame, scored class ids)
    for every camera sequence under ``label_dir`` with 2D ground truth under ``gt_root`` (as ``evaluate_labels``
    pairs them); inputs without ground truth are skipped, stills (no tracks) too."""
    label_dir, gt_root = Path(label_dir), Path(gt_root)
    for path in finished_labels(label_dir):
        found = find_ground_truth(gt_root, path.parent.relative_to(label_dir))
        if found is None:
            continue
        labels = ClipLabels.load(path)
        gt_labels, _, _, known, gt_frames = _ground_truth_2d(labels, path, found[0], found[1], gt_class)
        if _is_stills(labels, gt_labels):
            continue
        scored = [i for i, name in enumerate(labels.classes) if name in known]
        for camera, gt_list in gt_frames.items():
            pred_list = [f.boxes2d.get(camera, Boxes2D.empty()) for f in labels.frames]
            yield (
                path,
                camera,
                list(labels.classes),
                [p[np.isin(p.class_id, scored)] for p in pred_list],
                gt_list,
                scored,
            )


NOT_APPLICABLE_3D = "not applicable: the labels have no 3D boxes (a 2D teacher)"


def evaluate_labels(
    label_dir: str | Path, gt_root: str | Path, *, gt_class: str = "pedestrian", max_range: float | None = None
) -> dict[str, Any]:
    """Metrics of every labelled input under ``label_dir`` that has ground truth under ``gt_root``.

    ``gt_class``: the label class MOTChallenge ground truth (one class) is scored as. ``max_range`` (metres, BEV
    distance from the ego) limits the 3D evaluation to what the teacher can perceive, e.g. a BEV model's grid
    half-width; ground truth and labels beyond it are ignored."""
    from perception.metrics.bev_detection import BevDetectionEvaluator
    from perception.metrics.det2d import CocoDetectionEvaluator

    label_dir, gt_root = Path(label_dir), Path(gt_root)
    files = finished_labels(label_dir)
    clips: dict[str, Any] = {}
    coco_all = None
    bev_all = None
    tracking_all: dict[str, list[TrackingScores]] = {}  # class name -> per sequence
    missing = []
    for path in files:
        relative = path.parent.relative_to(label_dir)
        labels = ClipLabels.load(path)
        found = find_ground_truth(gt_root, relative)
        if found is None:
            missing.append(relative.as_posix())
            continue
        kind, gt_path = found
        gt_labels, remap, unscored, known, gt_frames = _ground_truth_2d(labels, path, kind, gt_path, gt_class)
        scored = [i for i, name in enumerate(labels.classes) if name in known]
        unscored_labels = _unscored_label_classes(labels, known, gt_path)
        if coco_all is None:
            coco_all = CocoDetectionEvaluator(labels.classes)
        coco = CocoDetectionEvaluator(labels.classes)
        result: dict[str, Any] = {"ground_truth": str(gt_path), "kind": kind, "tracking": {}}
        if unscored:
            result["unscored_gt_classes"] = unscored
        if unscored_labels:
            result["unscored_label_classes"] = unscored_labels
        for camera, gt_list in gt_frames.items():
            pred_list = [f.boxes2d.get(camera, Boxes2D.empty()) for f in labels.frames]
            pred_list = [p[np.isin(p.class_id, scored)] for p in pred_list]
            for p, g in zip(pred_list, gt_list):
                for evaluator in (coco, coco_all):
                    evaluator.add_image(p.xyxy, p.score, p.class_id, g.xyxy, g.class_id)
            stills = _is_stills(labels, gt_labels)
            per_class = {} if stills else class_tracking_scores(pred_list, gt_list, scored)  # stills: no tracks
            if per_class:
                tracking = _tracking_dict(combine_tracking_scores(list(per_class.values())))
                tracking["per_class"] = {labels.classes[c]: _tracking_dict(s) for c, s in per_class.items()}
                result["tracking"][camera] = tracking
                for class_id, scores in per_class.items():
                    tracking_all.setdefault(labels.classes[class_id], []).append(scores)
        detection = coco.compute()
        result["det2d"] = {k: v for k, v in detection.items() if k in ("AP", "AP50", "AP75", "AR100", "per_class")}
        has_3d_gt = gt_labels is not None and any(len(f.boxes3d) for f in gt_labels.frames)
        has_3d_labels = any(len(f.boxes3d) for f in labels.frames)
        if has_3d_gt and not has_3d_labels:
            result["bev"] = {"not_applicable": NOT_APPLICABLE_3D}
        elif has_3d_gt:
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
    if tracking_all:
        per_class = {name: combine_tracking_scores(scores) for name, scores in tracking_all.items()}
        combined = _tracking_dict(combine_tracking_scores(list(per_class.values())))
        overall["tracking"] = {key: combined[key] for key in ("hota", "deta", "assa", "mota", "idf1", "num_switches")}
        overall["tracking_per_class"] = {name: _tracking_dict(s) for name, s in per_class.items()}
    if bev_all is not None:
        overall["bev"] = _bev_summary(bev_all.compute())
    elif any("not_applicable" in c.get("bev", {}) for c in clips.values()):
        overall["bev"] = {"not_applicable": NOT_APPLICABLE_3D}
    return _clean({"overall": overall, "clips": clips})


def format_metrics(metrics: dict[str, Any]) -> str:
    """Human-readable summary lines ("n/a" where a figure is undefined, e.g. AP of a class without ground truth)."""

    def show(value: Any) -> str:
        return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    def bev_text(bev: dict[str, Any]) -> str:
        if "not_applicable" in bev:
            return f"BEV {bev['not_applicable']}"
        return f"BEV mAP {show(bev.get('mAP'))} NDS {show(bev.get('NDS'))}"

    lines = []
    for name, clip in metrics["clips"].items():
        parts = [f"AP {show(clip['det2d'].get('AP'))}", f"AP50 {show(clip['det2d'].get('AP50'))}"]
        for camera, tracking in clip["tracking"].items():
            parts.append(
                f"[{camera}] HOTA {show(tracking['hota'])} (DetA {show(tracking['deta'])} AssA "
                f"{show(tracking['assa'])}) MOTA {show(tracking['mota'])} IDF1 {show(tracking['idf1'])} "
                f"IDsw {show(tracking['num_switches'])}"
            )
        if "bev" in clip:
            parts.append(bev_text(clip["bev"]))
        if clip.get("unscored_gt_classes"):
            parts.append(f"ground truth not scored (class unknown to the labels): {clip['unscored_gt_classes']}")
        if clip.get("unscored_label_classes"):
            parts.append(f"labels not scored (class unknown to the ground truth): {clip['unscored_label_classes']}")
        lines.append(f"{name}: " + ", ".join(parts))
    overall = metrics["overall"]
    figures = [
        f"{key} {show(value)}" for section in ("det2d", "tracking") for key, value in overall.get(section, {}).items()
    ]
    if "bev" in overall:
        bev = overall["bev"]
        figures += (
            [bev_text(bev)]
            if "not_applicable" in bev
            else [f"{k} {show(v)}" for k, v in bev.items() if isinstance(v, float)]
        )
    lines.append(f"overall ({overall['num_clips']} clips): " + ", ".join(figures))
    if overall["without_ground_truth"]:
        lines.append(f"no ground truth for: {', '.join(overall['without_ground_truth'])}")
    return "\n".join(lines)
