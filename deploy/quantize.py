"""INT8 static (QDQ) quantization and FP16 conversion of any ONNX model with onnxruntime's tools (no torch).

Calibration data is any iterable of feed dicts ``{input name: array}``: real clip frames from our runtime, images from a
folder through a ``PreprocessSpec`` (``image_folder_inputs``), or seeded synthetic inputs (``synthetic_inputs``).
"""

from __future__ import annotations

import inspect
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from deploy.onnx_utils import (
    _temporary_beside,
    file_size_mb,
    input_specs,
    list_nodes,
    make_session,
    save_model_atomic,
    synthesize_inputs,
)

logger = logging.getLogger(__name__)

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
QUANT_TYPES = ("qint8", "quint8")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

Feeds = Mapping[str, np.ndarray]


class QuantizeError(ValueError):
    """Bad quantization arguments (message names the field, expected and found values)."""


@dataclass(frozen=True)
class PreprocessSpec:
    """How to turn an image file into a model input: resize (or letterbox) to width x height, channel order,
    ``(pixel * scale - mean) / std`` per channel, NCHW or NHWC, batch dim of 1."""

    width: int
    height: int
    channel_order: str = "RGB"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: str = "NCHW"
    letterbox: bool = False
    pad_value: float = 114.0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise QuantizeError(f"PreprocessSpec.channel_order: expected 'RGB' or 'BGR', found {self.channel_order!r}")
        if self.layout not in ("NCHW", "NHWC"):
            raise QuantizeError(f"PreprocessSpec.layout: expected 'NCHW' or 'NHWC', found {self.layout!r}")

    def apply(self, image_bgr: np.ndarray) -> np.ndarray:
        """BGR uint8 (H, W, 3) -> model tensor (1, 3, height, width) or (1, height, width, 3)."""
        import cv2

        if self.letterbox:
            ratio = min(self.width / image_bgr.shape[1], self.height / image_bgr.shape[0])
            new_w, new_h = round(image_bgr.shape[1] * ratio), round(image_bgr.shape[0] * ratio)
            canvas = np.full((self.height, self.width, 3), self.pad_value, dtype=np.float32)
            canvas[:new_h, :new_w] = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
            image = canvas
        else:
            image = cv2.resize(image_bgr, (self.width, self.height), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        if self.channel_order == "RGB":
            image = image[..., ::-1]
        image = (image * self.scale - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.layout == "NCHW":
            image = image.transpose(2, 0, 1)
        return np.ascontiguousarray(image[None]).astype(self.dtype)


def image_folder_inputs(
    folder: str | Path, *, input_name: str, spec: PreprocessSpec, limit: int | None = None
) -> list[dict[str, np.ndarray]]:
    """Feed dicts from the images in ``folder`` (sorted by name), preprocessed with ``spec``."""
    import cv2

    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not files:
        raise QuantizeError(f"{folder}: expected a folder with images {IMAGE_SUFFIXES}, found none")
    feeds = []
    for path in files[:limit]:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise QuantizeError(f"{path}: cannot decode image")
        feeds.append({input_name: spec.apply(image)})
    return feeds


def synthetic_inputs(
    model_path: str | Path,
    *,
    count: int = 8,
    seed: int = 0,
    default_dim: int = 1,
    float_range: tuple[float, float] = (0.0, 1.0),
) -> list[dict[str, np.ndarray]]:
    """``count`` seeded random feed dicts from the model's declared inputs (a last resort for calibration)."""
    specs = input_specs(make_session(model_path))
    return [
        synthesize_inputs(specs, default_dim=default_dim, seed=seed + i, float_range=float_range) for i in range(count)
    ]


class FeedCalibrationReader(CalibrationDataReader):
    """onnxruntime CalibrationDataReader over an iterable of feed dicts; ``rewind`` works for re-iterable inputs."""

    def __init__(self, feeds: Iterable[Feeds]):
        self._feeds = feeds
        self._iterator: Iterator[Feeds] = iter(feeds)
        self.count = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        """Next feed dict, or None at the end."""
        feed = next(self._iterator, None)
        if feed is None:
            return None
        self.count += 1
        return {name: np.asarray(value) for name, value in feed.items()}

    def rewind(self) -> None:
        """Start again from the first feed (a generator cannot be rewound; pass a list)."""
        self._iterator = iter(self._feeds)


@dataclass(frozen=True)
class QuantizeResult:
    """What ``quantize_static`` wrote and how."""

    path: Path
    source: Path
    method: str
    per_channel: bool
    activation_type: str
    weight_type: str
    calibration_samples: int
    nodes_excluded: list[str] = field(default_factory=list)
    size_mb: float = 0.0
    seconds: float = 0.0


def _ensure_opset(model_path: Path, output_path: Path, *, minimum: int) -> Path:
    """Convert a model below ``minimum`` default-domain opset (per-channel QDQ needs 13) with onnx's converter."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(model_path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), minimum)
    if opset >= minimum:
        return model_path
    logger.info("%s: converting opset %d -> %d for per-channel QDQ", model_path, opset, minimum)
    return save_model_atomic(version_converter.convert_version(model, minimum), output_path)


def supports_calibration_cache() -> bool:
    """Whether this onnxruntime's quantize_static accepts ``calibration_cache_path`` (calibrate once, reuse)."""
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    return "calibration_cache_path" in inspect.signature(ort_quantize_static).parameters


def calibrate_entropy_cache(
    model_path: str | Path,
    cache_path: str | Path,
    *,
    calibration_inputs: Iterable[Feeds],
    num_bins: int = 2048,
    num_quantized_bins: int = 128,
) -> Path:
    """KL-divergence (entropy) calibration with a fine histogram, written as an onnxruntime calibration cache.

    onnxruntime's quantize_static does not forward the histogram size to its entropy calibrator, whose default
    (128 bins = 128 quantized bins) leaves a single candidate threshold, i.e. the min/max range; this runs the
    calibrator with ``num_bins`` bins so the threshold search has room (TensorRT-style 2048/128)."""
    from onnxruntime.quantization.calibrate import save_tensors_data

    cache_path = Path(cache_path)
    feeds = list(calibration_inputs)
    bins = num_bins
    while True:
        try:
            ranges = _entropy_ranges(model_path, feeds, bins, num_quantized_bins)
            break
        except ValueError as error:  # numpy cannot split a denormal-wide range into that many bins
            if "Too many bins" not in str(error) or bins // 2 < num_quantized_bins:
                raise
            logger.warning("entropy calibration of %s: %s; retrying with %d bins", model_path, error, bins // 2)
            bins //= 2
    save_tensors_data(ranges, cache_path)
    return cache_path


def _entropy_ranges(model_path: str | Path, feeds: Sequence[Feeds], num_bins: int, num_quantized_bins: int):
    """Run onnxruntime's entropy calibrator with the given histogram sizes; returns its TensorsData."""
    from onnxruntime.quantization import CalibrationMethod, TensorsData, create_calibrator

    with tempfile.TemporaryDirectory(prefix="fleetvision_calib_") as work:
        calibrator = create_calibrator(
            Path(model_path),
            None,
            augmented_model_path=str(Path(work) / "augmented.onnx"),
            calibrate_method=CalibrationMethod.Entropy,
            extra_options={"num_bins": num_bins, "num_quantized_bins": num_quantized_bins},
        )
        calibrator.collect_data(FeedCalibrationReader(feeds))
        ranges = calibrator.compute_data()
        del calibrator
    if not isinstance(ranges, TensorsData):
        raise QuantizeError(f"entropy calibration returned {type(ranges).__name__}, expected TensorsData")
    return ranges


def preprocess_model(model_path: str | Path, output_path: str | Path, *, skip_symbolic_shape: bool = False) -> Path:
    """onnxruntime ``quant_pre_process`` (symbolic shape inference + graph optimisation) into ``output_path``."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    output_path = Path(output_path)
    temporary = _temporary_beside(output_path)
    try:
        quant_pre_process(str(model_path), str(temporary), skip_symbolic_shape=skip_symbolic_shape)
        os.replace(temporary, output_path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return output_path


def quantize_static(
    model_path: str | Path,
    output_path: str | Path,
    *,
    calibration_inputs: Iterable[Feeds],
    method: str = "percentile",
    per_channel: bool = True,
    activation_type: str = "quint8",
    weight_type: str = "qint8",
    reduce_range: bool = False,
    nodes_to_exclude: Sequence[str] = (),
    op_types_to_keep_float: Sequence[str] = (),
    pre_process: bool = True,
    calibration_cache: str | Path | None = None,
    percentile: float = 99.999,
    entropy_bins: int = 2048,
    extra_options: Mapping | None = None,
) -> QuantizeResult:
    """INT8 QDQ static quantization: optional ``quant_pre_process``, calibration (percentile (default) | minmax |
    entropy) on ``calibration_inputs``, per-channel weights; listed nodes and op types stay float. Percentile is the
    default because min/max ranges set by rare outliers broke YOLOX-Nano (anchor F1 vs FP32 0.04 vs 0.79).
    Node names refer to the pre-processed graph (see ``preprocess_model`` + ``deploy.onnx_utils.list_nodes``).
    Opset < 13 is converted to 13 for per-channel QDQ. CPU x86 default: QUInt8 activations / QInt8 weights;
    for TensorRT use activation_type='qint8' (symmetric). Entropy uses a 2048-bin histogram (see
    ``calibrate_entropy_cache``)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    if method not in CALIBRATION_METHODS:
        raise QuantizeError(f"method: expected one of {CALIBRATION_METHODS}, found {method!r}")
    for name, value in (("activation_type", activation_type), ("weight_type", weight_type)):
        if value not in QUANT_TYPES:
            raise QuantizeError(f"{name}: expected one of {QUANT_TYPES}, found {value!r}")
    model_path, output_path = Path(model_path), Path(output_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"quantize_static: model file not found: {model_path}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fleetvision_quant_") as work:
        source = preprocess_model(model_path, Path(work) / "preprocessed.onnx") if pre_process else model_path
        if per_channel:
            source = _ensure_opset(source, Path(work) / "opset13.onnx", minimum=13)
        graph_nodes = list_nodes(source)
        names = {name for name, _ in graph_nodes}
        missing = sorted(set(nodes_to_exclude) - names)
        if missing:
            which = "pre-processed graph" if pre_process else "graph"
            raise QuantizeError(
                f"nodes_to_exclude: {len(missing)} node(s) not in the {which} of {model_path}: {missing[:5]}; "
                f"list valid names with deploy.onnx_utils.list_nodes on preprocess_model(...) output"
            )
        excluded = list(
            dict.fromkeys([*nodes_to_exclude, *(name for name, op in graph_nodes if op in set(op_types_to_keep_float))])
        )
        if method == "entropy" and supports_calibration_cache():
            if calibration_cache is None:
                calibration_cache = Path(work) / "entropy_calibration.json"
            if not Path(calibration_cache).is_file():
                calibration_inputs = list(calibration_inputs)
                calibrate_entropy_cache(
                    source, calibration_cache, calibration_inputs=calibration_inputs, num_bins=entropy_bins
                )
        reader = FeedCalibrationReader(calibration_inputs)
        options = {"CalibPercentile": percentile} if method == "percentile" else {}
        options.update(extra_options or {})
        kwargs = {}
        if calibration_cache is not None:
            if not supports_calibration_cache():
                raise QuantizeError("calibration_cache: this onnxruntime has no calibration_cache_path; pass None")
            kwargs["calibration_cache_path"] = str(calibration_cache)
        temporary = output_path.with_name(f".{output_path.name}.tmp.onnx")
        output_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            ort_quantize_static(
                str(source),
                str(temporary),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=QuantType.QInt8 if activation_type == "qint8" else QuantType.QUInt8,
                weight_type=QuantType.QInt8 if weight_type == "qint8" else QuantType.QUInt8,
                nodes_to_exclude=excluded or None,
                calibrate_method={
                    "minmax": CalibrationMethod.MinMax,
                    "entropy": CalibrationMethod.Entropy,
                    "percentile": CalibrationMethod.Percentile,
                }[method],
                extra_options=options,
                **kwargs,
            )
            os.replace(temporary, output_path)
        finally:
            temporary.unlink(missing_ok=True)
    return QuantizeResult(
        path=output_path,
        source=model_path,
        method=method,
        per_channel=per_channel,
        activation_type=activation_type,
        weight_type=weight_type,
        nodes_excluded=excluded,
        calibration_samples=reader.count or (len(calibration_inputs) if isinstance(calibration_inputs, list) else 0),
        size_mb=file_size_mb(output_path),
        seconds=time.perf_counter() - started,
    )


def convert_fp16(
    model_path: str | Path,
    output_path: str | Path,
    *,
    keep_io_types: bool = True,
    op_block_list: Sequence[str] | None = None,
    node_block_list: Sequence[str] | None = None,
) -> Path:
    """FP16 weights/activations for GPU targets (onnxruntime's bundled ``transformers.float16`` converter, else
    onnxconverter-common's); ``keep_io_types`` keeps float32 graph inputs/outputs with Casts inside."""
    import onnx

    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:  # pragma: no cover - depends on the onnxruntime build
        try:
            from onnxconverter_common.float16 import convert_float_to_float16
        except ImportError as error:
            raise ImportError(
                "convert_fp16 needs onnxruntime.transformers.float16 (bundled with onnxruntime) or "
                "the onnxconverter-common package"
            ) from error
    model = onnx.load(str(model_path))
    kwargs = {"keep_io_types": keep_io_types}
    if op_block_list is not None:
        kwargs["op_block_list"] = list(op_block_list)
    if node_block_list is not None:
        kwargs["node_block_list"] = list(node_block_list)
    converted = convert_float_to_float16(model, **kwargs)
    return save_model_atomic(converted, output_path)
