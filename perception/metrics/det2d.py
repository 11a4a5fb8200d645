"""COCO-definition 2D box AP / AR (our numpy implementation of the pycocotools ``COCOeval`` "bbox" rules).

Rules reproduced (pycocotools 2.0.x): IoU without the +1 pixel convention; a crowd GT's IoU is
intersection / prediction area and it can absorb any number of predictions; per image and class the predictions are
sorted by score (stable) and cut to max(max_dets); at each IoU threshold t a prediction matches the not-yet-matched GT
with the highest IoU >= t (ties: the later GT), preferring non-ignored GTs; a GT is ignored when crowd or outside the
area range (inclusive bounds, GT area from ``gt_area`` or box area), and an unmatched prediction outside the area range
is ignored; precision has the monotone envelope and is read at 101 recall points (searchsorted 'left', 0 past the end);
AP = mean over IoU thresholds, recall points and classes with at least one non-ignored GT.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from perception.geometry import box_iou

COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
COCO_RECALL_POINTS = np.linspace(0.0, 1.0, 101)
COCO_AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}


def _match_image(
    ious: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy COCO matching; ious (D, G), D in score order, G non-ignored first -> (matched, matched_ignored) (T, D)."""
    num_dt, num_gt = ious.shape
    matched = np.zeros((len(thresholds), num_dt), dtype=bool)
    matched_ignored = np.zeros((len(thresholds), num_dt), dtype=bool)
    if num_gt == 0 or num_dt == 0:
        return matched, matched_ignored
    rows, row_max = ious.tolist(), ious.max(axis=1).tolist()
    ignore, crowd = gt_ignore.tolist(), gt_crowd.tolist()
    for t_index, threshold in enumerate(thresholds.tolist()):
        min_iou = min(threshold, 1 - 1e-10)
        gt_taken = [False] * num_gt
        for d in range(num_dt):
            if row_max[d] < min_iou:
                continue
            best, best_iou, row = -1, min_iou, rows[d]
            for g in range(num_gt):
                if gt_taken[g] and not crowd[g]:
                    continue
                if best > -1 and not ignore[best] and ignore[g]:
                    break  # a non-ignored match beats any ignored GT (they come last)
                if row[g] < best_iou:
                    continue
                best, best_iou = g, row[g]  # ties go to the later GT
            if best == -1:
                continue
            gt_taken[best] = True
            matched[t_index, d] = True
            matched_ignored[t_index, d] = ignore[best]
    return matched, matched_ignored


