"""deploy export --bake-rig: the baked graph computes what the dynamic one does (ONNX Runtime, to 1e-4 of each output's
scale), carries its rig's hash, runs no per-frame projection, and every consumer refuses a clip of another rig (or the
runtime runs the dynamic fallback exported beside it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from deploy.cli import main as deploy_main  # noqa: E402
from deploy.export.bake import parity_feeds  # noqa: E402
from deploy.export.graph import example_feeds  # noqa: E402
from deploy.export.to_onnx import export_checkpoint_to_onnx  # noqa: E402
from deploy.metadata import read_metadata  # noqa: E402
from deploy.onnx_utils import make_session  # noqa: E402
from deploy.runtime import DeployedModel, Runtime, RuntimeConfig  # noqa: E402
from deploy.runtime.baked_rig import RigMismatchError, rig_calibration, rig_sha256  # noqa: E402
from perception.rig import Rig  # noqa: E402

BUDGET = {"name": "rate_20hz", "rate_hz": 20.0, "deadline_ms": 50.0, "intra_op_threads": 2}


@pytest.fixture(scope="module")
def baked(exported, tmp_path_factory) -> dict[str, Path]:
    """The tiny model of ``exported`` exported again with --bake-rig (+ its dynamic fallback), and a copy of the clip
    whose rig differs in one camera's focal length."""
    dynamic, checkpoint, clip = exported
    folder = tmp_path_factory.mktemp("baked")
    out = folder / "baked.onnx"
    result, _, _ = export_checkpoint_to_onnx(
        checkpoint, out, top_k=20, top_k_2d=10, budget=BUDGET, bake_rig=True, dynamic_fallback=True
    )
    alone = folder / "alone" / "baked.onnx"  # the same baked file without a fallback beside it
    alone.parent.mkdir()
    shutil.copy(out, alone)
    other = folder / "other_rig_clip"
    shutil.copytree(clip, other)
    rig = Rig.load(other / "rig.yaml")
    rig["cam1"].K[0, 0] *= 1.05
    rig.save(other / "rig.yaml")
    return {"dynamic": dynamic, "baked": out, "alone": alone, "clip": clip, "other": other, "result": result}


