"""Shared deploy test fixtures: one tiny exported model (ONNX + plain checkpoint + a 2-camera clip) per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from synthetic_clip import write_synthetic_clip  # noqa: E402

from perception.rig import ring_rig  # noqa: E402

TINY = dict(
    backbone_stages=2,
    image_channels=16,
    image_stride=8,
    image_size=[64, 128],
    x_range=[-10.0, 10.0],
    y_range=[-10.0, 10.0],
    resolution=1.0,
    num_heights=2,
    bev_channels=16,
    head_channels=16,
)


def tiny_export(base: Path) -> tuple[Path, Path, Path]:
    """(model.onnx, checkpoint.pt, clip) of a tiny 2-camera model, built once per test session."""
    torch = pytest.importorskip("torch")
    from deploy.export.to_onnx import export_onnx
    from perception.models import build_model
    from perception.training.checkpoint import model_metadata

    folder = base / "deploy_tiny"
    model_path, checkpoint, clip = folder / "model.onnx", folder / "tiny.pt", folder / "clip"
    if model_path.is_file():
        return model_path, checkpoint, clip
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = build_model("bev_tiny", **TINY).eval()
    rig = ring_rig(num_cameras=2, width=160, height=96)
    folder.mkdir(parents=True, exist_ok=True)
    write_synthetic_clip(clip, rig=rig, frames=6, fps=20.0, seed=1)
    torch.save(
        {
            **model_metadata(model, model_name="bev_tiny", rig=rig.to_dict(), cameras=rig.names),
            "state_dict": model.state_dict(),
        },
        checkpoint,
    )
    export_onnx(
        model,
        rig=rig,
        cameras=rig.names,
        out=model_path,
        top_k=20,
        top_k_2d=10,
        model_name="bev_tiny",
        checkpoint=checkpoint,
        budget={"name": "rate_20hz", "rate_hz": 20.0, "deadline_ms": 50.0, "intra_op_threads": 2},
    )
    return model_path, checkpoint, clip


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> tuple[Path, Path, Path]:
    return tiny_export(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def tiny_model_args() -> dict:
    """Constructor overrides of the tiny bev_tiny used by ``exported``."""
    return dict(TINY)
