"""Test-time augmentation wrappers around any teacher: horizontal flip and multi-scale, fused with WBF."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from autolabel.teachers.base import Teacher
from autolabel.wbf import weighted_boxes_fusion
from perception.labels import Boxes2D

__all__ = ["FlipTeacher", "ScaledTeacher", "TTATeacher"]


class FlipTeacher(Teacher):
    """Predicts on the horizontally flipped frame and maps boxes back to the original pixels."""

    def __init__(self, teacher: Teacher) -> None:
        self.teacher = teacher
        self.class_names = teacher.class_names

    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Boxes2D]:
        """Un-flipped detections: x1' = W - x2, x2' = W - x1."""
        results = self.teacher.predict_batch([np.ascontiguousarray(f[:, ::-1]) for f in frames])
        out = []
        for frame, detections in zip(frames, results):
            xyxy = detections.xyxy.copy()
            xyxy[:, [0, 2]] = frame.shape[1] - detections.xyxy[:, [2, 0]]
            out.append(detections.with_fields(xyxy=xyxy))
        return out


class ScaledTeacher(Teacher):
    """Predicts on the frame resized by `scale` and maps boxes back to the original pixels."""

    def __init__(self, teacher: Teacher, scale: float) -> None:
        if scale <= 0:
            raise ValueError(f"ScaledTeacher: expected scale > 0, found {scale}")
        self.teacher = teacher
        self.scale = scale
        self.class_names = teacher.class_names

    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Boxes2D]:
        """Boxes2D in the original frame's pixels."""
        resized = [cv2.resize(f, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_LINEAR) for f in frames]
        return [d.with_fields(xyxy=d.xyxy / self.scale) for d in self.teacher.predict_batch(resized)]


class TTATeacher(Teacher):
    """Every (scale, flip) view of the frame through `teacher`, fused by WBF; uncertainty = view disagreement."""

    def __init__(
        self, teacher: Teacher, *, flip: bool = True, scales: Sequence[float] = (1.0,), iou_threshold: float = 0.55
    ) -> None:
        self.views: list[Teacher] = []
        for scale in scales:
            base = teacher if scale == 1.0 else ScaledTeacher(teacher, scale)
            self.views.append(base)
            if flip:
                self.views.append(FlipTeacher(base))
        self.iou_threshold = iou_threshold
        self.class_names = teacher.class_names

    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Boxes2D]:
        """Fused detections per frame."""
        per_view = [view.predict_batch(frames) for view in self.views]
        return [
            weighted_boxes_fusion([v[i] for v in per_view], iou_threshold=self.iou_threshold)
            for i in range(len(frames))
        ]
