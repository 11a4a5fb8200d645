"""The shipped configs parse (``--print_config``); YAML-only edits switch tasks, cameras and T (cam2d path)."""

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
