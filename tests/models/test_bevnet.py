"""Every registered model: shapes, gradients to every parameter, no NaN, config round trip, window == recurrent,
missing-camera masking, and ONNX export (dynamo) matching ONNX Runtime."""

import copy
import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from perception.models import BevVideoNet, build_model, list_models, model_defaults
from perception.models.example_inputs import example_inputs

# Small everything: the preset architecture is kept, only the BEV extent and image size shrink.
SMALL = {"x_range": [-4.0, 4.0], "y_range": [-4.0, 4.0], "image_size": [64, 128]}
BEV_OUTPUTS = ("heatmap", "offset", "z", "size", "yaw", "velocity", "segmentation", "state")


@functools.cache
def _small_model(name: str) -> BevVideoNet:
    torch.manual_seed(0)
    defaults = model_defaults(name)
    has_bev = defaults["detection3d_classes"] is not None or defaults["segmentation_classes"] is not None
    return build_model(name, **(SMALL if has_bev else {"image_size": SMALL["image_size"]}))


def small_model(name: str) -> BevVideoNet:
    """A fresh copy of the preset with a small BEV extent and image size (construction is cached)."""
    return copy.deepcopy(_small_model(name))


def expected_shapes(model: BevVideoNet, batch: int, cams: int) -> dict[str, tuple[int, ...]]:
    cfg = model.config()
    rows, cols = BevVideoNet.bev_shape_of(cfg)
    hs = cfg["head_stride"]
    h, w = (
        (cfg["image_size"][0] + cfg["image_stride"] - 1) // cfg["image_stride"],
        (cfg["image_size"][1] + cfg["image_stride"] - 1) // cfg["image_stride"],
    )
    shapes: dict[str, tuple[int, ...]] = {}
    if cfg["detection3d_classes"]:
        k = len(cfg["detection3d_classes"])
        for key, ch in {"heatmap": k, "offset": 2, "z": 1, "size": 3, "yaw": 2, "velocity": 2}.items():
            shapes[key] = (batch, ch, rows // hs, cols // hs)
    if cfg["segmentation_classes"]:
        shapes["segmentation"] = (batch, len(cfg["segmentation_classes"]), rows, cols)
    if cfg["detection2d_classes"]:
        shapes["det2d_heatmap"] = (batch, cams, len(cfg["detection2d_classes"]), h, w)
        shapes["det2d_box"] = (batch, cams, 4, h, w)
    shapes["state"] = (batch, *model.state_shape())
    return shapes


def test_registry_has_the_documented_presets() -> None:
    assert list_models() == ["bev_base", "bev_tiny", "cam2d", "teacher"]
    with pytest.raises(KeyError, match="known"):
        build_model("nope")
    with pytest.raises(TypeError, match="unknown overrides \\['colour'\\]"):
        build_model("bev_tiny", colour="red")


def test_preset_classes_match_core_labels() -> None:
    labels = pytest.importorskip("perception.labels")
    assert model_defaults("bev_tiny")["detection3d_classes"] == list(labels.DRIVING_CLASSES)


@pytest.mark.parametrize("name", list_models())
def test_shapes_gradients_and_finite(name: str) -> None:
    model = small_model(name).train()
    cams = 1 if name == "cam2d" else 2
    inputs = example_inputs(model, batch_size=2, num_cameras=cams)
    out = model(**inputs)
    assert list(out) == model.output_names()
    assert {k: tuple(v.shape) for k, v in out.items()} == expected_shapes(model, 2, cams)
    assert all(torch.isfinite(v).all() for v in out.values())
    loss = sum(v.square().mean() + v.mean() for k, v in out.items() if k != "state" or model.has_temporal)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    zero = [n for n, p in model.named_parameters() if p.grad is not None and not p.grad.abs().gt(0).any()]
    assert not missing, f"no gradient for {missing[:5]}"
    assert not zero, f"all-zero gradient for {zero[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_config_round_trip_rebuilds_identical_model() -> None:
    model = small_model("bev_tiny").eval()
    config = {**model.config(), "weights_path": "/nonexistent/imagenet.pth"}  # provenance only: not read
    model._config["weights_path"] = config["weights_path"]
    clone = BevVideoNet.from_config(config)
    clone.load_state_dict(model.state_dict())
    clone.eval()
    inputs = example_inputs(model, num_cameras=2)
    with torch.no_grad():
        a, b = model(**inputs), clone(**inputs)
    assert clone.config() == model.config()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_invalid_configs_name_the_field() -> None:
    with pytest.raises(ValueError, match="at least one of"):
        BevVideoNet(detection3d_classes=None, segmentation_classes=None, detection2d_classes=None)
    with pytest.raises(ValueError, match="head_stride"):
        BevVideoNet(x_range=[-5.0, 5.0], y_range=[-5.0, 5.0], resolution=1.0, head_stride=4)
    with pytest.raises(ValueError, match="x_range"):
        BevVideoNet(x_range=[5.0, -5.0])


def test_cam2d_builds_no_bev_parts() -> None:
    model = small_model("cam2d")
    assert not model.has_bev and model.state_shape() == (1, 1, 1)
    assert not any(n.startswith(("lifting", "bev_encoder", "fusion")) for n, _ in model.named_modules())


def test_window_equals_recurrent_steps() -> None:
    model = small_model("bev_tiny").eval()
    steps = 3
    inputs = example_inputs(model, batch_size=2, num_cameras=2, time_steps=steps, seed=1)
    inputs["state_valid"][:, 0] = 0.0  # fresh sequence
    inputs["state_valid"][1, 2] = 0.0  # reset in the middle for sample 1
    inputs["prev_from_curr"][:, 1, 1, 3] = 0.7  # some lateral motion too
    with torch.no_grad():
        window = model.forward_window(**inputs)
        state = inputs["prev_state"]
        for t in range(steps):
            step_inputs = {k: (v if k == "prev_state" else v[:, t]) for k, v in inputs.items()}
            step_inputs["prev_state"] = state
            step = model(**step_inputs)
            state = step["state"]
            for key, value in step.items():
                torch.testing.assert_close(window[key][:, t], value, atol=1e-5, rtol=1e-5)
    assert set(window) == set(model.output_names())


def test_state_reset_ignores_previous_state() -> None:
    model = small_model("bev_tiny").eval()
    inputs = example_inputs(model, num_cameras=2)
    inputs["state_valid"][:] = 0.0
    with torch.no_grad():
        a = model(**inputs)
        inputs["prev_state"] = torch.randn_like(inputs["prev_state"])
        b = model(**inputs)
        inputs["state_valid"][:] = 1.0
        c = model(**inputs)
    torch.testing.assert_close(a["state"], b["state"], atol=0, rtol=0)
    assert not torch.allclose(b["state"], c["state"])


def test_frame_with_no_camera_carries_the_warped_state() -> None:
    """Every image lost: the new state is the previous one moved by the ego motion (not reset, not fused with
    empty features); in a window the same holds at that step, and one valid camera brings fusion back."""
    from perception.models.temporal import warp_bev

    model = small_model("bev_tiny").eval()
    inputs = example_inputs(model, batch_size=2, num_cameras=2, seed=3)
    inputs["prev_state"] = torch.randn_like(inputs["prev_state"])
    inputs["state_valid"][:] = 1.0
    inputs["prev_from_curr"][:, 0, 3] = 1.0  # moved 1 m forward
    inputs["camera_valid"][0] = 0.0  # sample 0: nothing arrives; sample 1: both cameras
    with torch.no_grad():
        out = model(**inputs)
        warped = warp_bev(
            inputs["prev_state"],
            inputs["prev_from_curr"],
            x_range=model.x_range,
            y_range=model.y_range,
            resolution=model.resolution,
        )
    torch.testing.assert_close(out["state"][0], warped[0], atol=1e-6, rtol=0)
    assert not torch.allclose(out["state"][1], warped[1], atol=1e-3)
    window_inputs = example_inputs(model, batch_size=1, num_cameras=2, time_steps=3, seed=4)
    window_inputs["camera_valid"][:, 1] = 0.0  # frame 1 lost entirely
    window_inputs["state_valid"][:, 1:] = 1.0
    with torch.no_grad():
        window = model.forward_window(**window_inputs)
    frame1_moved = warp_bev(
        window["state"][:, 0],
        window_inputs["prev_from_curr"][:, 1],
        x_range=model.x_range,
        y_range=model.y_range,
        resolution=model.resolution,
    )
    torch.testing.assert_close(window["state"][:, 1], frame1_moved, atol=1e-6, rtol=0)


def test_missing_camera_does_not_change_bev_outputs() -> None:
    model = small_model("bev_tiny").eval()
    inputs = example_inputs(model, num_cameras=3, seed=2)
    inputs["camera_valid"][0, 1] = 0.0
    with torch.no_grad():
        before = model(**inputs)
        inputs["images"][0, 1] = torch.rand_like(inputs["images"][0, 1]) * 255.0
        after_missing = model(**inputs)
        inputs["images"][0, 0] = torch.rand_like(inputs["images"][0, 0]) * 255.0
        after_valid = model(**inputs)
    for key in BEV_OUTPUTS:
        torch.testing.assert_close(before[key], after_missing[key], atol=1e-6, rtol=0)
    assert not torch.allclose(before["heatmap"], after_valid["heatmap"], atol=1e-4)


def export_and_compare(model: BevVideoNet, inputs: dict[str, torch.Tensor], path: Path) -> float:
    """Export with the dynamo exporter, run in ONNX Runtime (CPU), return the worst error / output scale."""
    ort = pytest.importorskip("onnxruntime")
    model.eval()
    torch.onnx.export(
        model,
        tuple(inputs.values()),
        str(path),
        dynamo=True,
        input_names=list(inputs),
        output_names=model.output_names(),
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {i.name: inputs[i.name].numpy() for i in session.get_inputs()}
    assert set(feed) == set(inputs)
    results = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    assert list(results) == model.output_names()
    with torch.no_grad():
        reference = model(**inputs)
    worst = 0.0
    for key, value in results.items():
        ref = reference[key].numpy()
        assert value.shape == ref.shape, key
        error = float(np.abs(value - ref).max())
        worst = max(worst, error / max(1.0, float(np.abs(ref).max())))
        print(f"onnx {key}: max abs error {error:.2e} (max |output| {np.abs(ref).max():.2e})")
    return worst


EXPORT_CASES = [
    pytest.param(name, marks=() if name in ("bev_tiny", "cam2d") else pytest.mark.slow) for name in list_models()
]


@pytest.mark.parametrize("name", EXPORT_CASES)
def test_onnx_export_matches_pytorch(name: str, tmp_path: Path) -> None:
    model = small_model(name)
    inputs = example_inputs(model, num_cameras=1 if name == "cam2d" else 3, seed=3)
    assert export_and_compare(model, inputs, tmp_path / f"{name}.onnx") < 1e-4


def test_onnx_export_matches_pytorch_on_a_fisheye_rig(tmp_path: Path) -> None:
    """The low robot rig's four fisheye cameras (lens id 1 in the distortion input) through the exported graph."""
    from perception.rig import Rig

    rig = Rig.load(Path(__file__).resolve().parents[2] / "configs" / "rigs" / "robot_quadruped_4fisheye.yaml")
    model = small_model("bev_tiny")
    inputs = example_inputs(model, rig=rig, seed=4)
    assert inputs["distortion"].shape == (1, 4, 6) and (inputs["distortion"][..., 5] == 1).all()
    assert export_and_compare(model, inputs, tmp_path / "fisheye.onnx") < 1e-4
    with torch.no_grad():  # the lens column matters, so the comparison above can fail
        fisheye = model(**inputs)["heatmap"]
        as_pinhole = model(**{**inputs, "distortion": torch.zeros_like(inputs["distortion"])})["heatmap"]
    assert (fisheye - as_pinhole).abs().max() > 1e-3


@pytest.mark.parametrize("name", list_models())
def test_preset_config_is_complete(name: str) -> None:
    assert build_model(name).config() == model_defaults(name)


def test_bfloat16_autocast_keeps_geometry_in_float32() -> None:
    model = small_model("bev_tiny").eval()
    inputs = example_inputs(model, num_cameras=2)
    with torch.no_grad():
        reference = model(**inputs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(**inputs)
    assert all(torch.isfinite(v).all() for v in mixed.values())
    # Loose: bf16 convolutions; a mis-projected geometry would decorrelate the maps entirely.
    correlation = torch.corrcoef(
        torch.stack([reference["segmentation"].flatten(), mixed["segmentation"].float().flatten()])
    )[0, 1]
    assert correlation > 0.9


def test_bev_model_without_temporal_fusion_has_dummy_state() -> None:
    model = build_model("bev_tiny", temporal=False, **SMALL).eval()
    assert model.state_shape() == (1, 1, 1) and not hasattr(model, "fusion")
    inputs = example_inputs(model, batch_size=2, num_cameras=2, time_steps=2)
    with torch.no_grad():
        window = model.forward_window(**inputs)
        step = model(**{k: (v if k == "prev_state" else v[:, 1]) for k, v in inputs.items()})
    assert window["state"].shape == (2, 2, 1, 1, 1) and step["state"].shape == (2, 1, 1, 1)
    torch.testing.assert_close(window["heatmap"][:, 1], step["heatmap"], atol=1e-5, rtol=1e-5)


def test_jsonargparse_builds_the_model_from_yaml() -> None:
    jsonargparse = pytest.importorskip("jsonargparse")
    parser = jsonargparse.ArgumentParser()
    parser.add_class_arguments(BevVideoNet, "model")
    config = parser.parse_string(
        "model:\n  backbone_stages: 3\n  x_range: [-10, 10]\n  y_range: [-10, 10]\n  resolution: 1.0\n"
        "  segmentation_classes: [drivable]\n  detection2d_classes: null\n"
    )
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    model = instantiate(config).model
    assert model.config()["x_range"] == [-10.0, 10.0] and model.config()["segmentation_classes"] == ["drivable"]
    assert model.output_names()[-2:] == ["segmentation", "state"]
