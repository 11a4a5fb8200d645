"""``deploy`` CLI smoke tests: export (+ parity), parity, quantize (+ accuracy report), bench, run, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from deploy.cli import main
from deploy.metadata import read_metadata

QUICK_BENCH = [
    "--warmup-runs",
    "1",
    "--warmup-s",
    "0",
    "--min-runs",
    "3",
    "--min-duration-s",
    "0",
    "--throughput-s",
    "0",
    "--no-plot",
]


@pytest.fixture
def plain_onnx(tmp_path) -> Path:
    """An ONNX file without fleetvision metadata."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "plain.onnx"
    onnx.save_model(model, str(path))
    return path


def test_help_and_usage_errors(capsys):
    assert main([]) == 0
    assert main(["--help"]) == 0
    assert "export" in capsys.readouterr().out
    assert main(["run", "--help"]) == 0
    assert main(["frobnicate"]) == 2
    assert main(["run", "missing.onnx", "--clip", "nowhere"]) == 2


def test_export_command_with_parity(exported, tmp_path, capsys):
    _, checkpoint, clip = exported
    out = tmp_path / "cli.onnx"
    code = main(
        [
            "export",
            str(checkpoint),
            "--out",
            str(out),
            "--top-k",
            "10",
            "--budget",
            str(Path(__file__).resolve().parents[2] / "configs" / "deploy" / "rate_20hz.yaml"),
            "--parity-clip",
            str(clip),
            "--parity-frames",
            "2",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "PASS" in printed
    meta = read_metadata(out)
    assert meta["top_k"] == 10 and meta["latency_budget"]["name"] == "rate_20hz"


def test_parity_command(exported, tmp_path):
    model_path, checkpoint, clip = exported
    assert (
        main(
            [
                "parity",
                str(model_path),
                str(checkpoint),
                "--clip",
                str(clip),
                "--frames",
                "2",
                "--json",
                str(tmp_path / "parity.json"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "parity.json").read_text())["passed"] is True


def test_run_command_writes_jsonl_and_summary(exported, tmp_path, capsys):
    model_path, _, clip = exported
    assert main(["run", str(model_path), "--clip", str(clip), "--fast", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr()
    assert "6 frames processed" in printed.out
    assert "6/6" in printed.err and "dropped=0" in printed.err  # the progress bar (stderr)
    assert len((tmp_path / "detections.jsonl").read_text().splitlines()) == 6
    assert json.loads((tmp_path / "summary.json").read_text())["mode"] == "fast"
    assert main(["run", str(model_path), "--clip", str(clip), "--fast", "--no-progress"]) == 0
    assert "6/6" not in capsys.readouterr().err


def test_run_refuses_onnx_without_metadata_but_bench_accepts_it(plain_onnx, exported, tmp_path, capsys):
    _, _, clip = exported
    assert main(["run", str(plain_onnx), "--clip", str(clip)]) == 2
    assert "refusing" in capsys.readouterr().err
    assert main(["bench", str(plain_onnx), *QUICK_BENCH, "--out", str(tmp_path / "bench")]) == 0
    assert "plain" in (tmp_path / "bench" / "bench.md").read_text()


def test_bench_with_clip_inputs_and_eager_row(exported, tmp_path, capsys):
    model_path, checkpoint, clip = exported
    code = main(
        [
            "bench",
            str(model_path),
            "--checkpoint",
            str(checkpoint),
            "--clip",
            str(clip),
            "--clip-frames",
            "2",
            *QUICK_BENCH,
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    rows = json.loads((tmp_path / "bench.json").read_text())["table"]
    assert [row["variant"] for row in rows] == ["pytorch-eager-fp32", "model"]
    assert all(row["p50_ms"] > 0 for row in rows)


def test_quantize_command_with_accuracy_report(exported, tmp_path, capsys):
    model_path, _, clip = exported
    out = tmp_path / "model.int8.onnx"
    code = main(
        [
            "quantize",
            str(model_path),
            "--calib",
            str(clip),
            "--calib-frames",
            "3",
            "--out",
            str(out),
            "--keep-float",
            "model.detection3d_head",
            "--eval",
            str(clip),
            "--sensitivity-groups",
            "0",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    for stage in ("calibration frames", "calibrating", "evaluating model.onnx", "evaluating model.int8.onnx"):
        assert stage in printed.err, f"no progress bar {stage!r} in stderr"
    meta = read_metadata(out)
    assert meta["cameras"] == ["cam0", "cam1"]
    quant = meta["quantization"]
    assert quant["calibration_frames"] == 3 and quant["nodes_kept_float"]
    report = json.loads((tmp_path / "model.int8.accuracy.json").read_text())
    assert report["primary_metric"] != "none"
    assert report["retained"] is None or 0.0 <= report["retained"] <= 1.5
    assert "MLPerf" in (tmp_path / "model.int8.accuracy.md").read_text()
