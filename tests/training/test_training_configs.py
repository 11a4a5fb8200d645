"""The shipped configs parse (``--print_config``); YAML-only edits switch tasks, cameras and T (cam2d path); the
robot config trains on fisheye clips of the synthetic world."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from perception.training.cli import run_cli

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "perception"


@pytest.mark.parametrize("name", ["bev_tiny", "bev_base", "teacher", "cam2d"])
def test_shipped_config_parses(name: str, capsys: pytest.CaptureFixture) -> None:
    assert run_cli(["fit", "-c", str(CONFIGS / f"{name}.yaml"), "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["model_name"] == name
    assert printed["checkpoint"]["save_last"] is True


@pytest.mark.parametrize(("name", "logger"), [("wandb", "WandbLogger"), ("mlflow", "MLFlowLogger")])
def test_other_lightning_loggers_are_a_config_fragment(name: str, logger: str, capsys: pytest.CaptureFixture) -> None:
    """The README's recipe: a second -c replaces the default TensorBoard + CSV loggers (the CSV one is kept)."""
    fragment = CONFIGS / "loggers" / f"{name}.yaml"
    assert run_cli(["fit", "-c", str(CONFIGS / "bev_tiny.yaml"), "-c", str(fragment), "--print_config"]) == 0
    loggers = yaml.safe_load(capsys.readouterr().out)["trainer"]["logger"]
    assert [entry["class_path"] for entry in loggers] == [
        f"lightning.pytorch.loggers.{logger}",
        "lightning.pytorch.loggers.CSVLogger",
    ]


def test_robot_config_parses_with_its_overrides(capsys: pytest.CaptureFixture) -> None:
    assert run_cli(["fit", "-c", str(CONFIGS / "robot_tiny.yaml"), "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["model_name"] == "bev_tiny"
    assert printed["model"]["model_overrides"]["x_range"] == [-16.0, 16.0]


def test_robot_config_trains_on_fisheye_synthetic_clips(tmp_path: Path) -> None:
    """The robot config (tiny overrides) fits a few steps on rendered low fisheye clips and validates."""
    from perception.rig import Rig
    from perception.sim import generate_clip

    rig = Rig.load(CONFIGS.parent / "rigs" / "robot_quadruped_4fisheye.yaml")
    for split, seeds in (("train", (0, 1)), ("val", (2,))):
        for seed in seeds:
            generate_clip(tmp_path / split / f"clip{seed}", rig, frames=3, seed=seed, num_actors=(10, 14))
    config = yaml.safe_load((CONFIGS / "robot_tiny.yaml").read_text())
    config["model"]["model_overrides"] = {  # the preset's architecture, tiny widths
        **config["model"]["model_overrides"],
        "backbone_stages": 2,
        "image_channels": 16,
        "image_size": [64, 80],
        "resolution": 2.0,
        "num_heights": 2,
        "bev_channels": 16,
        "head_channels": 16,
    }
    for split in ("train", "val", "test", "predict"):
        config["data"][split] = str(tmp_path / ("train" if split == "train" else "val"))
    config["data"].update({"batch_size": 1, "num_workers": 0, "cache_dir": str(tmp_path / "cache")})
    config["trainer"].update({"max_time": None, "enable_progress_bar": False, "enable_model_summary": False})
    config["trainer"]["callbacks"] = []
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(config))
    root = tmp_path / "run"
    argv = ["fit", "-c", str(path), "--trainer.max_steps=2", "--trainer.limit_val_batches=2"]
    assert run_cli([*argv, "--trainer.val_check_interval=2", f"--trainer.default_root_dir={root}"]) == 0
    log_dir = root / "logs" / "version_0"
    report = yaml.safe_load(sorted((log_dir / "metrics").glob("val_*.json"))[-1].read_text())
    assert {"bev_detection", "segmentation_iou"} <= set(report)
    from perception.training.checkpoint import load_model_checkpoint

    _, meta = load_model_checkpoint(log_dir / "model.pt")
    assert meta["cameras"] == rig.names
    assert {c["distortion"]["model"] for c in meta["rig"]["cameras"]} == {"fisheye"}


def test_cam2d_single_camera_no_bev(tiny_config: Path, tmp_path: Path) -> None:
    """Only YAML changes: a 2D-only preset, one camera, T=1, another backbone size."""
    config = yaml.safe_load(tiny_config.read_text())
    config["model"]["model_name"] = "cam2d"
    config["model"]["model_overrides"] = {
        "backbone": "resnet18",
        "backbone_stages": 2,
        "image_channels": 16,
        "head_channels": 16,
        "image_size": [64, 96],
    }
    config["data"].update({"cameras": ["front"], "window": 1})
    path = tmp_path / "cam2d.yaml"
    path.write_text(yaml.safe_dump(config))
    root = tmp_path / "run"
    assert (
        run_cli(
            [
                "fit",
                "-c",
                str(path),
                "--trainer.max_steps=2",
                "--trainer.limit_val_batches=2",
                "--trainer.val_check_interval=2",
                f"--trainer.default_root_dir={root}",
            ]
        )
        == 0
    )
    metrics = sorted((root / "logs" / "version_0" / "metrics").glob("val_*.json"))
    report = yaml.safe_load(metrics[-1].read_text())
    assert set(report) == {"detection2d"}
