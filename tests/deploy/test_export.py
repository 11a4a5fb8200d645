"""deploy export: a tiny random BevVideoNet -> ONNX (dynamo), checker, metadata round trip, ORT-vs-PyTorch parity."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from deploy.export import ExportError  # noqa: E402
from deploy.export.checkpoint import load_checkpoint  # noqa: E402
from deploy.export.graph import DeployGraph  # noqa: E402
from deploy.export.parity import parity_check  # noqa: E402
from deploy.metadata import METADATA_KEY, MetadataError, read_metadata  # noqa: E402
from perception.rig import Rig  # noqa: E402

BUDGET = {"name": "rate_20hz", "rate_hz": 20.0, "deadline_ms": 50.0, "intra_op_threads": 2}  # as in conftest.exported


def test_export_passes_checker_and_has_fixed_uint8_bgr_input(exported):
    model_path, _, _ = exported
    proto = onnx.load(str(model_path))
    onnx.checker.check_model(proto, full_check=True)
    inputs = {i.name: i for i in proto.graph.input}
    images = inputs["images"].type.tensor_type
    assert images.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in images.shape.dim] == [1, 2, 64, 128, 3]
    outputs = [o.name for o in proto.graph.output]
    assert outputs == [
        "det3d_boxes",
        "det3d_scores",
        "det3d_class_id",
        "segmentation",
        "det2d_boxes",
        "det2d_scores",
        "det2d_class_id",
        "state",
    ]
    assert METADATA_KEY in {p.key for p in proto.metadata_props}


def test_metadata_round_trip(exported):
    model_path, checkpoint, _ = exported
    meta = read_metadata(model_path)
    model, ckpt_meta = load_checkpoint(checkpoint)
    assert meta["cameras"] == ckpt_meta["cameras"] == ["cam0", "cam1"]
    assert meta["image_size"] == [64, 128]
    assert [c["source_width"] for c in meta["camera_images"]] == [160, 160]
    rig = Rig.from_dict(meta["rig"])
    expected = Rig.from_dict(ckpt_meta["rig"])
    for name in rig.names:
        np.testing.assert_allclose(rig[name].K, expected[name].K, atol=1e-6)
        np.testing.assert_allclose(rig[name].ego_from_camera, expected[name].ego_from_camera, atol=1e-6)
    assert meta["classes"]["detection3d"] == model.config()["detection3d_classes"]
    assert meta["model"]["config"] == model.config()
    assert len(meta["model"]["state_dict_sha256"]) == 64
    assert meta["latency_budget"] == BUDGET
    assert meta["bev_grid"]["resolution"] == 1.0
    specs = {s["name"]: s for s in meta["inputs"]}
    assert specs["images"]["dtype"] == "uint8" and "BGR" in specs["images"]["meaning"]
    assert specs["prev_state"]["shape"] == [1, *model.state_shape()]
    out_specs = {s["name"]: s for s in meta["outputs"]}
    assert out_specs["det3d_boxes"]["shape"] == [1, 20, 9]
    assert "ego" in out_specs["det3d_boxes"]["frame"]


def test_graph_converts_bgr_to_rgb_like_the_model(exported):
    """The graph's uint8 BGR input must equal the model fed RGB float (segmentation compared exactly)."""
    model_path, checkpoint, _ = exported
    from deploy.onnx_utils import make_session
    from deploy.runtime.preprocess import FramePreprocessor

    model, meta = load_checkpoint(checkpoint)
    rig = Rig.from_dict(meta["rig"])
    rng = np.random.default_rng(3)
    images = {name: rng.integers(0, 256, (96, 160, 3), dtype=np.uint8) for name in rig.names}
    feeds = FramePreprocessor(rig, rig.names, (64, 128)).feeds(
        images,
        camera_from_ego=None,
        prev_state=np.zeros((1, *model.state_shape()), np.float32),
        prev_from_curr=np.eye(4),
        state_valid=False,
    )
    session = make_session(model_path)
    segmentation = session.run(["segmentation"], feeds)[0]
    rgb = torch.from_numpy(feeds["images"][..., ::-1].copy()).permute(0, 1, 4, 2, 3).float()
    args = [
        torch.from_numpy(feeds[k])
        for k in (
            "intrinsics",
            "camera_from_ego",
            "distortion",
            "camera_valid",
            "prev_state",
            "prev_from_curr",
            "state_valid",
        )
    ]
    with torch.no_grad():
        reference = torch.sigmoid(model(rgb, *args)["segmentation"]).numpy()
    np.testing.assert_allclose(segmentation, reference, atol=1e-4)
    bgr_as_rgb = torch.from_numpy(feeds["images"].copy()).permute(0, 1, 4, 2, 3).float()
    with torch.no_grad():
        wrong = torch.sigmoid(model(bgr_as_rgb, *args)["segmentation"]).numpy()
    assert np.abs(wrong - segmentation).max() > 1e-4  # the channel flip matters, so the check above can fail


