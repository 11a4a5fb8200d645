"""benchmarks/demo_report.py reads each stage's own output files; perception.report only renders what it is given."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def run_report(demo: Path) -> subprocess.CompletedProcess:
    """``python benchmarks/demo_report.py DEMO`` as the Makefile runs it."""
    command = [sys.executable, str(ROOT / "benchmarks/demo_report.py"), str(demo)]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)


def test_demo_report_reads_every_stage(tmp_path):
    demo = tmp_path / "demo"
    per_class = {"car": {"num_gt": 10, "precision@2m": 0.8, "recall@2m": 0.5}}
    bev = {"mAP": 0.25, "NDS": 0.5, "mAVE": 1.25, "per_class": per_class}
    _write(demo / "eval/pseudo_labels.json", {"overall": {"bev": bev, "det2d": {"AP50": 0.75}}})
    car = {"car": {"num_gt": 10, "ap": {"2.0": 0.125}}}
    for name, value in (("labelled_only", 0.1), ("labelled_plus_pseudo", 0.2), ("oracle", 0.25)):
        _write(demo / f"eval/student_{name}.json", {"bev_detection": {"mAP": value, "NDS": 0.5, "per_class": car}})
    (demo / "teacher.txt").write_text("teacher: shipped.pt (sha256 0123), not trained in this run\n")
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
    done = run_report(demo)
    assert done.returncode == 0, done.stderr
    report = (demo / "REPORT.md").read_text()
    for line in [
        "| viewers | Rerun / Foxglove recordings (viewers/) | clip_0000.rrd |",
        f"- `viewers/clip_0000.rrd` (0.0 MB): `rerun {(demo / 'viewers/clip_0000.rrd').as_posix()}`",
        "| teacher | offline teacher | teacher: shipped.pt (sha256 0123), not trained in this run |",
        "| pseudo-labels | BEV mAP / NDS / mAVE vs U's ground truth (within 25 m) | 0.250 / 0.500 / 1.25 |",
        "| pseudo-labels | car: precision / recall at 2 m | 0.800 / 0.500 |",
        "| pseudo-labels | 2D AP50 (projected into the cameras) | 0.750 |",
        "| (B) student on L + U pseudo-labels | BEV mAP / NDS (test split) | 0.200 / 0.500 |",
        "| data engine | B / C: pseudo-labels vs ground truth, BEV mAP (target >= 0.90) | 0.800 |",
        "| data engine | share of the oracle's gain recovered, (B - A) / (C - A) | 0.667 |",
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
    assert values[("data engine", "B / C: pseudo-labels vs ground truth, BEV mAP (target >= 0.90)")] == 0.8
    engine = summary["data_engine"]
    assert engine["students"]["oracle"]["mAP"] == 0.25 and engine["pseudo_labels"]["mAP"] == 0.25
    assert abs(engine["recovered_gain"] - (0.2 - 0.1) / (0.25 - 0.1)) < 1e-9
    assert (demo / "report" / "data_engine.png").is_file()
    assert values[("export", "ONNX Runtime vs PyTorch parity passed")] is True
    assert "student.int8 p50 / p99 ms, 20 Hz budget" in done.stdout


def test_demo_report_flags_ratios_of_students_that_have_not_separated(tmp_path):
    """C barely above A (unconverged students): B / C and the recovered share are shown with the reason they mean
    nothing, and kept in summary.json."""
    for name, value in (("labelled_only", 0.114), ("labelled_plus_pseudo", 0.099), ("oracle", 0.109)):
        _write(tmp_path / f"eval/student_{name}.json", {"bev_detection": {"mAP": value, "NDS": 0.1, "per_class": {}}})
    done = run_report(tmp_path)
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "REPORT.md").read_text()
    assert "| 0.908 (not meaningful: C - A = -0.005 mAP; the students have not separated" in report
    assert "| 3.000 (not meaningful: C - A = -0.005 mAP" in report
    engine = json.loads((tmp_path / "summary.json").read_text())["data_engine"]
    assert abs(engine["oracle_gain"] + 0.005) < 1e-9 and abs(engine["b_over_c"] - 0.099 / 0.109) < 1e-9


def test_demo_report_of_an_empty_run_says_not_available(tmp_path):
    done = run_report(tmp_path)
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "REPORT.md").read_text()
    assert "| data engine | share of the oracle's gain recovered, (B - A) / (C - A) | n/a |" in report
    assert "| runtime | deadline misses | n/a |" in report


def test_core_report_knows_no_tool():
    source = (ROOT / "perception/report.py").read_text()
    for key in ("autolabel", "deploy", "parity", "bench", "student", "pseudo", "runs/demo", 'summary.json"]'):
        assert key not in source, key


def test_demo_report_says_when_the_test_split_is_too_small_for_the_ratios(tmp_path):
    """Separated students on a 6-clip test split: B / C is shown with the warning that 6 clips cannot hold it."""
    for name, value in (("labelled_only", 0.12), ("labelled_plus_pseudo", 0.163), ("oracle", 0.164)):
        _write(tmp_path / f"eval/student_{name}.json", {"bev_detection": {"mAP": value, "NDS": 0.1, "per_class": {}}})
    for index in range(6):
        _write(tmp_path / f"data/test/clip_{index:04d}/rig.yaml", {})
    done = run_report(tmp_path)
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "REPORT.md").read_text()
    assert "| 0.994 (on 6 test clips, too few to hold this ratio" in report
    assert "| (C) student on L + U ground truth | BEV mAP / NDS (test split, 6 clips) | 0.164 / 0.100 |" in report


def test_demo_report_names_the_clips_each_figure_is_measured_on(tmp_path):
    """24 test clips hold B / C (no warning); the INT8 check and the robustness table ran on fewer and say so."""
    for name, value in (("labelled_only", 0.12), ("labelled_plus_pseudo", 0.163), ("oracle", 0.164)):
        _write(tmp_path / f"eval/student_{name}.json", {"bev_detection": {"mAP": value, "NDS": 0.1, "per_class": {}}})
    for index in range(24):
        _write(tmp_path / f"data/test/clip_{index:04d}/rig.yaml", {})
    first = [f"data/test/clip_{index:04d}" for index in range(6)]
    _write(
        tmp_path / "deploy/student.int8.accuracy.json",
        {"primary_metric": "bev_map", "retained": 0.95, "eval_clips": first},
    )
    _write(tmp_path / "robustness/robustness.json", {"clips": 6, "frames": 60, "clean": {"NDS": 0.25}, "mRR": 0.8})
    done = run_report(tmp_path)
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "REPORT.md").read_text()
    assert "| data engine | B / C: pseudo-labels vs ground truth, BEV mAP (target >= 0.90) | 0.994 |" in report
    assert "| (B) student on L + U pseudo-labels | BEV mAP / NDS (test split, 24 clips) | 0.163 / 0.100 |" in report
    assert "| INT8 | accuracy retained (bev_map, 6 test clips) | 0.950 |" in report
    assert "| robustness | clean NDS (state carried through each clip; 6 test clips, 60 frames) | 0.250 |" in report
    assert "not meaningful" not in report
