"""Test-time augmentation around any teacher: horizontal flip and rescaled frames, fused with WBF (or NMS)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from autolabel.teachers.base import Teacher, class_wise_nms
from autolabel.wbf import weighted_boxes_fusion
from perception.labels import Boxes2D

__all__ = ["FlipTeacher", "ScaledTeacher", "TTATeacher"]


class FlipTeacher(Teacher):
    """Predicts on the horizontally flipped frame and maps boxes back to the original pixels."""

    def __init__(self, teacher: Teacher) -> None:
        self.teacher = teacher
        self.class_names = teacher.class_names
        self.name = f"flip({teacher.name or type(teacher).__name__})"

    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Boxes2D]:
        """Un-flipped boxes: x1' = W - x2, x2' = W - x1."""
        results = self.teacher.predict_batch([np.ascontiguousarray(f[:, ::-1]) for f in frames])
        out = []
        for frame, boxes in zip(frames, results):
            xyxy = boxes.xyxy.copy()
            xyxy[:, [0, 2]] = frame.shape[1] - boxes.xyxy[:, [2, 0]]
            out.append(boxes.with_fields(xyxy=xyxy, image_size=(frame.shape[1], frame.shape[0])))
        return out


class ScaledTeacher(Teacher):
    """Predicts on the frame resized by ``scale`` and maps boxes back to the original pixels."""

    def __init__(self, teacher: Teacher, scale: float) -> None:
        if scale <= 0:
            raise ValueError(f"ScaledTeacher: expected scale > 0, found {scale}")
        self.teacher = teacher
        self.scale = scale
        self.class_names = teacher.class_names
        self.name = f"scale{scale:g}({teacher.name or type(teacher).__name__})"

    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Boxes2D]:
        """Boxes in the original frame's pixels."""
        resized = [cv2.resize(f, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_LINEAR) for f in frames]
        return [
            boxes.with_fields(xyxy=boxes.xyxy / self.scale, image_size=(frame.shape[1], frame.shape[0]))
            for frame, boxes in zip(frames, self.teacher.predict_batch(resized))
        ]


class TTATeacher(Teacher):
    """Every (scale, flip) view of the frame through ``teacher``, fused per frame.

    ``fusion``: ``wbf`` (weighted boxes fusion; uncertainty = view disagreement) or ``nms`` (class-wise NMS over all
    views' boxes); ``iou_threshold`` is the fusion's IoU.
    """

    def __init__(
        self,
        teacher: Teacher,
        *,
        flip: bool = True,
        scales: Sequence[float] = (1.0,),
        iou_threshold: float = 0.55,
        fusion: str = "wbf",
    ) -> None:
        if fusion not in ("wbf", "nms"):
            raise ValueError(f"TTATeacher.fusion: expected 'wbf' or 'nms', found {fusion!r}")
        self.views: list[Teacher] = []
        for scale in scales:
            base = teacher if scale == 1.0 else ScaledTeacher(teacher, scale)
            self.views.append(base)
            if flip:
                self.views.append(FlipTeacher(base))
        self.iou_threshold = iou_threshold
        self.fusion = fusion
        self.teacher = teacher
        self.class_names = teacher.class_names
        self.class_map_source = teacher.class_map_source
        self.name = f"tta({teacher.name or type(teacher).__name__})"

    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Boxes2D]:
        """Fused boxes per frame."""
        per_view = [view.predict_batch(frames) for view in self.views]
        out = []
        for i, frame in enumerate(frames):
            views = [v[i] for v in per_view]
            if self.fusion == "wbf":
                fused = weighted_boxes_fusion(views, iou_threshold=self.iou_threshold)
            else:
                fused = class_wise_nms(Boxes2D.concat(views), self.iou_threshold)
            out.append(fused.with_fields(image_size=(frame.shape[1], frame.shape[0])))
        return out
