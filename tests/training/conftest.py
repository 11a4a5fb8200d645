"""Fixtures: tiny clips from tests/data/clip_factory.py and a tiny CLI config (a small bev_tiny variant)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))

from clip_factory import TINY_BEV_SIZE, make_clip

TINY_OVERRIDES = {"backbone": "resnet18", **TINY_BEV_SIZE}


@pytest.fixture(scope="session")
def clip_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    for i in range(2):
        make_clip(root / "train" / f"clip{i}", frames=3)
    make_clip(root / "val" / "clip_val", frames=3)
    return root


def write_config(path: Path, clip_root: Path, cache: Path, **data_overrides) -> Path:
    config = {
        "seed_everything": 0,
        "model": {
            "model_name": "bev_tiny",
            "model_overrides": TINY_OVERRIDES,
            "lr": 0.002,
            "ema_decay": 0.9,
            "schedule": "cosine",
            "warmup_steps": 1,
        },
        "data": {
            "train": str(clip_root / "train"),
            "val": str(clip_root / "val"),
            "test": str(clip_root / "val"),
            "predict": str(clip_root / "val"),
            "window": 2,
            "batch_size": 1,
            "num_workers": 0,
            "cache_dir": str(cache),
            "image_augmentation": {"scale_range": [0.9, 1.1], "color_jitter_prob": 0.5},
            "bev_augmentation": {"rotation_deg": 10.0, "flip_y_prob": 0.5},
            **data_overrides,
        },
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "precision": "32-true",
            "max_epochs": 10,
            "gradient_clip_val": 5.0,
            "log_every_n_steps": 1,
            "use_distributed_sampler": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": True,
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture()
def tiny_config(tmp_path: Path, clip_root: Path) -> Path:
    return write_config(tmp_path / "tiny.yaml", clip_root, tmp_path.parent / "frame_cache")
