"""A run killed with SIGKILL mid-way and rerun gives byte-identical outputs to an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from autolabel_fakes import write_blob_video

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file's bytes; the absolute dataset path in dataset/data.yaml (ultralytics needs it) made relative."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes().replace(str(root.resolve()).encode(), b"ROOT")
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _command(inputs: Path, out: Path, config: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "autolabel",
        str(inputs),
        "--out",
        str(out),
        "-c",
        str(config),
        "--batch",
        "4",
        "--no-progress",
    ]


def test_sigkill_then_rerun_equals_uninterrupted(tmp_path: Path) -> None:
    inputs = tmp_path / "videos"
    for k in range(3):
        write_blob_video(inputs / f"run_{k}.mp4", frames=32, offset=5 * k)
    config = tmp_path / "job.yaml"
    config.write_text("teacher:\n  class_path: autolabel_fakes.BlobTeacher\n  init_args: {delay_s: 0.08}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)]), "SOURCE_DATE_EPOCH": "1700000000"}

    reference = tmp_path / "reference"
    subprocess.run(_command(inputs, reference, config), env=env, check=True, capture_output=True, timeout=120)

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        _command(inputs, killed, config), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while not list(killed.glob("*/done")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    finished = sorted(p.parent.name for p in killed.glob("*/done"))
    assert 1 <= len(finished) < 3, f"expected the kill mid-run, finished: {finished}"
    first_done = killed / finished[0] / "done"
    first_mtime = first_done.stat().st_mtime_ns

    subprocess.run(_command(inputs, killed, config), env=env, check=True, capture_output=True, timeout=120)
    assert first_done.stat().st_mtime_ns == first_mtime  # finished clip skipped, not redone
    expected, found = _tree_bytes(reference), _tree_bytes(killed)
    assert sorted(found) == sorted(expected)  # no leftover temp folders, nothing missing
    different = [name for name in expected if expected[name] != found[name]]
    assert not different, different
