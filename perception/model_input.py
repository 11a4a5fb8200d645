"""Frame -> model input: the one rule that training, the frame cache, auto-labelling teachers, export and the
in-vehicle runtime all use (torch-free; numpy + OpenCV).

A camera frame arrives as OpenCV decodes it: BGR uint8 (h, w, 3) at the camera's own resolution (rig.yaml). The
model takes, per camera (``perception.models``, forward inputs):

- ``images``       RGB, float32 0..255, [3, H, W] at the model's ``image_size`` (H, W). The image is resized with
                   ``cv2.resize`` to (W, H): ``cv2.INTER_AREA`` when the source is taller than H (shrinking),
                   otherwise ``cv2.INTER_LINEAR`` (``resize_image``); BGR is flipped to RGB (``prepare_image``).
                   Normalisation ``(rgb - mean) / std`` with ``PIXEL_MEAN_RGB_255``/``PIXEL_STD_RGB_255`` (unless a
                   model is built with others) happens inside the model, so every path feeds 0..255 values.
- ``intrinsics``   K of the resized image: fx, cx scaled by W/w, fy, cy by H/h, with OpenCV's pixel-centre
                   convention (``Camera.resized``; ``model_intrinsics``).
- ``distortion``   the lens in the model's layout ``MODEL_DISTORTION`` (``lens6``, ``DISTORTION_COLUMNS``): five
                   coefficients, then the lens id ``LENS_IDS``: radtan (k1, k2, p1, p2, k3, 0; zeros for a pinhole)
                   or fisheye, OpenCV's equidistant Kannala-Brandt model (k1, k2, k3, k4, 0, 1). The model projects
                   with it in its graph (``perception.models.view_transform.project_points``), exactly like
                   ``perception.rig.Camera.project``. Rig lens models are converted by the entries of
                   ``DISTORTION_ENCODERS``; any other lens (radtan with k4..k6) is refused with
                   ``UnsupportedDistortionError`` (``model_distortion``).

The exported ONNX graph takes the resized image still in BGR, uint8 [1, N, H, W, 3], and flips/casts itself
(``deploy.export``), so the runtime calls ``resize_image`` and no colour conversion. ``describe`` is the record of
this rule stored in exported models' metadata; ``check_description`` is how a runtime reads it back.

Adding a lens model: teach the model's projection (``perception.models.view_transform.project_points``) a new lens
id, then add it to ``LENS_IDS``/``LENS_COEFFICIENTS`` and an encoder to ``DISTORTION_ENCODERS`` (and, if the layout
changes, ``MODEL_DISTORTION``); every path above picks it up, and a bump of ``MODEL_INPUT_VERSION`` makes old
runtimes refuse the new models.

Rule versions: 1 fed the lens as radtan only, ``[.., 5]`` (layout ``radtan5``, fisheye refused); 2 (now) adds the
lens id column. ``check_description`` reads both, and ``model_distortion(camera, layout=...)`` still builds the
version-1 input, so a runtime keeps running models exported before fisheye support.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from perception.rig import Camera

MODEL_INPUT_VERSION = 2  # bump when any rule below changes: frame caches and exported models record it
SOURCE_COLOR = "BGR uint8 0..255"  # decoded frames (OpenCV)
MODEL_COLOR = "RGB float32 0..255"  # what the torch model's forward takes
PIXEL_MEAN_RGB_255 = (123.675, 116.28, 103.53)  # ImageNet mean, 0..255 units, RGB order
PIXEL_STD_RGB_255 = (58.395, 57.12, 57.375)  # ImageNet std, 0..255 units, RGB order
RESIZE_RULE = "cv2.resize to (W, H): INTER_AREA if source height > H else INTER_LINEAR"
INTRINSICS_RULE = "K scaled to the resized image: fx, cx by W/w, fy, cy by H/h, pixel centres at integers"
MODEL_DISTORTION = "lens6"  # the layout of the model's ``distortion`` input [.., 6]
DISTORTION_COLUMNS = ("c0", "c1", "c2", "c3", "c4", "lens")  # c0..c4: the lens model's coefficients, then its id
LENS_IDS = {"radtan": 0, "fisheye": 1}  # value of the 'lens' column
LENS_COEFFICIENTS = {"radtan": ("k1", "k2", "p1", "p2", "k3"), "fisheye": ("k1", "k2", "k3", "k4")}  # c0.. (rest 0)
LEGACY_DISTORTION = "radtan5"  # rule version 1: radtan k1, k2, p1, p2, k3 only, no lens column
DISTORTION_LAYOUTS = {MODEL_DISTORTION: len(DISTORTION_COLUMNS), LEGACY_DISTORTION: 5}  # layout -> width


class UnsupportedDistortionError(ValueError):
    """A camera's lens model cannot be expressed in the model's distortion input (message names camera and lens)."""


def resize_interpolation(source_hw: tuple[int, int], size_hw: tuple[int, int]) -> int:
    """The OpenCV interpolation flag for resizing a (h, w) image to ``size_hw`` (H, W): area when shrinking."""
    import cv2

    return cv2.INTER_AREA if int(source_hw[0]) > int(size_hw[0]) else cv2.INTER_LINEAR


def resize_image(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """``image`` (h, w, C) uint8, any channel order, resized to ``size_hw`` (H, W); returned as is when equal."""
    import cv2

    height, width = int(size_hw[0]), int(size_hw[1])
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=resize_interpolation(image.shape[:2], (height, width)))


def prepare_image(image_bgr: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """A decoded BGR (h, w, 3) uint8 frame -> the model's image, RGB uint8 (H, W, 3) (a view: channels reversed).

    ``.transpose(2, 0, 1)`` gives the model's [3, H, W]; ``.astype(np.float32)`` its value range 0..255."""
    return resize_image(image_bgr, size_hw)[..., ::-1]


