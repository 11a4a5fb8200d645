"""A miniature of `make demo` (tiny sizes, a few steps per stage) proves the whole loop at every commit."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_demo_recipes_do_not_ignore_errors():
    """No Makefile recipe line ignores its command's exit status (a leading '-', alone or after '@')."""
    recipes = [line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("\t")]
    assert recipes
    ignored = [line.strip() for line in recipes if line.lstrip("\t@").startswith("-")]
    assert not ignored, ignored


@pytest.mark.timeout(1200)  # above the run's own 900 s limit (the suite default is 300 s)
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_demo_chain_end_to_end(tmp_path):
    demo = tmp_path / "demo"
    bin_dir = Path(sys.executable).parent
    installed = tmp_path / "installed"  # stands in for the venv stamp: this interpreter is already set up
    installed.touch()
    settings = [
        "SMOKE=1",
        "NO_REAL=1",
        f"DEMO={demo}",
        f"BIN={bin_dir}",
        f"PYTHON={sys.executable}",
        f"STAMP={installed}",
    ]
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["make", "demo", *settings], cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # every command of every stage exited 0: make stops at the first failing command, none has its errors ignored
    # ('-' prefix, which make reports as "(ignored)"), and each stage left its marker only after all its commands
    assert "(ignored)" not in result.stdout + result.stderr
    students = ["student_labelled_only", "student_labelled_plus_pseudo", "student_oracle"]
    stages = ["data", "teacher", "autolabel", "viewers", *students, "deploy", "robustness", "report"]
    assert sorted(p.name for p in (demo / ".stages").iterdir()) == sorted(stages)

    report = (demo / "REPORT.md").read_text()
    assert "pseudo-labels" in report and "latency" in report and "runtime" in report
    for produced in [
        "teacher.pt",
        "floors.yaml",  # per-class pseudo-label floors chosen on the labelled validation split
        *(f"{name}.pt" for name in students),
        "deploy/student.onnx",
        "deploy/student.int8.onnx",
        "pseudo/clip_0000/labels.json",
        *(f"eval/{name}.json" for name in students),
        "run/summary.json",
        "bench/bench_latency.png",
        "summary.json",
        "pseudo_vs_gt.png",
        "viewers/clip_0000.rrd",
        "viewers/clip_0000.mcap",
        "pseudo/dataset/data.yaml",  # the YOLO / COCO training set of the pseudo-labels
        "pseudo/dataset/annotations/instances_train.json",
        "robustness/robustness.json",  # perception robustness
        "robustness/corruptions.png",
        "run_fault/summary.json",  # deploy run --fault
        "run_fault/quality.png",
    ]:
        assert (demo / produced).is_file(), produced
    assert "pseudo/dataset/data.yaml" in report and f"yolo train data={demo / 'pseudo/dataset/data.yaml'}" in report
    assert "viewers/clip_0000.rrd" in report and "viewers/clip_0000.mcap" in report
    assert json.loads((demo / "deploy" / "parity.json").read_text())["passed"]
    engine = json.loads((demo / "summary.json").read_text())["data_engine"]
    for name in ("labelled_only", "labelled_plus_pseudo", "oracle"):
        assert isinstance(engine["students"][name]["mAP"], float), name
    assert isinstance(engine["pseudo_labels"]["mAP"], float)
    assert "not trained in this run" in engine["teacher"]  # the shipped teacher, said so
    summary = json.loads((demo / "run" / "summary.json").read_text())
    assert summary["frames_processed"] + summary["frames_dropped"] == summary["frames_in_source"]
    robustness = json.loads((demo / "robustness" / "robustness.json").read_text())
    assert len(robustness["corruptions"]) == 8 and robustness["severities"] == [2]
    fault = json.loads((demo / "run_fault" / "summary.json").read_text())
    assert fault["faults"] == ["camera front_left dies at 0.3 s"] and fault["quality"]["windows"]
    assert "Robustness" in report and "mRR" in report

    # a rerun reuses every finished stage: make -q reports the final stage as up to date
    again = subprocess.run(["make", "-q", f"{demo}/.stages/report", *settings], cwd=ROOT, env=env)
    assert again.returncode == 0, "make says a finished demo stage would run again"
