"""Any single-stage ONNX detector as a teacher: the output layout, input size and class names are read from the model
(its ``metadata_props``, its tensor shapes, or a small spec file next to it), never assumed.

Layouts (``layout=auto`` tells them apart by the output shape and the anchor count of the input size):

- ``yolox``: Megvii YOLOX export: output (1, A, 5 + C) of raw per-anchor rows (centre offsets and log sizes in grid
  cells, objectness, class probabilities), input BGR 0..255 letterboxed at the top left.
- ``ultralytics``: YOLOv8 / YOLO11 ``model.export(format="onnx")``: output (1, 4 + C, A) with boxes already decoded
  (centre x, centre y, width, height in input pixels) and class scores (no objectness), input RGB / 255 letterboxed
  in the centre (pad 114); ``metadata_props`` carry ``names`` ({index: name}), ``imgsz`` ([h, w]) and ``stride``.
- ``end2end``: detectors with NMS inside (ultralytics ``nms=True`` exports, YOLOv10, YOLO26): output (1, N, 6) rows
  x1, y1, x2, y2, score, class in input pixels; preprocessing as ``ultralytics``.

A = sum over strides s of (H / s) * (W / s) anchor points (strides 8, 16, 32, up to the model's ``stride``).
Anything else is refused with a message naming the shapes expected and found. Models without metadata take a spec
``MODEL.onnx.yaml`` beside them (all keys optional)::

    layout: ultralytics          # yolox | ultralytics | end2end
    input_size: [640, 640]       # height, width (needed when the model's input is dynamic)
    class_names: [car, truck, bus, pedestrian, cyclist]
    channels: rgb                # rgb | bgr
    scale: 0.00392156862745098   # pixel values are multiplied by this (1/255)
    letterbox: center            # center | top_left
    pad_value: 114
    strides: [8, 16, 32]

Constructor arguments override the spec, the spec overrides the model's metadata. A model with 80 classes and no
names is taken as COCO (said in ``class_map_source``); any other model without names is refused.
"""

from __future__ import annotations

import ast
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from autolabel.teachers.base import ClassMapper, Teacher, class_wise_nms, resolve_class_map
from autolabel.teachers.coco import COCO80_NAMES
from perception.labels import Boxes2D
from perception.model_input import letterbox

__all__ = ["LAYOUTS", "OnnxDetectorTeacher", "anchor_count", "decode_end2end", "decode_ultralytics", "read_model_spec"]

log = logging.getLogger("autolabel")

LAYOUTS = ("yolox", "ultralytics", "end2end")
SPEC_KEYS = ("layout", "input_size", "class_names", "channels", "scale", "letterbox", "pad_value", "strides")
# preprocessing each layout's training code used
LAYOUT_INPUT = {
    "yolox": {"channels": "bgr", "scale": 1.0, "letterbox": "top_left", "pad_value": 114},
    "ultralytics": {"channels": "rgb", "scale": 1.0 / 255.0, "letterbox": "center", "pad_value": 114},
    "end2end": {"channels": "rgb", "scale": 1.0 / 255.0, "letterbox": "center", "pad_value": 114},
}
DEFAULT_NMS_IOU = {"yolox": 0.65, "ultralytics": 0.7, "end2end": None}  # None: the model already suppressed