def model_intrinsics(camera: Camera, size_hw: tuple[int, int]) -> np.ndarray:
    """K (3, 3) float64 of ``camera`` for its image resized to ``size_hw`` (H, W) pixels."""
    return camera.resized(int(size_hw[1]), int(size_hw[0])).K


def _row(lens: str, coefficients: np.ndarray) -> np.ndarray:
    out = np.zeros(len(DISTORTION_COLUMNS))
    out[: len(coefficients)] = coefficients
    out[-1] = LENS_IDS[lens]
    return out


def _pinhole(camera: Camera) -> np.ndarray | None:
    return _row("radtan", np.zeros(0))


def _radtan(camera: Camera) -> np.ndarray | None:
    """OpenCV radtan with 4, 5 or 8 coefficients -> (k1, k2, p1, p2, k3, radtan); None when k4..k6 are not zero."""
    coefficients = camera.distortion
    if len(coefficients) > 5 and np.any(coefficients[5:]):
        return None
    return _row("radtan", coefficients[:5])


def _fisheye(camera: Camera) -> np.ndarray | None:
    """OpenCV fisheye (equidistant Kannala-Brandt) k1..k4 -> (k1, k2, k3, k4, 0, fisheye)."""
    return _row("fisheye", camera.distortion[:4])


# rig.yaml lens model -> encoder into the model's distortion input (None: these coefficients are not expressible)
DISTORTION_ENCODERS: dict[str, Callable[[Camera], np.ndarray | None]] = {
    "none": _pinhole,
    "radtan": _radtan,
    "fisheye": _fisheye,
}


def _lenses_taken() -> str:
    return "; ".join(f"{lens} ({', '.join(names)})" for lens, names in LENS_COEFFICIENTS.items())


def model_distortion(camera: Camera, *, source: str | None = None, layout: str = MODEL_DISTORTION) -> np.ndarray:
    """The camera's lens as the model's distortion input: (6,) float64 in ``MODEL_DISTORTION``, or (5,) radtan in
    ``LEGACY_DISTORTION`` for models exported under rule version 1 (they cannot take fisheye).

    Raises ``UnsupportedDistortionError`` naming ``source`` (e.g. the rig.yaml), the camera, its lens model and
    coefficients, what the model takes, and what to do."""
    if layout not in DISTORTION_LAYOUTS:
        raise ValueError(f"model_distortion: layout: expected one of {sorted(DISTORTION_LAYOUTS)}, found {layout!r}")
    encoder = DISTORTION_ENCODERS.get(camera.distortion_model)
    encoded = encoder(camera) if encoder is not None else None
    if encoded is not None and layout == LEGACY_DISTORTION:
        encoded = encoded[:5] if encoded[-1] == LENS_IDS["radtan"] else None
    if encoded is None:
        where = f"{source}: " if source else ""
        if layout == LEGACY_DISTORTION:
            takes = "radtan only (k1, k2, p1, p2, k3): this model was exported before fisheye support, re-export it"
        else:
            takes = f"{_lenses_taken()}; radtan k4..k6 must be 0"
        raise UnsupportedDistortionError(
            f"{where}camera {camera.name!r}: distortion model {camera.distortion_model!r} with coefficients "
            f"{np.round(camera.distortion, 6).tolist()}: the model (distortion layout {layout!r}) takes {takes}; "
            "or undistort the images first and set the camera's distortion model to 'none'"
        )
    return encoded


