"""Calibration inputs for static quantization: any iterable of feed dicts ``{input name: array}``, built from real
clip frames (``deploy.clip_feeds``), from an image folder through a ``PreprocessSpec`` (``image_folder_inputs``) or
seeded at random (``synthetic_inputs``); and the fine-histogram entropy calibration cache."""

from __future__ import annotations

import inspect
import logging
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from deploy.onnx_utils import input_specs, make_session, synthesize_inputs
from deploy.quantize import QuantizeError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

Feeds = Mapping[str, np.ndarray]


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

    def __init__(self, feeds: Iterable[Feeds], *, progress: bool = False):
        from tqdm import tqdm

        self._feeds = feeds
        self._iterator: Iterator[Feeds] = iter(feeds)
        self.count = 0
        total = len(feeds) if hasattr(feeds, "__len__") else None
        self._bar = tqdm(total=total, desc="calibrating", unit="frame", disable=not progress, leave=False)

    def get_next(self) -> dict[str, np.ndarray] | None:
        """Next feed dict, or None at the end."""
        feed = next(self._iterator, None)
        if feed is None:
            self._bar.close()
            return None
        self.count += 1
        self._bar.update(1)
        return {name: np.asarray(value) for name, value in feed.items()}

    def rewind(self) -> None:
        """Start again from the first feed (a generator cannot be rewound; pass a list)."""
        self._iterator = iter(self._feeds)


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
