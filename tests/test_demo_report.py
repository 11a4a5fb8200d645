"""benchmarks/demo_report.py reads each stage's own output files; perception.report only renders what it is given."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_demo_report_reads_every_stage(tmp_path):
    demo = tmp_path / "demo"
    _write(demo / "eval/pseudo_labels.json", {"overall": {"bev": {"mAP": 0.25, "NDS": 0.5}, "det2d": {"AP50": 0.75}}})
    car = {"car": {"ap": {"2.0": 0.125}}}
    _write(demo / "eval/student_pseudo.json", {"bev_detection": {"mAP": 0.2, "per_class": car}})
    _write(demo / "eval/student_gt.json", {"bev_detection": {"mAP": 0.4, "per_class": car}})
    _write(demo / "deploy/parity.json", {"passed": True, "outputs": [{"max_abs": 1e-5}, {"max_abs": 3e-5}]})
    _write(
        demo / "deploy/student.int8.accuracy.json",
        {"primary_metric": "bev_map", "retained": 0.995, "meets_mlperf_99": True},
    )
    _write(
        demo / "bench/bench.json",
        {"table": [{"variant": "student.int8", "p50_ms": 18.1, "p99_ms": 21.8, "budget": "PASS"}]},
    )
    _write(
        demo / "run/summary.json",
        {
            "frames_processed": 30,
            "drop_percent": 0.0,
            "deadline_misses": 0,
            "stages_ms": {"sensor_to_output": {"p50": 23.7, "p99": 35.5}},
        },
    )
    (demo / "viewers").mkdir()
    (demo / "viewers/clip_0000.rrd").write_bytes(b"\0" * 1000)
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/demo_report.py"), str(demo)], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    report = (demo / "REPORT.md").read_text()
    for line in [
        "| viewers | Rerun / Foxglove recordings (viewers/) | clip_0000.rrd |",
        f"- `viewers/clip_0000.rrd` (0.0 MB): `rerun {(demo / 'viewers/clip_0000.rrd').as_posix()}`",
        "| pseudo-labels | BEV mAP vs ground truth (unlabelled split) | 0.250 |",
        "| pseudo-labels | 2D AP50 (projected into the cameras) | 0.750 |",
        "| student on pseudo-labels | car AP @ 2 m | 0.125 |",
        "| students | pseudo / ground-truth BEV mAP (target >= 0.90) | 0.500 |",
        "| export | largest max-abs error over outputs | 0.000030 |",
        "| INT8 | accuracy retained (bev_map) | 0.995 |",
        "| latency | student.int8 p50 / p99 ms, 20 Hz budget | 18.1 / 21.8, PASS |",
        "| runtime | frames processed / dropped (%) | 30 / 0.0 |",
        "| runtime | sensor-to-output p50 / p99 ms | 23.7 / 35.5 |",
    ]:
        assert line in report, line
    assert "### Training curves\n\n(not produced in this run)" in report  # no training logs in this folder
    summary = json.loads((demo / "summary.json").read_text())
    values = {(row["section"], row["measure"]): row["value"] for row in summary["rows"]}
    assert values[("students", "pseudo / ground-truth BEV mAP (target >= 0.90)")] == 0.5
    assert values[("export", "ONNX Runtime vs PyTorch parity passed")] is True
    assert "student.int8 p50 / p99 ms, 20 Hz budget" in done.stdout


def test_demo_report_of_an_empty_run_says_not_available(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/demo_report.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "REPORT.md").read_text()
    assert "| pseudo-labels | BEV NDS | n/a |" in report and "| runtime | deadline misses | n/a |" in report


def test_core_report_knows_no_tool():
    source = (ROOT / "perception/report.py").read_text()
    for key in ("autolabel", "deploy", "parity", "bench", "student", "pseudo", "runs/demo", 'summary.json"]'):
        assert key not in source, key
