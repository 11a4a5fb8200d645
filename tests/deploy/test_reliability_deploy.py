"""deploy on bad or unusual inputs: ``deploy run`` on broken clips and options (the tiny exported model), and
``deploy bench`` on dynamic-shape models: spatial sizes never guessed, the batch never set by --default-dim, unknown
--dim names refused, the exact input shapes in every report, --inputs honoured."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

RELIABILITY = Path(__file__).resolve().parents[1] / "reliability"
if str(RELIABILITY) not in sys.path:
    sys.path.insert(0, str(RELIABILITY))

from deploy_cases import run_cases  # noqa: E402
from harness import run_case  # noqa: E402
from workspace import write_onnx  # noqa: E402

from deploy.cli import main  # noqa: E402

RUN_CASES = [case.name for case in run_cases(Path("model.onnx"), Path("clip"))]
QUICK = ["--min-runs", "2", "--max-runs", "2", "--warmup-runs", "0", "--min-duration-s", "0", "--warmup-s", "0",
         "--throughput-s", "0", "--profile-runs", "0", "--no-plot"]  # fmt: skip


@pytest.mark.parametrize("name", RUN_CASES)
def test_deploy_run_on_broken_clips_and_options(name, exported, tmp_path):
    model, _, clip = exported
    case = next(case for case in run_cases(model, clip) if case.name == name)
    verdict, reason, outcome = run_case(case, tmp_path / "case", templates=None)
    assert verdict == "handled", f"{name}: {verdict}: {reason}\n{outcome.output[-2000:]}"


@pytest.fixture()
def dynamic_model(tmp_path) -> Path:
    return write_onnx(tmp_path / "dynamic.onnx", ["batch", 3, "height", "width"])


def _report(out: Path) -> dict:
    return json.loads((out / "bench.json").read_text())


def _shapes(out: Path) -> dict:
    (row,) = [r for r in _report(out)["results"] if r["label"] == "dynamic"]
    return row["input_shapes"]


def test_dynamic_spatial_dims_are_never_guessed(dynamic_model, tmp_path, capsys):
    assert main(["bench", str(dynamic_model), "--out", str(tmp_path / "a"), *QUICK]) == 2
    err = capsys.readouterr().err
    assert "axis 2 is symbolic ('height')" in err and "--dim height=SIZE" in err and "Traceback" not in err
    assert not (tmp_path / "a" / "bench.json").exists()


def test_unknown_dim_name_is_refused(dynamic_model, tmp_path, capsys):
    argv = ["bench", str(dynamic_model), "--out", str(tmp_path / "a"), "--dim", "heigth=32", "--dim", "width=32"]
    assert main([*argv, *QUICK]) == 2
    err = capsys.readouterr().err
    assert "--dim heigth=32" in err and "['batch', 'height', 'width']" in err


def test_shapes_used_are_reported_and_default_dim_leaves_the_batch(dynamic_model, tmp_path, capsys):
    out = tmp_path / "a"
    assert (
        main(["bench", str(dynamic_model), "--out", str(out), "--dim", "height=32", "--default-dim", "40", *QUICK]) == 0
    )
    assert _shapes(out) == {"image": [1, 3, 32, 40]}  # batch stays 1 (--batch-size), width from --default-dim
    assert "image [1, 3, 32, 40]" in (out / "bench.md").read_text()
    assert "dynamic inputs: image [1, 3, 32, 40] (synthetic, seeded)" in capsys.readouterr().out
    out_b = tmp_path / "b"
    argv = ["bench", str(dynamic_model), "--out", str(out_b), "--dim", "height=16", "--dim", "width=24"]
    assert main([*argv, "--batch-size", "4", *QUICK]) == 0
    assert _shapes(out_b) == {"image": [4, 3, 16, 24]}


def test_inputs_npz_is_honoured_and_reported(dynamic_model, tmp_path):
    npz = tmp_path / "x.npz"
    np.savez(npz, image=np.zeros((2, 3, 20, 28), np.float32))
    out = tmp_path / "a"
    assert main(["bench", str(dynamic_model), "--out", str(out), "--inputs", str(npz), *QUICK]) == 0
    (row,) = _report(out)["results"]
    assert row["input_shapes"] == {"image": [2, 3, 20, 28]} and row["input_source"] == "given"
    assert main(["bench", str(dynamic_model), "--out", str(tmp_path / "b"), "--inputs", str(npz), "--dim", "height=8",
                 *QUICK]) == 2  # fmt: skip


class Payload:
    """Any class: pickled into a checkpoint, loading it unsafely would import and run code."""


def test_checkpoint_refusal_does_not_suggest_unsafe_loading(tmp_path, capsys):
    torch = pytest.importorskip("torch")

    checkpoint = tmp_path / "evil.pt"
    torch.save({"format": "x", "model": Payload()}, checkpoint)  # a pickle that would run code when loaded unsafely
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "Payload" in err and "weights_only=True" in err
    assert "weights_only=False" not in err and "\x1b[" not in err and not (tmp_path / "m.onnx").exists()
