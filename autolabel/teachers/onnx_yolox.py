"""YOLOX ONNX teacher (Megvii export layout): letterboxed BGR 0..255 input (top left), raw per-anchor rows out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autolabel.teachers.onnx_detector import OnnxDetectorTeacher

__all__ = ["OnnxYoloxTeacher", "decode_yolox"]


def _grids(input_size: tuple[int, int], strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Anchor-point grid (A,2) [x, y] in cells and per-anchor stride (A,1), ordered stride by stride, row-major."""
    grids, stride_column = [], []
    for stride in strides:
        rows, cols = input_size[0] // stride, input_size[1] // stride
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        stride_column.append(np.full((rows * cols, 1), stride))
    return np.concatenate(grids).astype(np.float32), np.concatenate(stride_column).astype(np.float32)


def decode_yolox(
    raw: np.ndarray, input_size: tuple[int, int], strides: Sequence[int] = (8, 16, 32), score_floor: float = 0.05
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw (A, 5+C) rows -> (xyxy in letterbox pixels (K,4), score (K,), class index (K,)) with score >= floor.

    Decode: xy = (o[:2] + grid) * stride, wh = exp(o[2:4]) * stride (centre/size), score = objectness * class prob.
    """
    grid, stride = _grids(input_size, strides)
    if raw.shape[0] != len(grid):
        raise ValueError(f"YOLOX output: expected {len(grid)} anchor rows for input {input_size}, found {raw.shape[0]}")
    class_prob = raw[:, 5:]
    class_index = class_prob.argmax(axis=1)
    score = raw[:, 4] * class_prob[np.arange(len(raw)), class_index]
    keep = score >= score_floor
    centre = (raw[keep, :2] + grid[keep]) * stride[keep]
    size = np.exp(np.clip(raw[keep, 2:4], -10.0, 10.0)) * stride[keep]
    xyxy = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    return xyxy.astype(np.float64), score[keep].astype(np.float32), class_index[keep].astype(np.int64)


class OnnxYoloxTeacher(OnnxDetectorTeacher):
    """A YOLOX ONNX model (Megvii export layout, ``OnnxDetectorTeacher`` with ``layout="yolox"``): the input size is
    the model's (``input_size`` only for a dynamic input); ``source_class_names`` None = the model's metadata, or
    COCO-80 for an 80-class model without names.

    ``class_map``: ``coco_to_driving`` (the packaged COCO -> driving map, default), a YAML file path, an inline
    {model class name: output class name} mapping, or None (the model's own names).
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        input_size: tuple[int, int] | None = None,
        class_map: str | dict[str, str] | None = "coco_to_driving",
        score_floor: float = 0.05,
        nms_iou: float = 0.65,
        providers: Sequence[str] | None = None,
        strides: Sequence[int] = (8, 16, 32),
        source_class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(
            model_path,
            layout="yolox",
            input_size=input_size,
            class_names=source_class_names,
            class_map=class_map,
            score_floor=score_floor,
            nms_iou=nms_iou,
            strides=strides,
            providers=providers,
        )