def describe(size_hw: tuple[int, int]) -> dict[str, Any]:
    """The rule above as JSON (stored in exported models' metadata under ``preprocess``)."""
    return {
        "version": MODEL_INPUT_VERSION,
        "module": __name__,
        "source_color": SOURCE_COLOR,
        "size_hw": [int(size_hw[0]), int(size_hw[1])],
        "resize": RESIZE_RULE,
        "intrinsics": INTRINSICS_RULE,
        "distortion": {
            "layout": MODEL_DISTORTION,
            "columns": list(DISTORTION_COLUMNS),
            "lens_ids": dict(LENS_IDS),
            "coefficients": {lens: list(names) for lens, names in LENS_COEFFICIENTS.items()},
            "lens_models": list(DISTORTION_ENCODERS),
            "projection": "perception.rig.Camera.project (points with z <= 0 are not seen)",
        },
        "model_color": MODEL_COLOR,
    }


RULE_LAYOUTS = {1: LEGACY_DISTORTION, MODEL_INPUT_VERSION: MODEL_DISTORTION}  # rule version -> distortion layout


def check_description(
    description: dict[str, Any] | None, *, size_hw: tuple[int, int] | None = None, source: str = "<model>"
) -> dict[str, Any]:
    """Read back a ``describe`` record: a rule this module knows (``RULE_LAYOUTS``) for ``size_hw``.

    A record without ``version`` comes from exports before this field existed; their rule was version 1. Version 1
    differs from the current rule only in the distortion layout (``distortion_layout`` says which to feed). Raises
    ``ValueError`` naming ``source`` and the field otherwise; returns the record."""
    if description is None or "version" not in description:
        return {**(description or {}), "version": 1}
    version = description["version"]
    if version not in RULE_LAYOUTS:
        known = " or ".join(str(v) for v in RULE_LAYOUTS)
        raise ValueError(
            f"{source}: field 'preprocess.version': expected {known} (the input rules this runtime knows, "
            f"{__name__}), found {version!r}: the model was exported by another fleetvision version"
        )
    distortion = description.get("distortion")
    layout = distortion.get("layout") if isinstance(distortion, dict) else distortion
    if layout != RULE_LAYOUTS[version]:
        raise ValueError(
            f"{source}: field 'preprocess.distortion.layout': expected {RULE_LAYOUTS[version]!r} "
            f"(input rule version {version}), found {layout!r}"
        )
    recorded = description.get("size_hw")
    if size_hw is not None and recorded is not None and [int(v) for v in recorded] != [int(v) for v in size_hw]:
        raise ValueError(
            f"{source}: field 'preprocess.size_hw': expected the model's image_size {list(size_hw)}, found {recorded}"
        )
    return description


def distortion_layout(description: dict[str, Any]) -> str:
    """The distortion layout (``model_distortion(layout=...)``) of a record ``check_description`` returned."""
    return RULE_LAYOUTS[int(description["version"])]


# ---------------------------------------------------------------------------------------------------- letterbox
# Foreign detectors (YOLOX, ultralytics YOLO, ...) take a letterboxed image instead of the rule above: resized keeping
# the aspect ratio, padded to the model's fixed input size. The one letterbox every such path uses.


@dataclass(frozen=True)
class Letterboxed:
    """A letterboxed image (height, width, 3) and where the source went: ``scale`` (model px per source px) and
    the padding ``left``/``top`` (model px) before the resized source."""

    image: np.ndarray
    scale: float
    left: int
    top: int

    def to_source(self, xyxy: np.ndarray) -> np.ndarray:
        """(N, 4) boxes in model input pixels -> source image pixels."""
        xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        offset = np.array([self.left, self.top, self.left, self.top], dtype=np.float64)
        return (xyxy - offset) / self.scale


def letterbox(
    image: np.ndarray, size_hw: tuple[int, int], *, pad_value: int = 114, center: bool = False
) -> Letterboxed:
    """Resize keeping the aspect ratio (``cv2.INTER_LINEAR``, size rounded to the nearest pixel) into (H, W) =
    ``size_hw`` and pad with ``pad_value``: bottom/right (``center=False``, YOLOX's layout) or split on both sides
    (``center=True``, ultralytics' LetterBox: top = round(dh / 2 - 0.1), left = round(dw / 2 - 0.1))."""
    import cv2

    height, width = int(size_hw[0]), int(size_hw[1])
    scale = min(height / image.shape[0], width / image.shape[1])
    new_w, new_h = int(round(image.shape[1] * scale)), int(round(image.shape[0] * scale))
    left = int(round((width - new_w) / 2 - 0.1)) if center else 0
    top = int(round((height - new_h) / 2 - 0.1)) if center else 0
    canvas = np.full((height, width, 3), pad_value, dtype=np.uint8)
    resized = (
        image
        if (new_w, new_h) == (image.shape[1], image.shape[0])
        else cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    )
    canvas[top : top + new_h, left : left + new_w] = resized
    return Letterboxed(canvas, scale, left, top)
