"""Teacher interface and shared pre/post-processing: letterbox, class mapping, class-wise NMS."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from perception.geometry import box_iou
from perception.labels import Boxes2D

__all__ = ["ClassMapper", "Teacher", "class_wise_nms", "letterbox", "load_class_map", "nms"]


class Teacher(ABC):
    """A single-frame detector: BGR uint8 (H,W,3) frames in, `Boxes2D` in input pixels out (scores kept down to a floor)."""

    class_names: list[str]

    @abstractmethod
    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Boxes2D]:
        """One `Boxes2D` per frame, boxes in that frame's pixel coordinates."""

    def predict(self, frame: np.ndarray) -> Boxes2D:
        """Boxes2D for one BGR frame."""
        return self.predict_batch([frame])[0]


class ClassMapper:
    """Maps model class indices to output classes; indices absent from `class_map` are dropped."""

    def __init__(self, class_map: dict[int, str] | None, source_names: Sequence[str]) -> None:
        if class_map is None:
            class_map = {i: name for i, name in enumerate(source_names)}
        self.class_names: list[str] = list(dict.fromkeys(class_map[k] for k in sorted(class_map)))
        size = max(max(class_map) + 1, len(source_names))
        self.lookup = np.full(size, -1, dtype=np.int64)
        for source_index, name in class_map.items():
            if source_index < 0:
                raise ValueError(f"class_map: expected non-negative model class indices, found {source_index}")
            self.lookup[source_index] = self.class_names.index(name)

    def __call__(self, source_class: np.ndarray) -> np.ndarray:
        """(N,) model class index -> (N,) output class id (-1 = not mapped)."""
        source_class = np.asarray(source_class, dtype=np.int64)
        inside = (source_class >= 0) & (source_class < len(self.lookup))
        return np.where(inside, self.lookup[np.clip(source_class, 0, len(self.lookup) - 1)], -1)


def load_class_map(path: str | Path, source_names: Sequence[str]) -> dict[int, str]:
    """Read a YAML `{mapping: {source class name: output class name}}` into {model class index: output name}."""
    import yaml

    path = Path(path)
    with open(path) as handle:
        document = yaml.safe_load(handle)
    mapping = document.get("mapping") if isinstance(document, dict) else None
    if not isinstance(mapping, dict):
        raise ValueError(
            f"{path}: field 'mapping': expected a dict source name -> output name, found {type(mapping).__name__}"
        )
    index_of = {name: i for i, name in enumerate(source_names)}
    result: dict[int, str] = {}
    for source_name, output_name in mapping.items():
        if source_name not in index_of:
            raise ValueError(f"{path}: field 'mapping': source class {source_name!r} not in the model's classes")
        result[index_of[source_name]] = str(output_name)
    return result


def letterbox(frame: np.ndarray, size: tuple[int, int], pad_value: int = 114) -> tuple[np.ndarray, float]:
    """Resize keeping aspect into (height, width) = size, pad bottom/right with pad_value; returns (image, scale)."""
    height, width = size
    scale = min(height / frame.shape[0], width / frame.shape[1])
    new_w, new_h = int(round(frame.shape[1] * scale)), int(round(frame.shape[0] * scale))
    resized = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((height, width, 3), pad_value, dtype=np.uint8)
    canvas[:new_h, :new_w] = resized
    return canvas, scale


def nms(xyxy: np.ndarray, score: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices sorted by descending score."""
    order = np.argsort(-score, kind="stable")
    keep: list[int] = []
    while len(order):
        best = order[0]
        keep.append(int(best))
        if len(order) == 1:
            break
        ious = box_iou(xyxy[best : best + 1], xyxy[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def class_wise_nms(detections: Boxes2D, iou_threshold: float) -> Boxes2D:
    """NMS within each class (boxes of different classes never suppress each other)."""
    if len(detections) == 0:
        return detections
    # Offset trick: shift each class to its own region so one NMS pass never mixes classes.
    offset = (detections.xyxy.max() + 1.0) * detections.class_id.astype(np.float64)
    keep = nms(detections.xyxy + offset[:, None], detections.score, iou_threshold)
    return detections[keep]
