"""Per-video 2D box AP (frames as COCO images) for tracking reports; CLEAR-MOT / IDF1 live with motmetrics/TrackEval."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from perception.metrics.det2d import CocoDetectionEvaluator


def _column(boxes: Any, name: str, default: Any = None) -> Any:
    """A field of a Boxes2D-like object or dict (None if absent and no default)."""
    value = boxes.get(name) if isinstance(boxes, dict) else getattr(boxes, name, None)
    return default if value is None else value


def video_box_ap(
    pred_frames: Iterable[Any], gt_frames: Iterable[Any], classes: int | Sequence[str], *, iou_threshold: float = 0.5
) -> dict[str, Any]:
    """AP at one IoU threshold (default AP50) over a video: frame i of ``pred_frames`` vs frame i of ``gt_frames``.

    Frames are Boxes2D-like (``xyxy`` pixels, ``class_id``, ``score``; preds need score) or dicts with those keys.
    Returns ``{"AP": ..., "AR": ..., "per_class": {...}, "num_frames": n}`` under the COCO rules of det2d
    (area range "all", at most 100 boxes per frame and class).
    """
    evaluator = CocoDetectionEvaluator(
        classes, iou_thresholds=(iou_threshold,), max_dets=(100,), area_ranges={"all": (0.0, 1e10)}
    )
    preds, gts = list(pred_frames), list(gt_frames)
    if len(preds) != len(gts):
        raise ValueError(f"video_box_ap: {len(preds)} prediction frames but {len(gts)} ground-truth frames")
    for pred, gt in zip(preds, gts):
        pred_xyxy = np.asarray(_column(pred, "xyxy"), dtype=np.float64).reshape(-1, 4)
        gt_xyxy = np.asarray(_column(gt, "xyxy"), dtype=np.float64).reshape(-1, 4)
        score = _column(pred, "score")
        if score is None:
            raise ValueError("video_box_ap: prediction frames need a 'score' field")
        evaluator.add_image(
            pred_xyxy,
            score,
            _column(pred, "class_id", np.zeros(len(pred_xyxy), np.int64)),
            gt_xyxy,
            _column(gt, "class_id", np.zeros(len(gt_xyxy), np.int64)),
        )
    summary = evaluator.compute()
    return {
        "AP": summary["AP"],
        "AR": summary["AR100"],
        "iou_threshold": float(iou_threshold),
        "per_class": {k: {"AP": v["AP"], "AR": v["AR"]} for k, v in summary["per_class"].items()},
        "num_frames": summary["num_images"],
    }
