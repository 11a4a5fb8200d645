"""Plain checkpoints: export -> torch.load(weights_only=True) -> identical outputs; Lightning .ckpt loads too."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY_OVERRIDES

from perception.models.example_inputs import example_inputs
from perception.training.checkpoint import export_checkpoint, load_model_checkpoint
from perception.training.module import PerceptionModule


def test_export_and_load_with_weights_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = PerceptionModule(model_name="bev_tiny", model_overrides=TINY_OVERRIDES, ema_decay=0.9)
    with torch.no_grad():  # make the EMA differ from the live weights, so we can tell which one was exported
        for p in module.model.parameters():
            p.add_(0.01)
    module.rig = {"schema_version": 1, "cameras": [{"name": "front"}]}
    module.cameras, module.window = ["front"], 2
    path = export_checkpoint(module, tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["model_name"] == "bev_tiny" and payload["cameras"] == ["front"] and payload["window"] == 2
    assert payload["normalisation"]["input_color"] == "RGB float32 0..255"
    assert payload["classes"]["segmentation"] == ["drivable", "lane"]
    model, meta = load_model_checkpoint(path)
    assert meta["image_size"] == [64, 96] and meta["bev_grid"]["resolution"] == 2.0
    inputs = example_inputs(model, num_cameras=2, batch_size=1)
    with torch.no_grad():
        expected = module.ema.shadow.eval()(**inputs)
        got = model(**inputs)
        live = module.model.eval()(**inputs)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key])
    assert not torch.allclose(live["segmentation"], got["segmentation"])  # the EMA weights were exported


def test_load_rejects_unknown_files(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not a fleetvision checkpoint"):
        load_model_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        load_model_checkpoint(tmp_path / "missing.pt")
