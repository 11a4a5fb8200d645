"""Lightning DDP path: 2 CPU processes (gloo) train a tiny model for a few steps through ``perception fit``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ddp_two_cpu_processes(tiny_config: Path, tmp_path: Path) -> None:
    root = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "perception",
        "fit",
        "-c",
        str(tiny_config),
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.accelerator=cpu",
        "--trainer.max_steps=2",
        "--data.val=null",
        "--trainer.limit_val_batches=0",
        f"--trainer.default_root_dir={root}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    assert "All distributed processes registered" in result.stderr + result.stdout
    state = torch.load(root / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["global_step"] == 2
    # 4 windows over 2 ranks, batch 1: an epoch is 2 steps per rank, so the data position is (epoch 1, 0 consumed)
    assert state["ClipDataModule"] == {"data_epoch": 1, "consumed_batches": 0}
