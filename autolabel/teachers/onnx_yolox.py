"""YOLOX ONNX teacher (Megvii export layout): letterboxed BGR 0..255 input, raw per-anchor rows out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autolabel.teachers.base import ClassMapper, Teacher, class_wise_nms, letterbox, resolve_class_map
from autolabel.teachers.coco import COCO80_NAMES
from perception.labels import Boxes2D

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


class OnnxYoloxTeacher(Teacher):
    """YOLOX detector from a local ONNX file; keeps boxes down to ``score_floor``, then class-wise NMS.

    ``class_map``: ``coco_to_driving`` (the packaged COCO -> driving map, default), a YAML file path, an inline
    {model class name: output class name} mapping, or None (the model's own names, ``source_class_names``, COCO-80
    when None).
    """

    weights_argument = "model_path"

    def __init__(
        self,
        model_path: str | Path,
        *,
        input_size: tuple[int, int] = (416, 416),
        class_map: str | dict[str, str] | None = "coco_to_driving",
        score_floor: float = 0.05,
        nms_iou: float = 0.65,
        providers: Sequence[str] | None = None,
        strides: Sequence[int] = (8, 16, 32),
        source_class_names: Sequence[str] | None = None,
    ) -> None:
        import onnxruntime as ort

        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"OnnxYoloxTeacher: model file {model_path} not found")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        self.session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=list(providers or ["CPUExecutionProvider"])
        )
        self.input_name = self.session.get_inputs()[0].name
        self.input_size = tuple(input_size)
        self.score_floor = score_floor
        self.nms_iou = nms_iou
        self.strides = tuple(strides)
        source_class_names = COCO80_NAMES if source_class_names is None else tuple(source_class_names)
        mapping, self.class_map_source = resolve_class_map(class_map, source_class_names)
        self.mapper = ClassMapper(mapping, source_class_names)
        self.class_names = self.mapper.class_names
        self.name = f"yolox_onnx:{model_path.name}"

    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Boxes2D]:
        """One `Boxes2D` per BGR frame, boxes in that frame's pixels (clipped to the image)."""
        results = []
        for frame in frames:  # the export has a fixed batch of 1
            image, scale = letterbox(frame, self.input_size)
            blob = np.ascontiguousarray(image.transpose(2, 0, 1)[None].astype(np.float32))
            raw = self.session.run(None, {self.input_name: blob})[0][0]
            xyxy, score, source_class = decode_yolox(raw, self.input_size, self.strides, self.score_floor)
            class_id = self.mapper(source_class)
            mapped = class_id >= 0
            image_size = (frame.shape[1], frame.shape[0])
            detections = Boxes2D(
                xyxy=xyxy[mapped] / scale, score=score[mapped], class_id=class_id[mapped], image_size=image_size
            ).clipped()
            results.append(class_wise_nms(detections, self.nms_iou))
        return results
