"""nuScenes-style BEV 3D detection metrics (mAP by centre distance, TP errors, NDS-like score); numpy only.

Follows nuscenes-devkit 1.2 (``nuscenes/eval/detection/algo.py``, ``evaluate.py``) on every step that does not need
nuScenes' database:
- per class, predictions of all frames sorted by score (ties: later-added first, as the devkit's sort), each greedily
  matched to the nearest not-yet-matched GT of the same class in the same frame by BEV centre distance, match iff
  distance < threshold (strictly less, as the devkit);
- precision sampled at 101 recall points with ``np.interp(..., right=0)`` (no precision envelope, as the devkit);
  AP = mean of max(precision - 0.1, 0) over recall points above 0.1, divided by 0.9;
- TP errors from the matches at ``tp_threshold`` (2 m): the devkit's cumulative mean of the errors along the score-
  sorted TPs, resampled at each recall point, averaged over the recall points from 0.1 (exclusive) up to the highest
  recall reached; 1.0 if recall never passes 0.1. ATE = BEV centre distance (m), ASE = 1 - IoU of the two boxes
  aligned (same centre and yaw, sizes only), AOE = smallest yaw difference (rad; period pi for "barrier"),
  AVE = L2 velocity difference (m/s); AOE/AVE are nan for "traffic_cone", AVE nan for "barrier" (devkit's rule);
- NDS-like = (5 * mAP + sum over the 4 TP metrics of max(0, 1 - mean error)) / 9 (devkit's NDS has AAE as a
  fifth TP metric and divides by 10; we have no attributes).
Deviations (deliberate): a class with no GT gets AP nan and is left out of every mean (the devkit scores it 0);
``max_range`` filters GT and predictions by BEV distance from the ego origin (strictly less, like the devkit's
class_range) but there is no lidar-points or bike-rack filtering and no 500-boxes-per-frame limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

TP_METRICS = ("ate", "ase", "aoe", "ave")
NUSCENES_TP_EXCLUSIONS: Mapping[str, tuple[str, ...]] = {"traffic_cone": ("aoe", "ave"), "barrier": ("ave",)}
NUSCENES_YAW_PERIOD: Mapping[str, float] = {"barrier": math.pi}
_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def _field(boxes: Any, name: str, width: int | None, role: str, default: float | None = None) -> np.ndarray:
    """One column of a duck-typed box table (attribute or dict key) as float64 (N,) or (N, width)."""
    value = boxes.get(name) if isinstance(boxes, Mapping) else getattr(boxes, name, None)
    if value is None:
        if default is None:
            raise ValueError(f"BevDetectionEvaluator: {role} boxes lack field '{name}' (found type {type(boxes)!r})")
        return np.full(0, default)
    array = np.asarray(value, dtype=np.float64)
    if width is not None:
        array = array.reshape(-1, width) if array.size else np.zeros((0, width))
    else:
        array = array.reshape(-1)
    return array


def _as_table(boxes: Any, role: str) -> dict[str, np.ndarray]:
    """Normalise a Boxes3D-like object or dict to arrays, checking every column has the same length."""
    table = {
        "center": _field(boxes, "center", 3, role),
        "size": _field(boxes, "size", 3, role),
        "yaw": _field(boxes, "yaw", None, role),
        "velocity": _field(boxes, "velocity", 2, role),
        "class_id": _field(boxes, "class_id", None, role),
    }
    n = len(table["center"])
    table["score"] = _field(boxes, "score", None, role, default=1.0) if role == "pred" else np.ones(n)
    if role == "pred" and len(table["score"]) == 0 and n:
        raise ValueError(f"BevDetectionEvaluator: pred boxes lack field 'score' for {n} boxes")
    for name, column in table.items():
        if len(column) != n:
            raise ValueError(f"BevDetectionEvaluator: {role} field '{name}' has {len(column)} rows, expected {n}")
    if role == "pred" and not np.all(np.isfinite(table["score"])):
        raise ValueError("BevDetectionEvaluator: pred field 'score' must be finite")
    return table


def _cummean(values: np.ndarray) -> np.ndarray:
    """Cumulative mean ignoring nans; all-nan input gives ones (devkit convention)."""
    if np.all(np.isnan(values)):
        return np.ones(len(values))
    sums = np.nancumsum(values)
    counts = np.cumsum(~np.isnan(values))
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts != 0)


def yaw_difference(yaw_gt: np.ndarray, yaw_pred: np.ndarray, period: float = 2 * math.pi) -> np.ndarray:
    """Absolute smallest yaw difference (rad, in [0, pi]) given the orientation period (2 pi, or pi for symmetric)."""
    diff = np.mod(np.asarray(yaw_gt) - np.asarray(yaw_pred) + period / 2, period) - period / 2
    diff = np.where(diff > math.pi, diff - 2 * math.pi, diff)
    return np.abs(diff)


def aligned_iou(size_gt: np.ndarray, size_pred: np.ndarray) -> np.ndarray:
    """3D IoU of boxes sharing centre and yaw: prod(min sizes) / union; sizes (..., 3) metres."""
    inter = np.prod(np.minimum(size_gt, size_pred), axis=-1)
    union = np.prod(size_gt, axis=-1) + np.prod(size_pred, axis=-1) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


class BevDetectionEvaluator:
    """Accumulates predicted / GT 3D boxes frame by frame and computes nuScenes-style metrics (see module doc)."""

    def __init__(
        self,
        classes: Sequence[str],
        distance_thresholds: Sequence[float] = (0.5, 1.0, 2.0, 4.0),
        max_range: float | Mapping[str, float] | None = None,
        *,
        tp_threshold: float = 2.0,
        min_recall: float = 0.1,
        min_precision: float = 0.1,
        mean_ap_weight: float = 5.0,
        yaw_period: Mapping[str, float] | None = None,
        tp_exclusions: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        if not classes:
            raise ValueError("BevDetectionEvaluator: classes is empty, expected at least one class name")
        if not 0 <= min_precision < 1 or not 0 <= min_recall <= 1:
            raise ValueError(
                f"BevDetectionEvaluator: min_precision in [0,1) and min_recall in [0,1], "
                f"found {min_precision}, {min_recall}"
            )
        self.classes = list(classes)
        self.distance_thresholds = tuple(float(t) for t in distance_thresholds)
        if isinstance(max_range, Mapping):
            missing = [c for c in self.classes if c not in max_range]
            if missing:
                raise ValueError(f"BevDetectionEvaluator: max_range lacks classes {missing}")
        self.max_range = max_range
        self.tp_threshold = float(tp_threshold)
        self.min_recall = float(min_recall)
        self.min_precision = float(min_precision)
        self.mean_ap_weight = float(mean_ap_weight)
        self.yaw_period = dict(NUSCENES_YAW_PERIOD if yaw_period is None else yaw_period)
        exclusions = NUSCENES_TP_EXCLUSIONS if tp_exclusions is None else tp_exclusions
        for name, metrics in exclusions.items():
            unknown = set(metrics) - set(TP_METRICS)
            if unknown:
                raise ValueError(
                    f"BevDetectionEvaluator: tp_exclusions[{name!r}] has {sorted(unknown)}, "
                    f"expected names from {TP_METRICS}"
                )
        self.tp_exclusions = {k: tuple(v) for k, v in exclusions.items()}
        self.reset()

    def reset(self) -> None:
        """Forget all accumulated frames."""
        self._frames: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = []

    def _keep(self, table: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Drop boxes of unknown class ids and (if max_range) at BEV range >= max_range."""
        class_id = table["class_id"]
        keep = (class_id >= 0) & (class_id < len(self.classes)) & (class_id == np.round(class_id))
        if self.max_range is not None:
            if isinstance(self.max_range, Mapping):
                limits = np.array([self.max_range[c] for c in self.classes], dtype=np.float64)
                limit = np.where(keep, limits[np.where(keep, class_id, 0).astype(np.int64)], 0.0)
            else:
                limit = float(self.max_range)
            keep &= np.hypot(table["center"][:, 0], table["center"][:, 1]) < limit
        out = {name: column[keep] for name, column in table.items()}
        out["class_id"] = out["class_id"].astype(np.int64)
        return out

    def add_frame(self, pred: Any, gt: Any) -> None:
        """Add one frame: ``pred`` and ``gt`` are Boxes3D-like (attributes or dict keys), ego frame, metres."""
        self._frames.append((self._keep(_as_table(pred, "pred")), self._keep(_as_table(gt, "gt"))))

    def _match(self, class_index: int, threshold: float) -> dict[str, np.ndarray] | None:
        """Greedy score-ordered matching of one class at one distance threshold; None if there is no GT."""
        preds, gts = [], []
        for frame_index, (pred, gt) in enumerate(self._frames):
            pred_rows = np.flatnonzero(pred["class_id"] == class_index)
            gt_rows = np.flatnonzero(gt["class_id"] == class_index)
            preds += [(frame_index, row) for row in pred_rows]
            gts.append(gt_rows)
        num_gt = sum(len(rows) for rows in gts)
        if num_gt == 0:
            return None
        scores = np.array([self._frames[f][0]["score"][r] for f, r in preds], dtype=np.float64)
        order = np.argsort(scores, kind="stable")[::-1]
        taken = [np.zeros(len(rows), dtype=bool) for rows in gts]
        is_tp = np.zeros(len(preds), dtype=bool)
        errors: dict[str, list[float]] = {m: [] for m in TP_METRICS}
        tp_scores: list[float] = []
        name = self.classes[class_index]
        period = self.yaw_period.get(name, 2 * math.pi)
        for rank, pred_index in enumerate(order):
            frame_index, row = preds[pred_index]
            pred, gt = self._frames[frame_index]
            gt_rows = gts[frame_index]
            if len(gt_rows) == 0:
                continue
            dist = np.linalg.norm(gt["center"][gt_rows, :2] - pred["center"][row, :2], axis=1)
            dist[taken[frame_index]] = np.inf
            best = int(np.argmin(dist))
            if not dist[best] < threshold:
                continue
            taken[frame_index][best] = True
            is_tp[rank] = True
            g = gt_rows[best]
            errors["ate"].append(float(dist[best]))
            errors["ase"].append(float(1.0 - aligned_iou(gt["size"][g], pred["size"][row])))
            errors["aoe"].append(float(yaw_difference(gt["yaw"][g], pred["yaw"][row], period)))
            errors["ave"].append(float(np.linalg.norm(gt["velocity"][g] - pred["velocity"][row])))
            tp_scores.append(float(scores[pred_index]))
        return {
            "num_gt": np.array(num_gt),
            "num_pred": np.array(len(preds)),
            "is_tp": is_tp,
            "scores": scores[order],
            "tp_scores": np.array(tp_scores),
            **{m: np.array(v, dtype=np.float64) for m, v in errors.items()},
        }

    def score_floors(self, *, threshold: float | None = None, min_gt: int = 20, beta: float = 1.0) -> dict[str, Any]:
        """Per class, the score floor that maximises the F-beta score of the kept predictions (match within
        ``threshold`` metres, default ``tp_threshold``), with its precision and recall; classes with fewer than
        ``min_gt`` ground-truth boxes get no floor (0.0). For choosing pseudo-label thresholds on a labelled split."""
        threshold = self.tp_threshold if threshold is None else float(threshold)
        out: dict[str, Any] = {}
        for class_index, name in enumerate(self.classes):
            match = self._match(class_index, threshold)
            num_gt = 0 if match is None else int(match["num_gt"])
            entry = {"floor": 0.0, "num_gt": num_gt, "precision": math.nan, "recall": math.nan, "f_score": math.nan}
            if match is not None and len(match["is_tp"]) and num_gt >= min_gt:
                tp = np.cumsum(match["is_tp"]).astype(np.float64)
                kept = np.arange(1, len(tp) + 1, dtype=np.float64)
                scores = match["scores"]
                last_of_score = np.r_[scores[1:] != scores[:-1], True]  # cut only between different scores
                precision, recall = tp / kept, tp / num_gt
                f_score = (1 + beta**2) * precision * recall / np.maximum(beta**2 * precision + recall, 1e-12)
                f_score = np.where(last_of_score, f_score, -1.0)
                best = int(np.argmax(f_score))
                entry.update(
                    floor=float(scores[best]),
                    precision=float(precision[best]),
                    recall=float(recall[best]),
                    f_score=float(f_score[best]),
                )
            out[name] = entry
        return out

    def score_calibration(self, *, threshold: float | None = None) -> dict[str, Any]:
        """Per class, and pooled over classes as "*": the precision of the predictions (matched within ``threshold``
        metres, default ``tp_threshold``) as a non-decreasing function of their score, as knots ``score`` and
        ``precision`` (``isotonic_knots``), with ``num_gt`` and ``num_pred``. A class without
        ground truth or predictions gets empty knots. For soft pseudo-labels (``data.train_labels_quality``)."""
        threshold = self.tp_threshold if threshold is None else float(threshold)
        out: dict[str, Any] = {}
        pooled_scores, pooled_tp, pooled_gt = [], [], 0
        for class_index, name in enumerate(self.classes):
            match = self._match(class_index, threshold)
            scores = np.zeros(0) if match is None else match["scores"]
            is_tp = np.zeros(0, bool) if match is None else match["is_tp"]
            num_gt = 0 if match is None else int(match["num_gt"])
            knots, precision = isotonic_knots(scores, is_tp) if num_gt else ([], [])
            out[name] = {"score": knots, "precision": precision, "num_gt": num_gt, "num_pred": len(scores)}
            if num_gt:
                pooled_scores.append(scores)
                pooled_tp.append(is_tp)
                pooled_gt += num_gt
        scores = np.concatenate(pooled_scores) if pooled_scores else np.zeros(0)
        is_tp = np.concatenate(pooled_tp) if pooled_tp else np.zeros(0, bool)
        knots, precision = isotonic_knots(scores, is_tp)
        out["*"] = {"score": knots, "precision": precision, "num_gt": pooled_gt, "num_pred": len(scores)}
        return out

    def _curves(self, match: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Precision, confidence and cumulative-mean TP errors sampled at the 101 recall points (devkit)."""
        if not match["is_tp"].any():  # devkit's "no predictions": precision 0, errors 1
            zeros = np.zeros(len(_RECALL_POINTS))
            return {"precision": zeros, "confidence": zeros, **{m: np.ones_like(zeros) for m in TP_METRICS}}
        tp = np.cumsum(match["is_tp"]).astype(np.float64)
        fp = np.cumsum(~match["is_tp"]).astype(np.float64)
        recall = tp / float(match["num_gt"])
        precision = np.interp(_RECALL_POINTS, recall, tp / (tp + fp), right=0)
        confidence = np.interp(_RECALL_POINTS, recall, match["scores"], right=0)
        curves = {"precision": precision, "confidence": confidence}
        for metric in TP_METRICS:
            running = _cummean(match[metric])
            curves[metric] = np.interp(confidence[::-1], match["tp_scores"][::-1], running[::-1])[::-1]
        return curves

    def _average_precision(self, precision: np.ndarray) -> float:
        """Devkit calc_ap: mean of clipped precision above min_recall, normalised by (1 - min_precision)."""
        clipped = precision[round(100 * self.min_recall) + 1 :] - self.min_precision
        return float(np.mean(np.maximum(clipped, 0.0))) / (1.0 - self.min_precision)

    def _tp_error(self, curves: dict[str, np.ndarray], metric: str) -> float:
        """Devkit calc_tp: mean error over recall points (min_recall, max recall reached]; 1.0 if none."""
        first = round(100 * self.min_recall) + 1
        nonzero = np.flatnonzero(curves["confidence"])
        last = int(nonzero[-1]) if len(nonzero) else 0
        if last < first:
            return 1.0
        return float(np.mean(curves[metric][first : last + 1]))

    def compute(self) -> dict[str, Any]:
        """Metrics as a JSON-serialisable dict (nan for classes without GT; see module doc for definitions)."""
        thresholds = list(self.distance_thresholds)
        per_class: dict[str, dict[str, Any]] = {}
        for class_index, name in enumerate(self.classes):
            entry: dict[str, Any] = {"num_gt": 0, "num_pred": 0, "ap": {}}
            matches = {t: self._match(class_index, t) for t in {*thresholds, self.tp_threshold}}
            for threshold in thresholds:
                match = matches[threshold]
                entry["ap"][str(threshold)] = (
                    math.nan if match is None else self._average_precision(self._curves(match)["precision"])
                )
            tp_match = matches[self.tp_threshold]
            tp_curves = None if tp_match is None else self._curves(tp_match)
            if tp_match is not None:
                entry["num_gt"] = int(tp_match["num_gt"])
                entry["num_pred"] = int(tp_match["num_pred"])
                entry["num_tp"] = int(tp_match["is_tp"].sum())
                entry["precision"] = entry["num_tp"] / entry["num_pred"] if entry["num_pred"] else math.nan
                entry["recall"] = entry["num_tp"] / entry["num_gt"]
            else:
                entry["num_pred"] = sum(int((p["class_id"] == class_index).sum()) for p, _ in self._frames)
                entry["num_tp"] = 0
            for metric in TP_METRICS:
                excluded = metric in self.tp_exclusions.get(name, ())
                entry[metric] = math.nan if tp_curves is None or excluded else self._tp_error(tp_curves, metric)
            aps = list(entry["ap"].values())
            entry["mean_ap"] = math.nan if tp_match is None else float(np.mean(aps))
            per_class[name] = entry
        return self._summarise(per_class, thresholds)

    def _summarise(self, per_class: dict[str, dict[str, Any]], thresholds: list[float]) -> dict[str, Any]:
        """Means over classes with GT, and the NDS-like score."""
        valid = [e for e in per_class.values() if e["num_gt"] > 0]

        def mean(values: list[float]) -> float:
            finite = [v for v in values if not math.isnan(v)]
            return float(np.mean(finite)) if finite else math.nan

        result: dict[str, Any] = {
            "mAP": mean([e["mean_ap"] for e in valid]),
            "ap_per_threshold": {str(t): mean([e["ap"][str(t)] for e in valid]) for t in thresholds},
        }
        for metric in TP_METRICS:
            result["m" + metric.upper()] = mean([e[metric] for e in valid])
        tp_scores = [
            0.0 if math.isnan(result["m" + m.upper()]) else max(0.0, 1.0 - result["m" + m.upper()]) for m in TP_METRICS
        ]
        weighted = self.mean_ap_weight * result["mAP"] + sum(tp_scores)
        result["NDS"] = math.nan if math.isnan(result["mAP"]) else weighted / (self.mean_ap_weight + len(tp_scores))
        result["per_class"] = per_class
        max_range = dict(self.max_range) if isinstance(self.max_range, Mapping) else self.max_range
        result["config"] = {
            "classes": list(self.classes),
            "distance_thresholds": thresholds,
            "tp_threshold": self.tp_threshold,
            "min_recall": self.min_recall,
            "min_precision": self.min_precision,
            "num_frames": len(self._frames),
            "max_range": max_range,
        }
        return result


def isotonic_knots(scores: np.ndarray, correct: np.ndarray, *, digits: int = 4) -> tuple[list[float], list[float]]:
    """Non-decreasing precision-vs-score curve (pool-adjacent-violators on 0/1 ``correct``), as knots: each pooled
    block's mean score and its precision, for ``np.interp``. Empty input gives empty lists."""
    order = np.argsort(np.asarray(scores, np.float64), kind="stable")
    xs, ys = np.asarray(scores, np.float64)[order], np.asarray(correct, np.float64)[order]
    blocks: list[list[float]] = []  # [sum of correct, sum of scores, count]
    for x, y in zip(xs, ys):
        blocks.append([y, x, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][2] >= blocks[-1][0] / blocks[-1][2]:
            last = blocks.pop()
            blocks[-1] = [a + b for a, b in zip(blocks[-1], last)]
    knot_scores = [round(s / n, digits) for _, s, n in blocks]
    knot_precision = [round(c / n, digits) for c, _, n in blocks]
    return knot_scores, knot_precision
