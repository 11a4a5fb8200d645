"""Teacher interface and shared post-processing: class mapping, class-wise NMS (letterbox: perception.model_input)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from perception.geometry import box_iou
from perception.labels import Boxes2D
from perception.model_input import letterbox  # re-exported: the one letterbox (perception.model_input)

__all__ = [
    "CLASS_MAPS",
    "ClassMapper",
    "Teacher",
    "class_wise_nms",
    "letterbox",
    "load_class_map",
    "nms",
    "resolve_class_map",
]


class Teacher(ABC):
    """A single-frame detector: BGR uint8 (H,W,3) frames in, ``Boxes2D`` in input pixels out (scores kept down to a
    floor). Constructor arguments are the job config's ``teacher.init_args``.

    Attributes a job reads: ``class_names`` (output class of each class id), ``name`` (for provenance),
    ``weights_argument`` (the constructor argument naming the weights file: the job hashes that file, not its path,
    into the config hash), ``class_map_source`` (where the class names came from, for messages),
    ``parallel_batches`` (how many ``predict_batch`` calls a job keeps in flight; speed only).
    """

    class_names: list[str]
    name: str = ""
    parallel_batches: int = 1  # predict_batch calls a job may run at once (threads; the teacher must be thread-safe)
    weights_argument: str | None = None
    class_map_source: str | None = None

    @abstractmethod
    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Boxes2D]:
        """One ``Boxes2D`` per frame, boxes in that frame's pixel coordinates."""

    def predict(self, frame: np.ndarray) -> Boxes2D:
        """Boxes of one BGR frame."""
        return self.predict_batch([frame])[0]


CLASS_MAPS = {"coco_to_driving": Path(__file__).with_name("coco_to_driving.yaml")}


def load_class_map(path: str | Path, source_names: Sequence[str]) -> dict[int, str]:
    """Read a YAML ``{mapping: {source class name: output class name}}`` into {model class index: output name}."""
    import yaml

    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{path}: class map file not found") from error
    mapping = document.get("mapping") if isinstance(document, dict) else None
    if not isinstance(mapping, dict):
        raise ValueError(
            f"{path}: field 'mapping': expected a dict source name -> output name, found {type(mapping).__name__}"
        )
    return _index_mapping(mapping, source_names, str(path))


def _index_mapping(mapping: dict, source_names: Sequence[str], where: str) -> dict[int, str]:
    index_of = {name: i for i, name in enumerate(source_names)}
    unknown = [name for name in mapping if name not in index_of]
    if unknown:  # a misspelt name would silently lose every box of that class
        raise ValueError(
            f"{where}: field 'mapping': source classes {unknown} are not classes of the model "
            f"(expected some of {list(source_names)})"
        )
    return {index_of[name]: str(target) for name, target in mapping.items()}


def resolve_class_map(
    class_map: str | Path | dict[str, str] | None, source_names: Sequence[str]
) -> tuple[dict[int, str] | None, str]:
    """A teacher's ``class_map`` argument -> ({model class index: output name} or None = keep the model's names,
    where it came from). Accepts the name of a packaged map (``coco_to_driving``), a YAML file path, or an inline
    {source name: output name} mapping."""
    if class_map is None:
        return None, "the model's own class names"
    if isinstance(class_map, dict):
        return _index_mapping(class_map, source_names, "class_map"), "the inline class_map"
    text = str(class_map)
    if text in CLASS_MAPS:
        path = CLASS_MAPS[text]
    elif text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text)
    else:
        raise ValueError(
            f"class_map: expected a packaged map {sorted(CLASS_MAPS)}, a YAML file path or a mapping, found {text!r}"
        )
    return load_class_map(path, source_names), str(path)


class ClassMapper:
    """Maps model class indices to output classes; indices absent from ``class_map`` are not labelled (-1)."""

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
