"""``perception.model_input`` on its own (torch-free): resize rule, colour order, K scaling, lens encoding, and the
record exported models carry. That every path uses it is ``tests/deploy/test_model_input_paths.py``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from perception import model_input
from perception.rig import Camera

K = np.array([[100.0, 0.0, 79.5], [0.0, 100.0, 47.5], [0.0, 0.0, 1.0]])


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("source_hw", "flag"),
    [((96, 160), cv2.INTER_AREA), ((50, 100), cv2.INTER_LINEAR), ((64, 256), cv2.INTER_LINEAR)],
)
def test_resize_shrinks_with_area_and_enlarges_linearly(source_hw, flag):
    image = _image(*source_hw)
    assert model_input.resize_interpolation(source_hw, (64, 128)) == flag
    np.testing.assert_array_equal(
        model_input.resize_image(image, (64, 128)), cv2.resize(image, (128, 64), interpolation=flag)
    )


def test_prepare_image_is_resized_rgb_and_a_no_op_size_keeps_pixels():
    bgr = _image(64, 128)
    assert model_input.resize_image(bgr, (64, 128)) is bgr
    rgb = model_input.prepare_image(bgr, (64, 128))
    np.testing.assert_array_equal(rgb[..., 0], bgr[..., 2])
    np.testing.assert_array_equal(rgb[..., 2], bgr[..., 0])


def test_intrinsics_follow_the_resize_with_pixel_centres_at_integers():
    camera = Camera("front", 160, 96, K)
    scaled = model_input.model_intrinsics(camera, (48, 80))  # half size
    np.testing.assert_allclose(scaled, [[50.0, 0.0, 39.5], [0.0, 50.0, 23.5], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize(
    ("lens", "coefficients", "expected"),
    [
        ("none", [], [0, 0, 0, 0, 0, 0]),
        ("radtan", [0.1, -0.01, 0.001, 0.002], [0.1, -0.01, 0.001, 0.002, 0, 0]),
        ("radtan", [0.1, -0.01, 0.001, 0.002, 0.003], [0.1, -0.01, 0.001, 0.002, 0.003, 0]),
        ("radtan", [0.1, -0.01, 0.001, 0.002, 0.003, 0, 0, 0], [0.1, -0.01, 0.001, 0.002, 0.003, 0]),
        ("fisheye", [0.0, 0.0, 0.0, 0.0], [0, 0, 0, 0, 0, 1]),  # all-zero fisheye is equidistant, not a pinhole
        ("fisheye", [0.02, -0.01, 0.002, -0.0005], [0.02, -0.01, 0.002, -0.0005, 0, 1]),
    ],
)
def test_lens_models_the_model_takes(lens, coefficients, expected):
    camera = Camera("front", 160, 96, K, distortion_model=lens, distortion=coefficients)
    assert model_input.DISTORTION_COLUMNS[-1] == "lens" and model_input.LENS_IDS == {"radtan": 0, "fisheye": 1}
    np.testing.assert_allclose(model_input.model_distortion(camera), expected)


@pytest.mark.parametrize(
    ("lens", "coefficients", "expected"),
    [("none", [], [0, 0, 0, 0, 0]), ("radtan", [0.1, -0.01, 0.001, 0.002, 0.003], [0.1, -0.01, 0.001, 0.002, 0.003])],
)
def test_legacy_layout_is_the_radtan_prefix(lens, coefficients, expected):
    """Models exported under input rule 1 take [.., 5] radtan: the current row without its lens column."""
    camera = Camera("front", 160, 96, K, distortion_model=lens, distortion=coefficients)
    legacy = model_input.model_distortion(camera, layout=model_input.LEGACY_DISTORTION)
    np.testing.assert_allclose(legacy, expected)
    np.testing.assert_array_equal(legacy, model_input.model_distortion(camera)[:5])


def test_other_lens_models_are_refused_with_an_actionable_error():
    camera = Camera("side", 160, 96, K, distortion_model="radtan", distortion=[0.1, 0, 0, 0, 0, 0.2, 0, 0])
    with pytest.raises(
        model_input.UnsupportedDistortionError,
        match=r"clip/rig.yaml: camera 'side': distortion model 'radtan' .*'lens6'.*fisheye \(k1, k2, k3, k4\); "
        r"radtan k4..k6 must be 0; or undistort the images",
    ):
        model_input.model_distortion(camera, source="clip/rig.yaml")


def test_fisheye_is_refused_for_models_exported_before_fisheye_support():
    camera = Camera("side", 160, 96, K, distortion_model="fisheye", distortion=[0.1, 0, 0, 0])
    with pytest.raises(
        model_input.UnsupportedDistortionError,
        match=r"clip/rig.yaml: camera 'side': distortion model 'fisheye' .*'radtan5'.*before fisheye support, "
        r"re-export it; or undistort the images",
    ):
        model_input.model_distortion(camera, source="clip/rig.yaml", layout=model_input.LEGACY_DISTORTION)
    with pytest.raises(ValueError, match="layout: expected one of .*found 'fisheye4'"):
        model_input.model_distortion(camera, layout="fisheye4")


def test_description_round_trip_and_refusals():
    description = model_input.describe((64, 128))
    assert description["version"] == model_input.MODEL_INPUT_VERSION == 2
    assert model_input.check_description(description, size_hw=(64, 128), source="m.onnx") == description
    assert model_input.distortion_layout(description) == "lens6"
    # exported before 'version' existed, and under rule 1 (radtan only): read back, fed the radtan layout
    legacy = {"resize": model_input.RESIZE_RULE, "intrinsics": "Camera.resized(W, H).K", "distortion": "radtan"}
    assert model_input.check_description(legacy, source="old.onnx")["version"] == 1
    assert model_input.distortion_layout(model_input.check_description(None)) == "radtan5"
    version1 = {**description, "version": 1, "distortion": {"layout": "radtan5", "coefficients": ["k1"]}}
    assert model_input.distortion_layout(model_input.check_description(version1, source="v1.onnx")) == "radtan5"
    with pytest.raises(ValueError, match=r"m.onnx: field 'preprocess.version': expected 1 or 2 .* found 3"):
        model_input.check_description({**description, "version": 3}, source="m.onnx")
    with pytest.raises(
        ValueError, match=r"'preprocess.distortion.layout': expected 'lens6' \(input rule version 2\), found 'radtan5'"
    ):
        model_input.check_description({**description, "distortion": {"layout": "radtan5"}}, source="m.onnx")
    with pytest.raises(ValueError, match=r"'preprocess.size_hw': expected the model's image_size \[96, 192\]"):
        model_input.check_description(description, size_hw=(96, 192), source="m.onnx")