class CocoDetectionEvaluator:
    """Accumulates per-image 2D detections and GT and computes COCO AP/AR (matches pycocotools to float rounding)."""

    def __init__(
        self,
        classes: int | Sequence[str],
        *,
        iou_thresholds: Sequence[float] | None = None,
        max_dets: Sequence[int] = (1, 10, 100),
        area_ranges: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        self.class_names = [str(i) for i in range(classes)] if isinstance(classes, int) else list(classes)
        if not self.class_names:
            raise ValueError("CocoDetectionEvaluator: classes is empty, expected a count >= 1 or class names")
        self.iou_thresholds = np.asarray(COCO_IOU_THRESHOLDS if iou_thresholds is None else iou_thresholds, float)
        self.max_dets = tuple(int(m) for m in max_dets)
        self.area_ranges = dict(COCO_AREA_RANGES if area_ranges is None else area_ranges)
        if "all" not in self.area_ranges:
            raise ValueError(
                f"CocoDetectionEvaluator: area_ranges needs an 'all' entry, found {list(self.area_ranges)}"
            )
        self.reset()

    def reset(self) -> None:
        """Forget all accumulated images."""
        num_classes = len(self.class_names)
        # _records[area][class] -> list of (scores (D,), matched (T,D), ignored (T,D), num_non_ignored_gt)
        self._records = {a: [[] for _ in range(num_classes)] for a in self.area_ranges}
        self.num_images = 0

    def _check(self, array: Any, shape_tail: tuple[int, ...], field: str, dtype: Any) -> np.ndarray:
        """Validate one input array's trailing shape."""
        out = np.asarray(array, dtype=dtype)
        if out.size == 0:
            return out.reshape((0, *shape_tail))
        if out.ndim != 1 + len(shape_tail) or out.shape[1:] != shape_tail:
            raise ValueError(
                f"CocoDetectionEvaluator.add_image: {field} expected shape (N, {shape_tail}), found {out.shape}"
            )
        return out

    def add_image(
        self,
        pred_xyxy: Any,
        pred_scores: Any,
        pred_class_ids: Any,
        gt_xyxy: Any,
        gt_class_ids: Any,
        gt_iscrowd: Any = None,
        *,
        gt_area: Any = None,
    ) -> None:
        """Add one image's predictions and GT: boxes x1,y1,x2,y2 pixels, class ids 0-based (others dropped)."""
        pred_boxes = self._check(pred_xyxy, (4,), "pred_xyxy", np.float64)
        pred_scores = self._check(pred_scores, (), "pred_scores", np.float64)
        pred_cls = self._check(pred_class_ids, (), "pred_class_ids", np.int64)
        gt_boxes = self._check(gt_xyxy, (4,), "gt_xyxy", np.float64)
        gt_cls = self._check(gt_class_ids, (), "gt_class_ids", np.int64)
        crowd = np.zeros(len(gt_boxes), bool) if gt_iscrowd is None else self._check(gt_iscrowd, (), "gt_iscrowd", bool)
        box_area = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
        area = box_area if gt_area is None else self._check(gt_area, (), "gt_area", np.float64)
        for name, column, n in (
            ("pred_scores", pred_scores, len(pred_boxes)),
            ("pred_class_ids", pred_cls, len(pred_boxes)),
            ("gt_class_ids", gt_cls, len(gt_boxes)),
            ("gt_iscrowd", crowd, len(gt_boxes)),
            ("gt_area", area, len(gt_boxes)),
        ):
            if len(column) != n:
                raise ValueError(f"CocoDetectionEvaluator.add_image: {name} has {len(column)} rows, expected {n}")
        self.num_images += 1
        for class_id in np.unique(np.concatenate([pred_cls, gt_cls])):
            if not 0 <= class_id < len(self.class_names):
                continue
            dt_rows = np.flatnonzero(pred_cls == class_id)
            dt_rows = dt_rows[np.argsort(-pred_scores[dt_rows], kind="mergesort")][: max(self.max_dets)]
            gt_rows = np.flatnonzero(gt_cls == class_id)
            ious = box_iou(pred_boxes[dt_rows], gt_boxes[gt_rows], b_iscrowd=crowd[gt_rows])
            dt_box = pred_boxes[dt_rows]
            dt_area = (dt_box[:, 2] - dt_box[:, 0]) * (dt_box[:, 3] - dt_box[:, 1])
            matches: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}  # area ranges often ignore the same GTs
            for area_name, (low, high) in self.area_ranges.items():
                gt_ignore = crowd[gt_rows] | (area[gt_rows] < low) | (area[gt_rows] > high)
                if gt_ignore.tobytes() not in matches:
                    order = np.argsort(gt_ignore, kind="mergesort")
                    matches[gt_ignore.tobytes()] = _match_image(
                        ious[:, order], gt_ignore[order], crowd[gt_rows][order], self.iou_thresholds
                    )
                matched, matched_ignored = matches[gt_ignore.tobytes()]
                outside = (dt_area < low) | (dt_area > high)
                ignored = matched_ignored | (~matched & outside[None, :])
                self._records[area_name][class_id].append(
                    (pred_scores[dt_rows], matched, ignored, int((~gt_ignore).sum()))
                )

    def _accumulate(self, area_name: str, class_id: int, max_det: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Precision (T, R) and recall (T,) for one class / area range / max_det; None without non-ignored GT."""
        records = self._records[area_name][class_id]
        num_gt = sum(r[3] for r in records)
        if num_gt == 0:
            return None
        num_t = len(self.iou_thresholds)
        scores = np.concatenate([r[0][:max_det] for r in records]) if records else np.zeros(0)
        order = np.argsort(-scores, kind="mergesort")
        matched = np.concatenate([r[1][:, :max_det] for r in records], axis=1)[:, order]
        ignored = np.concatenate([r[2][:, :max_det] for r in records], axis=1)[:, order]
        tp = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)
        fp = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
        precision = np.zeros((num_t, len(COCO_RECALL_POINTS)))
        recall = np.zeros(num_t)
        for t in range(num_t):
            if tp.shape[1] == 0:
                continue
            rc = tp[t] / num_gt
            pr = tp[t] / (fp[t] + tp[t] + np.spacing(1))
            pr = np.maximum.accumulate(pr[::-1])[::-1]
            recall[t] = rc[-1]
            idx = np.searchsorted(rc, COCO_RECALL_POINTS, side="left")
            valid = idx < len(rc)
            precision[t, valid] = pr[idx[valid]]
        return precision, recall

    def _threshold_index(self, value: float) -> int | None:
        """Index of an IoU threshold, or None if it is not evaluated."""
        hits = np.flatnonzero(np.isclose(self.iou_thresholds, value, atol=1e-9))
        return int(hits[0]) if len(hits) else None

    def compute(self) -> dict[str, Any]:
        """COCO summary (AP, AP50, AP75, AP_<area>, AR<max_det>, AR_<area>) and per-class AP; nan if undefined."""
        largest = max(self.max_dets)
        t50, t75 = self._threshold_index(0.5), self._threshold_index(0.75)
        result: dict[str, Any] = {}
        per_class: dict[str, dict[str, Any]] = {}
        for area_name in self.area_ranges:
            for max_det in self.max_dets:
                if area_name != "all" and max_det != largest:
                    continue
                curves = [self._accumulate(area_name, k, max_det) for k in range(len(self.class_names))]
                valid = [c for c in curves if c is not None]
                suffix = "" if area_name == "all" else f"_{area_name}"

                def mean(values: list[float]) -> float:
                    return float(np.mean(values)) if values else math.nan

                if max_det == largest:
                    result["AP" + suffix] = mean([c[0].mean() for c in valid])
                    if area_name == "all":
                        for key, t in (("AP50", t50), ("AP75", t75)):
                            result[key] = math.nan if t is None else mean([c[0][t].mean() for c in valid])
                        for name, c in zip(self.class_names, curves):
                            per_class[name] = {
                                "AP": math.nan if c is None else float(c[0].mean()),
                                "AP50": math.nan if c is None or t50 is None else float(c[0][t50].mean()),
                                "AP75": math.nan if c is None or t75 is None else float(c[0][t75].mean()),
                                "AR": math.nan if c is None else float(c[1].mean()),
                            }
                ar_key = f"AR{max_det}" if area_name == "all" else f"AR{suffix}"
                result[ar_key] = mean([c[1].mean() for c in valid])
        result["per_class"] = per_class
        result["num_images"] = self.num_images
        return result

    def coco_stats(self) -> list[float]:
        """The 12 numbers in pycocotools ``COCOeval.stats`` order (default settings); nan where it prints -1."""
        r = self.compute()
        keys = [
            "AP",
            "AP50",
            "AP75",
            "AP_small",
            "AP_medium",
            "AP_large",
            "AR1",
            "AR10",
            "AR100",
            "AR_small",
            "AR_medium",
            "AR_large",
        ]
        return [float(r.get(k, math.nan)) for k in keys]
