"""perception fit/validate/predict through the CLI on tiny clips; resume exactness; exported checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from perception.labels import ClipLabels
from perception.training.checkpoint import load_model_checkpoint
from perception.training.cli import run_cli


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def test_fit_validate_predict(tiny_config: Path, tmp_path: Path) -> None:
    root = tmp_path / "run"
    code = run_cli(["fit", "-c", str(tiny_config), "--trainer.max_steps=4", f"--trainer.default_root_dir={root}"])
    assert code == 0
    log_dir = root / "logs" / "version_0"
    saved = yaml.safe_load((log_dir / "config.yaml").read_text())
    assert saved["model"]["model_name"] == "bev_tiny" and saved["trainer"]["max_steps"] == 4
    assert (root / "checkpoints" / "last.ckpt").is_file()
    assert (log_dir / "model.pt").is_file()
    metrics = sorted((log_dir / "metrics").glob("val_*.json"))
    assert metrics, "validation metrics JSON missing"
    report = json.loads(metrics[-1].read_text())
    assert {"bev_detection", "segmentation_iou", "detection2d"} <= set(report)
    header = (log_dir / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "val/AP_car@2m" in header and "val/IoU_drivable" in header and "train/loss" in header
    assert list((log_dir / "pictures").glob("val_epoch*.png"))
    # a plain deploy checkpoint, readable with weights_only=True
    _model, meta = load_model_checkpoint(log_dir / "model.pt")
    assert meta["cameras"] == ["front", "left"] and meta["image_size"] == [64, 96]
    assert meta["rig"]["cameras"][0]["name"] == "front"
    assert meta["classes"]["segmentation"] == ["drivable", "lane"]
    # validate and predict from the Lightning checkpoint
    ckpt = str(root / "checkpoints" / "last.ckpt")
    assert (
        run_cli(["validate", "-c", str(tiny_config), f"--ckpt_path={ckpt}", f"--trainer.default_root_dir={root}"]) == 0
    )
    out = tmp_path / "predicted"
    assert (
        run_cli(
            [
                "predict",
                "-c",
                str(tiny_config),
                f"--ckpt_path={ckpt}",
                f"--trainer.default_root_dir={root}",
                f"--predict_writer.output_dir={out}",
            ]
        )
        == 0
    )
    labels = ClipLabels.load(out / "clip_val" / "labels.json", camera_names=["front", "left"])
    assert labels.provenance["source"] == "model" and len(labels.frames) == 3
    assert labels.bev is not None and labels.bev.data.shape == (3, 2, 24, 24)
    assert set(labels.frames[0].boxes2d) == {"front", "left"}


def test_resume_continues_exactly(tiny_config: Path, tmp_path: Path) -> None:
    common = [
        "-c",
        str(tiny_config),
        "--model.schedule_steps=4",
        "--data.val=null",
        "--trainer.limit_val_batches=0",
        "--model.export_on_fit_end=false",
    ]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run_cli(["fit", *common, "--trainer.max_steps=4", f"--trainer.default_root_dir={straight}"]) == 0
    assert run_cli(["fit", *common, "--trainer.max_steps=2", f"--trainer.default_root_dir={resumed}"]) == 0
    half = _state(resumed / "checkpoints" / "last.ckpt")
    assert (
        run_cli(["fit", *common, "--trainer.max_steps=4", f"--trainer.default_root_dir={resumed}", "--ckpt_path=last"])
        == 0
    )
    a, b = _state(straight / "checkpoints" / "last.ckpt"), _state(resumed / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    assert any(not torch.equal(half[k], b[k]) for k in b if k.startswith("model."))  # it really trained on


X86_WITHOUT_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni\n"


def test_native_bf16_is_read_off_the_cpu_flags() -> None:
    from perception.training.cli import cpu_has_native_bf16

    assert cpu_has_native_bf16(X86_WITHOUT_BF16) is False
    assert cpu_has_native_bf16(X86_WITHOUT_BF16.replace("avx512_vnni", "avx512_vnni avx512_bf16")) is True
    assert cpu_has_native_bf16("flags\t: avx2 amx_tile amx_bf16\n") is True
    assert cpu_has_native_bf16("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n") is True  # Arm (aarch64)
    assert cpu_has_native_bf16("processor\t: 0\nFeatures\t: fp asimd\n") is False
    assert cpu_has_native_bf16("") is None  # nothing to read: leave the precision as configured


def test_mixed_bf16_falls_back_to_float32_only_on_a_cpu_without_bf16(monkeypatch) -> None:
    from perception.training.cli import KEEP_BF16_ENV, cpu_precision

    monkeypatch.delenv(KEEP_BF16_ENV, raising=False)
    precision, why = cpu_precision("bf16-mixed", "cpu", X86_WITHOUT_BF16)
    assert precision == "32-true" and "no bf16 instructions" in why and KEEP_BF16_ENV in why
    with_bf16 = X86_WITHOUT_BF16.replace("avx512f", "avx512f avx512_bf16")
    assert cpu_precision("bf16-mixed", "cpu", with_bf16) == ("bf16-mixed", None)
    assert cpu_precision("32-true", "cpu", X86_WITHOUT_BF16) == ("32-true", None)
    assert cpu_precision("bf16-mixed", "gpu", X86_WITHOUT_BF16) == ("bf16-mixed", None)
    monkeypatch.setenv(KEEP_BF16_ENV, "keep")
    assert cpu_precision("bf16-mixed", "cpu", X86_WITHOUT_BF16) == ("bf16-mixed", None)


def test_fit_on_a_cpu_without_bf16_trains_in_float32_and_records_it(
    tiny_config: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    import perception.training.cli as cli

    monkeypatch.delenv(cli.KEEP_BF16_ENV, raising=False)
    monkeypatch.setattr(cli, "cpu_has_native_bf16", lambda cpuinfo=None: False)
    root = tmp_path / "run"
    args = ["fit", "-c", str(tiny_config), "--trainer.precision=bf16-mixed", "--trainer.max_steps=1"]
    assert run_cli([*args, "--trainer.limit_val_batches=0", f"--trainer.default_root_dir={root}"]) == 0
    assert "trainer.precision bf16-mixed -> 32-true" in capsys.readouterr().err
    saved = yaml.safe_load((root / "logs" / "version_0" / "config.yaml").read_text())
    assert saved["trainer"]["precision"] == "32-true"