def test_parity_on_real_clip_frames(exported):
    model_path, checkpoint, clip = exported
    model, _ = load_checkpoint(checkpoint)
    report = parity_check(model_path, DeployGraph(model, top_k=20, top_k_2d=10).eval(), clip, frames=3)
    assert report.passed, report.format()
    assert report.frames == [0, 1, 2]
    by_name = {o.name: o for o in report.outputs}
    assert by_name["state"].max_abs < 1e-3
    assert by_name["det3d_boxes"].agreement == pytest.approx(1.0)


def test_parity_fails_for_a_different_model(exported, tiny_model_args):
    model_path, _, clip = exported
    from perception.models import build_model

    torch.manual_seed(123)
    other = build_model("bev_tiny", **tiny_model_args).eval()
    report = parity_check(model_path, DeployGraph(other, top_k=20, top_k_2d=10).eval(), clip, frames=2)
    assert not report.passed


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    import argparse

    path = tmp_path / "evil.pt"  # an arbitrary class instance: weights_only=True must refuse to unpickle it
    torch.save({"format": "fleetvision.model/1", "payload": argparse.Namespace(run="code")}, path)
    with pytest.raises(ExportError, match="weights_only=True"):
        load_checkpoint(path)


def test_onnx_without_metadata_is_rejected_by_reader(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "plain.onnx"
    onnx.save_model(model, str(path))
    with pytest.raises(MetadataError, match="not exported by 'deploy export'"):
        read_metadata(path)


def test_fisheye_rig_exports_and_the_runtime_matches_pytorch(tmp_path, tiny_model_args):
    """The low robot rig (four fisheye cameras): export, ORT-vs-PyTorch parity on rendered fisheye frames through
    the runtime's preprocessing, and the torch-free runtime replays the clip with the exported model."""
    from pathlib import Path

    from deploy.export.to_onnx import export_onnx
    from deploy.runtime import DeployedModel, Runtime, RuntimeConfig
    from perception.models import build_model
    from perception.sim import generate_clip

    rig = Rig.load(Path(__file__).resolve().parents[2] / "configs" / "rigs" / "robot_quadruped_4fisheye.yaml")
    clip = generate_clip(tmp_path / "clip", rig, frames=3, seed=2, num_actors=(10, 14))
    torch.manual_seed(0)
    model = build_model("bev_tiny", **tiny_model_args).eval()
    result = export_onnx(model, rig=rig, cameras=rig.names, out=tmp_path / "fisheye.onnx", top_k=20, top_k_2d=10)
    specs = {s["name"]: s for s in result.metadata["inputs"]}
    assert specs["distortion"]["shape"] == [1, 4, 6] and "fisheye" in specs["distortion"]["meaning"]
    assert result.metadata["preprocess"]["distortion"]["layout"] == "lens6"
    report = parity_check(result.path, DeployGraph(model, top_k=20, top_k_2d=10).eval(), clip, frames=3)
    assert report.passed, report.format()
    deployed = DeployedModel.load(result.path)
    summary = Runtime(deployed, RuntimeConfig(realtime=False)).run_clip(clip)
    assert summary.frames_processed == 3 and not summary.missing_cameras