def anchor_count(input_size: tuple[int, int], strides: Sequence[int]) -> int:
    """Anchor points of an anchor-free head on an (H, W) input: sum of (H // s) * (W // s) over the strides."""
    return int(sum((input_size[0] // s) * (input_size[1] // s) for s in strides))


def decode_ultralytics(raw: np.ndarray, score_floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(4 + C, A) ultralytics head output -> (xyxy in input pixels (K, 4), score (K,), class index (K,)) with the best
    class score >= ``score_floor`` (one box per anchor, its best class, as ultralytics' predict does)."""
    scores = raw[4:]
    class_index = scores.argmax(axis=0)
    score = scores[class_index, np.arange(scores.shape[1])]
    keep = score >= score_floor
    cx, cy, w, h = raw[:4, keep]
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return xyxy.astype(np.float64), score[keep].astype(np.float32), class_index[keep].astype(np.int64)


def decode_end2end(raw: np.ndarray, score_floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 6) rows x1, y1, x2, y2, score, class (input pixels) -> (xyxy, score, class index) with score >= floor."""
    keep = raw[:, 4] >= score_floor
    return raw[keep, :4].astype(np.float64), raw[keep, 4].astype(np.float32), raw[keep, 5].astype(np.int64)


def _literal(value: str, key: str, model_path: Path) -> Any:
    try:
        return ast.literal_eval(value)  # ultralytics writes str(python value): "{0: 'person', ...}", "[640, 640]"
    except (ValueError, SyntaxError) as error:
        raise ValueError(f"{model_path}: metadata_props {key!r}: expected a Python literal, found {value!r}") from error


def _names_list(names: Any, where: str) -> list[str]:
    """{index: name} or [name, ...] -> names in index order."""
    if isinstance(names, dict):
        keys = sorted(int(k) for k in names)
        if keys != list(range(len(keys))):
            raise ValueError(f"{where}: class names: expected indices 0..{len(keys) - 1}, found {keys}")
        return [str(names[k] if k in names else names[str(k)]) for k in keys]
    if isinstance(names, (list, tuple)):
        return [str(n) for n in names]
    raise ValueError(f"{where}: class names: expected a list or {{index: name}}, found {type(names).__name__}")


def read_model_spec(model_path: str | Path, metadata: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """What a model says about itself: (values, where each came from) for the keys of ``SPEC_KEYS``, from its
    ``metadata_props`` (ultralytics keys ``names``, ``imgsz``, ``stride``) and, overriding them, ``MODEL.onnx.yaml``."""
    import yaml

    model_path = Path(model_path)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if "names" in metadata:
        values["class_names"] = _names_list(_literal(metadata["names"], "names", model_path), f"{model_path} metadata")
        sources["class_names"] = f"{model_path.name} metadata 'names'"
    if "imgsz" in metadata:
        size = _literal(metadata["imgsz"], "imgsz", model_path)
        values["input_size"] = tuple(int(v) for v in (size if isinstance(size, (list, tuple)) else (size, size)))
        sources["input_size"] = f"{model_path.name} metadata 'imgsz'"
    if "stride" in metadata:
        top = int(_literal(metadata["stride"], "stride", model_path))
        values["strides"] = tuple(s for s in (8, 16, 32, 64, 128) if s <= top)
        sources["strides"] = f"{model_path.name} metadata 'stride'"
    if metadata.get("author", "").lower().startswith("ultralytics") or "imgsz" in metadata:
        values["family"] = "ultralytics"
    spec_path = model_path.with_name(model_path.name + ".yaml")
    if spec_path.is_file():
        document = yaml.safe_load(spec_path.read_text()) or {}
        if not isinstance(document, dict):
            raise ValueError(f"{spec_path}: expected a mapping of {list(SPEC_KEYS)}, found {type(document).__name__}")
        unknown = sorted(set(document) - set(SPEC_KEYS))
        if unknown:
            raise ValueError(f"{spec_path}: unknown keys {unknown}, expected some of {list(SPEC_KEYS)}")
        for key, value in document.items():
            if key == "class_names":
                value = _names_list(value, str(spec_path))
            elif key in ("input_size", "strides"):
                value = tuple(int(v) for v in value)
            values[key] = value
            sources[key] = f"{spec_path.name} '{key}'"
    return values, sources


@dataclass(frozen=True)
class _InputLayout:
    name: str
    size: tuple[int, int]  # height, width
    nchw: bool
    batch: int | None  # None: dynamic
    dtype: Any


def _input_layout(session: Any, input_size: tuple[int, int] | None, model_path: Path) -> _InputLayout:
    """Input tensor name, (H, W), NCHW or NHWC, batch (None = dynamic) and dtype; (H, W) from the shape when static,
    else from ``input_size``."""
    tensor = session.get_inputs()[0]
    shape = list(tensor.shape)
    if len(shape) != 4:
        raise ValueError(f"{model_path}: input {tensor.name!r}: expected an image tensor of rank 4, found {shape}")
    nchw = shape[1] == 3 or (shape[3] != 3 and not isinstance(shape[1], int))
    if not nchw and shape[3] != 3:
        raise ValueError(f"{model_path}: input {tensor.name!r}: expected 3 channels (NCHW or NHWC), found {shape}")
    height, width = (shape[2], shape[3]) if nchw else (shape[1], shape[2])
    static = isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0
    if static:
        if input_size is not None and tuple(input_size) != (height, width):
            raise ValueError(
                f"{model_path}: input {tensor.name!r} is {height}x{width} (H x W), the configured input_size is "
                f"{input_size[0]}x{input_size[1]}: remove input_size or give the model's"
            )
        size = (height, width)
    elif input_size is None:
        raise ValueError(
            f"{model_path}: input {tensor.name!r} has a dynamic size {shape} and the model's metadata names none: "
            f"pass input_size [H, W] or write it into {model_path.name}.yaml"
        )
    else:
        size = (int(input_size[0]), int(input_size[1]))
    dtypes = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
    if tensor.type not in dtypes:
        raise ValueError(f"{model_path}: input {tensor.name!r}: expected float32 or float16, found {tensor.type}")
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return _InputLayout(tensor.name, size, bool(nchw), batch, dtypes[tensor.type])


def _detect_layout(
    output_shape: Sequence[int], size: tuple[int, int], strides: Sequence[int], num_names: int | None, family: str
) -> str:
    """The layout whose shape matches the (first) output, or ValueError listing what was expected."""
    anchors = anchor_count(size, strides)
    if len(output_shape) == 3 and output_shape[0] == 1:
        _, rows, cols = output_shape
        fits = []
        if rows == anchors and cols > 5 and num_names in (None, cols - 5):
            fits.append("yolox")
        if cols == anchors and rows > 4 and num_names in (None, rows - 4):
            fits.append("ultralytics")
        if cols == 6 and rows != anchors:
            fits.append("end2end")
        if len(fits) == 1:
            return fits[0]
        if "ultralytics" in fits and family == "ultralytics":
            return "ultralytics"
    raise ValueError(
        f"output shape {list(output_shape)} matches no known layout for a {size[0]}x{size[1]} input with strides "
        f"{list(strides)} ({anchors} anchor points): expected (1, {anchors}, 5 + C) for yolox, (1, 4 + C, {anchors}) "
        f"for ultralytics YOLOv8/YOLO11, or (1, N, 6) [x1 y1 x2 y2 score class] for end2end"
        + (f", with C = {num_names} class names" if num_names else "")
        + "; set layout (and input_size/strides) in the teacher's init_args or the model's spec file"
    )


class OnnxDetectorTeacher(Teacher):
    """A local ONNX detector (YOLOX, ultralytics YOLOv8/YOLO11, end-to-end NMS exports); layout, input size and class
    names read from the model (module docstring). Keeps boxes down to ``score_floor``, then class-wise NMS.

    ``class_map``: ``coco_to_driving`` (the packaged COCO -> driving map, default; needs a COCO model), a YAML file
    path, an inline {model class name: output class name} mapping, or None (the model's own names).
    ``threads``: CPU threads the teacher runs on, as one intra-op thread per ``predict_batch`` call and that many
    calls in flight in a job (``parallel_batches``, ``autolabel.sources.predict_in_flight``): measured on 2 cores
    with YOLOX-Nano, two single-thread calls label 2.1x the frames/s of one call on two intra-op threads.
    """

    weights_argument = "model_path"

    def __init__(
        self,
        model_path: str | Path,
        *,
        layout: Literal["auto", "yolox", "ultralytics", "end2end"] = "auto",
        input_size: tuple[int, int] | None = None,
        class_names: Sequence[str] | None = None,
        class_map: str | dict[str, str] | None = "coco_to_driving",
        score_floor: float = 0.05,
        nms_iou: float | None = None,
        strides: Sequence[int] | None = None,
        providers: Sequence[str] | None = None,
        threads: int = 2,
    ) -> None:
        import onnxruntime as ort

        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"{type(self).__name__}: model file {model_path} not found")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.parallel_batches = int(threads) if threads > 0 else max(1, os.cpu_count() or 1)
        self.session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=list(providers or ["CPUExecutionProvider"])
        )
        metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        spec, sources = read_model_spec(model_path, metadata)
        given = {"input_size": input_size, "class_names": class_names, "strides": strides}
        for key, value in given.items():
            if value is not None:
                spec[key], sources[key] = value, "init_args"
        if layout != "auto":
            spec["layout"], sources["layout"] = layout, "init_args"
        self.input = _input_layout(self.session, spec.get("input_size"), model_path)
        self.strides = tuple(spec.get("strides") or (8, 16, 32))
        names = spec.get("class_names")
        output_shape = self._output_shape()
        try:
            self.layout = spec.get("layout") or _detect_layout(
                output_shape,
                self.input.size,
                self.strides,
                None if names is None else len(names),
                spec.get("family", ""),
            )
        except ValueError as error:
            raise ValueError(f"{model_path}: {error}") from error
        if self.layout not in LAYOUTS:
            raise ValueError(
                f"{model_path}: layout {self.layout!r} ({sources.get('layout')}): expected one of {LAYOUTS}"
            )
        self.preprocess = {**LAYOUT_INPUT[self.layout], **{k: spec[k] for k in LAYOUT_INPUT["yolox"] if k in spec}}
        num_classes = self._num_classes(output_shape)
        if names is None and num_classes == 80:
            names, sources["class_names"] = list(COCO80_NAMES), "COCO-80 (assumed: 80 classes, no names in the model)"
        elif names is None:
            raise ValueError(
                f"{model_path}: the model has {num_classes} classes and names none: give class_names in the teacher's "
                f"init_args or in {model_path.name}.yaml"
            )
        elif num_classes is not None and len(names) != num_classes:
            raise ValueError(
                f"{model_path}: {len(names)} class names ({sources['class_names']}) but the output has "
                f"{num_classes} classes"
            )
        self.source_class_names = list(names)
        self.score_floor = score_floor
        self.nms_iou = DEFAULT_NMS_IOU[self.layout] if nms_iou is None else nms_iou
        try:
            mapping, map_source = resolve_class_map(class_map, self.source_class_names)
        except ValueError as error:
            raise ValueError(
                f"{error} (class names of {model_path.name} from {sources['class_names']}; class_map: null keeps "
                "the model's own names)"
            ) from error
        self.class_map_source = f"{map_source} over {sources['class_names']}"
        self.mapper = ClassMapper(mapping, self.source_class_names)
        self.class_names = self.mapper.class_names
        self.name = f"{self.layout}_onnx:{model_path.name}"
        self.sources = sources
        log.info("%s: layout %s, input %s, %d classes (%s)", model_path, self.layout, self.input.size,
                 len(names), sources["class_names"])  # fmt: skip

    # ------------------------------------------------------------------ model shapes
    def _blob(self, images: Sequence[np.ndarray]) -> np.ndarray:
        batch = np.stack(images).astype(np.float32)
        if self.preprocess["channels"] == "rgb":
            batch = batch[..., ::-1]
        batch = batch * float(self.preprocess["scale"])
        if self.input.nchw:
            batch = batch.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(batch.astype(self.input.dtype))

    def _output_shape(self) -> tuple[int, ...]:
        """The first output's concrete shape (one inference on a blank input when the graph leaves it dynamic)."""
        shape = self.session.get_outputs()[0].shape
        if all(isinstance(d, int) and d > 0 for d in shape):
            return tuple(shape)
        height, width = self.input.size
        blank = np.zeros((1, 3, height, width) if self.input.nchw else (1, height, width, 3), self.input.dtype)
        return tuple(self.session.run(None, {self.input.name: blank})[0].shape)

    def _num_classes(self, output_shape: Sequence[int]) -> int | None:
        if self.layout == "yolox":
            return int(output_shape[2]) - 5
        if self.layout == "ultralytics":
            return int(output_shape[1]) - 4
        return None  # end2end rows carry the class index

    def _decode(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.layout == "yolox":
            from autolabel.teachers.onnx_yolox import decode_yolox

            return decode_yolox(raw, self.input.size, self.strides, self.score_floor)
        if self.layout == "ultralytics":
            return decode_ultralytics(raw, self.score_floor)
        return decode_end2end(raw, self.score_floor)

    # ------------------------------------------------------------------ inference
    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Boxes2D]:
        """One ``Boxes2D`` per BGR uint8 frame, boxes in that frame's pixels (clipped to the image)."""
        boxed = [
            letterbox(frame, self.input.size, pad_value=int(self.preprocess["pad_value"]),
                      center=self.preprocess["letterbox"] == "center")
            for frame in frames
        ]  # fmt: skip
        step = self.input.batch or max(len(frames), 1)
        raws: list[np.ndarray] = []
        for start in range(0, len(boxed), step):
            chunk = [b.image for b in boxed[start : start + step]]
            outputs = self.session.run(None, {self.input.name: self._blob(chunk)})[0]
            raws += [outputs[i] for i in range(len(chunk))]
        results = []
        for frame, box, raw in zip(frames, boxed, raws):
            xyxy, score, source_class = self._decode(raw)
            class_id = self.mapper(source_class)
            mapped = class_id >= 0
            detections = Boxes2D(
                xyxy=box.to_source(xyxy[mapped]),
                score=score[mapped],
                class_id=class_id[mapped],
                image_size=(frame.shape[1], frame.shape[0]),
            ).clipped()
            results.append(detections if self.nms_iou is None else class_wise_nms(detections, self.nms_iou))
        return results