def _run(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = make_session(path)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def test_baked_onnx_matches_dynamic_onnx_to_1e4_of_scale(exported, baked):
    """Same feeds (the rig's static calibration): dense outputs and sorted scores agree to 1e-4 of their scale, with the
    state carried and with a dead camera."""
    _, checkpoint, _ = exported
    from deploy.export.checkpoint import load_checkpoint

    model, meta = load_checkpoint(checkpoint)
    rig = Rig.from_dict(meta["rig"])
    for feeds in parity_feeds(example_feeds(model, rig, meta["cameras"], seed=5)):
        reference, got = _run(baked["dynamic"], feeds), _run(baked["baked"], feeds)
        for name in ("state", "segmentation", "det3d_scores", "det2d_scores"):
            ref, out = reference[name], got[name]
            if name.endswith("scores"):
                ref, out = -np.sort(-ref, axis=-1), -np.sort(-out, axis=-1)
            scale = float(np.abs(ref).max())
            assert scale > 0
            assert float(np.abs(out - ref).max()) <= 1e-4 * scale, name


def test_baked_metadata_and_graph(exported, baked):
    _, checkpoint, _ = exported
    from deploy.export.checkpoint import load_checkpoint

    _, meta = load_checkpoint(checkpoint)
    metadata = read_metadata(baked["baked"])
    view = metadata["view_transform"]
    assert view["mode"] == "baked" and view["fallback"] == "baked.dynamic.onnx"
    rig = Rig.from_dict(meta["rig"])
    assert view["rig_sha256"] == rig_sha256(rig_calibration(rig, meta["cameras"], tuple(metadata["image_size"])))
    assert view["parity"]["passed"] and view["parity"]["worst_relative"] <= 1e-4
    assert view["capture_time"].startswith("first-order correction")
    ignored = {s["name"] for s in metadata["inputs"] if "IGNORED" in s["meaning"]}
    assert ignored == {"intrinsics", "distortion"}  # camera_from_ego drives the motion correction
    assert read_metadata(baked["dynamic"])["view_transform"] == {"mode": "dynamic"}
    assert read_metadata(baked["baked"].with_name("baked.dynamic.onnx"))["view_transform"] == {"mode": "dynamic"}

    def ops(path: Path) -> list[str]:
        return [node.op_type for node in onnx.load(str(path)).graph.node]

    # the dynamic graph samples camera features (lifting) and the previous state (temporal warp); the baked one only
    # the state: no per-frame projection, no camera GridSample
    assert ops(baked["dynamic"]).count("GridSample") == 2
    assert ops(baked["baked"]).count("GridSample") == 1


def test_runtime_runs_the_baked_rig_and_refuses_another(baked, tmp_path):
    model = DeployedModel.load(baked["alone"])
    summary = Runtime(model, RuntimeConfig(realtime=False, max_frames=3)).run_clip(baked["clip"], out_dir=tmp_path)
    assert summary.frames_processed == 3 and summary.view_transform.startswith("baked for rig sha256")
    with pytest.raises(RigMismatchError, match=r"camera 'cam1': intrinsics\[0, 0\] baked .* this rig"):
        Runtime(model, RuntimeConfig(realtime=False, max_frames=3)).run_clip(baked["other"])


def test_runtime_falls_back_to_the_dynamic_export(baked, tmp_path):
    model = DeployedModel.load(baked["baked"], intra_op_threads=1)
    summary = Runtime(model, RuntimeConfig(realtime=False, max_frames=3)).run_clip(baked["other"], out_dir=tmp_path)
    assert summary.frames_processed == 3
    assert summary.view_transform.startswith("dynamic fallback baked.dynamic.onnx") and "cam1" in summary.view_transform
    assert summary.model.endswith("baked.dynamic.onnx")


def test_deploy_run_cli_refuses_another_rig_with_exit_2(baked, capsys):
    code = deploy_main(["run", str(baked["alone"]), "--clip", str(baked["other"]), "--fast", "--max-frames", "2"])
    assert code == 2
    error = capsys.readouterr().err
    assert "rig.yaml: this rig is not the one" in error and "cam1" in error and "--bake-rig" in error


def test_offline_consumers_refuse_another_rig(baked):
    from deploy.clip_feeds import clip_feeds

    with pytest.raises(RigMismatchError, match="cam1"):
        clip_feeds(baked["alone"], [baked["other"]], frames_per_clip=2)
    assert len(clip_feeds(baked["alone"], [baked["clip"]], frames_per_clip=2)) == 2


def test_parity_command_on_a_baked_export(exported, baked):
    _, checkpoint, _ = exported
    code = deploy_main(["parity", str(baked["baked"]), str(checkpoint), "--clip", str(baked["clip"]), "--frames", "2"])
    assert code == 0


def test_baked_onnx_follows_per_camera_motion(exported, baked):
    """camera_from_ego with each camera moved as by a capture-time offset: the baked file reads it (first-order
    correction) and lands closer to the dynamic file than the same baked file fed the static extrinsics."""
    _, checkpoint, _ = exported
    from deploy.export.checkpoint import load_checkpoint
    from perception.geometry import se3, yaw_matrix

    model, meta = load_checkpoint(checkpoint)
    feeds = example_feeds(model, Rig.from_dict(meta["rig"]), meta["cameras"], seed=7)
    moved = feeds["camera_from_ego"].copy()
    for n in range(moved.shape[1]):  # camera n captured 20 ms later per index, ego at 8 m/s
        moved[0, n] = moved[0, n] @ np.linalg.inv(se3(yaw_matrix(0.002 * n), np.array([0.16 * n, 0.0, 0.0])))
    moving = {**feeds, "camera_from_ego": moved.astype(np.float32)}
    reference = _run(baked["dynamic"], moving)["state"]
    corrected = _run(baked["baked"], moving)["state"]
    static = _run(baked["baked"], feeds)["state"]
    # about half the error goes on this random tiny model (its 8x16 feature maps are rough); the input must be wired
    assert np.abs(corrected - reference).mean() < 0.7 * np.abs(static - reference).mean()
