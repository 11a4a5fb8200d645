"""Weighted Boxes Fusion for TTA / multi-teacher ensembles, with per-box disagreement as uncertainty."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autolabel.teachers.base import Teacher
from perception.geometry import box_iou
from perception.labels import Boxes2D

__all__ = ["EnsembleTeacher", "weighted_boxes_fusion"]


def weighted_boxes_fusion(
    predictions: Sequence[Boxes2D],
    *,
    weights: Sequence[float] | None = None,
    iou_threshold: float = 0.55,
    skip_score: float = 0.0,
) -> Boxes2D:
    """Fuse M sets of boxes of one image into clusters (same class, IoU with the running fused box >= threshold).

    Fused box = score-weighted mean of member coordinates; fused score = sum of weighted member scores / sum of
    weights (a model that misses the object counts as 0; one box per model per cluster at most). Uncertainty =
    1 - (weight fraction of models present) * (mean IoU of members with the fused box).
    """
    num_models = len(predictions)
    weights = np.ones(num_models) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(weights) != num_models:
        raise ValueError(f"weighted_boxes_fusion: expected {num_models} weights, found {len(weights)}")
    total_weight = float(weights.sum())
    boxes, scores, classes, models = [], [], [], []
    for m, prediction in enumerate(predictions):
        keep = prediction.score >= skip_score
        boxes.append(prediction.xyxy[keep])
        scores.append(prediction.score[keep].astype(np.float64) * weights[m])
        classes.append(prediction.class_id[keep])
        models.append(np.full(int(keep.sum()), m))
    if not boxes or sum(len(b) for b in boxes) == 0:
        return Boxes2D.empty()
    boxes, scores = np.concatenate(boxes), np.concatenate(scores)
    classes, models = np.concatenate(classes), np.concatenate(models)

    out_boxes, out_scores, out_classes, out_uncertainty = [], [], [], []
    for class_id in np.unique(classes):
        rows = np.flatnonzero(classes == class_id)
        rows = rows[np.argsort(-scores[rows], kind="stable")]
        fused: list[np.ndarray] = []
        members: list[list[int]] = []
        for row in rows:
            best, best_iou = -1, iou_threshold
            if fused:
                ious = box_iou(boxes[row : row + 1], np.stack(fused))[0]
                for c in np.argsort(-ious):
                    if ious[c] < iou_threshold:
                        break
                    if models[row] not in models[members[c]]:
                        best, best_iou = int(c), ious[c]
                        break
            if best < 0:
                fused.append(boxes[row].copy())
                members.append([int(row)])
                continue
            members[best].append(int(row))
            w = scores[members[best]]
            fused[best] = (boxes[members[best]] * w[:, None]).sum(axis=0) / max(w.sum(), 1e-12)
        for box, member in zip(fused, members):
            present = weights[np.unique(models[member])].sum() / total_weight
            agreement = float(box_iou(box[None], boxes[member])[0].mean())
            out_boxes.append(box)
            out_scores.append(scores[member].sum() / total_weight)
            out_classes.append(class_id)
            out_uncertainty.append(1.0 - present * agreement)
    return Boxes2D(
        xyxy=np.stack(out_boxes),
        score=np.clip(out_scores, 0.0, 1.0),
        class_id=np.asarray(out_classes),
        uncertainty=np.clip(out_uncertainty, 0.0, 1.0),
    )


class EnsembleTeacher(Teacher):
    """Runs several teachers with identical `class_names` and fuses their boxes per frame with WBF."""

    def __init__(
        self, teachers: Sequence[Teacher], *, weights: Sequence[float] | None = None, iou_threshold: float = 0.55
    ) -> None:
        if not teachers:
            raise ValueError("EnsembleTeacher: expected at least one teacher, found none")
        names = list(teachers[0].class_names)
        for i, teacher in enumerate(teachers[1:], start=1):
            if list(teacher.class_names) != names:
                raise ValueError(
                    f"EnsembleTeacher: teacher {i} class_names {teacher.class_names} differ from teacher 0 {names}"
                )
        self.teachers = list(teachers)
        self.weights = weights
        self.iou_threshold = iou_threshold
        self.class_names = names

    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Boxes2D]:
        """Fused detections per frame; uncertainty = ensemble disagreement."""
        per_teacher = [teacher.predict_batch(frames) for teacher in self.teachers]
        return [
            weighted_boxes_fusion([p[i] for p in per_teacher], weights=self.weights, iou_threshold=self.iou_threshold)
            for i in range(len(frames))
        ]
