"""benchmarks/diagnose_class_confusion.py counts each ground-truth object under the class its label gives it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from clip_factory import make_clip

from perception.clip import DriveClip
from perception.labels import ClipLabels, FrameLabels, make_provenance

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "benchmarks/diagnose_class_confusion.py")


def test_confusion_pairs_labels_with_ground_truth_regardless_of_class(tmp_path: Path) -> None:
    clips = make_clip(tmp_path / "U" / "clip_0000", frames=2).parent
    truth = DriveClip.open(clips / "clip_0000").labels  # car 14 m, car 20 m, pedestrian 9 m, car 9 m, truck 12 m
    frames = []
    for frame in truth.frames:  # the car found 0.5 m off, the pedestrian called a cyclist, the truck a car, a ghost
        boxes = frame.boxes3d[[0, 2, 4, 0]]
        boxes.center[:, :2] += 0.5
        boxes.center[3, :2] += 30.0
        boxes.class_id[:] = [0, 4, 0, 3]
        boxes.size[1] = [1.7, 0.6, 1.7]
        boxes.velocity[:] = [[0.3, 0.4], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]  # the still car labelled at 0.5 m/s
        frames.append(FrameLabels(boxes3d=boxes))
    (tmp_path / "pseudo" / "clip_0000").mkdir(parents=True)
    ClipLabels(truth.classes, frames, make_provenance("autolabel", "test")).save(
        tmp_path / "pseudo" / "clip_0000" / "labels.json"
    )
    out = tmp_path / "confusion.md"
    result = subprocess.run([sys.executable, SCRIPT, str(tmp_path / "pseudo"), str(clips), "--markdown", str(out)],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    matrix = out.read_text().split("\n\n")[0].splitlines()  # the first table
    rows = {line.split(" | ")[0].strip("| "): line for line in matrix}
    # columns: car truck bus pedestrian cyclist traffic_cone missed; two frames each
    assert rows["car"] == "| car | 2 | 0 | 0 | 0 | 0 | 0 | 4 |"  # found once per frame, two cars missed
    assert rows["truck"] == "| truck | 2 | 0 | 0 | 0 | 0 | 0 | 0 |"
    assert rows["pedestrian"] == "| pedestrian | 0 | 0 | 0 | 0 | 2 | 0 | 0 |"
    assert "| car | still | 2 | 0.50 | 0.50 / 0.50 |" in result.stdout  # right-class pairs only: not the truck
    assert "| pedestrian | still" not in result.stdout  # labelled as a cyclist: no velocity row
    assert result.stdout == out.read_text()
    near = subprocess.run([sys.executable, SCRIPT, str(tmp_path / "pseudo"), str(clips), "--max-range", "10"],
                          capture_output=True, text=True)  # fmt: skip
    assert near.returncode == 0, near.stderr
    assert "| car | 0 | 0 | 0 | 0 | 0 | 0 | 2 |" in near.stdout  # only the car at 9.5 m is in range, missed
    assert "| pedestrian | 0 | 0 | 0 | 0 | 2 | 0 | 0 |" in near.stdout
    missing = subprocess.run([sys.executable, SCRIPT, str(tmp_path / "pseudo"), str(tmp_path)],
                             capture_output=True, text=True)  # fmt: skip
    assert missing.returncode == 2 and "clip_0000" in missing.stderr and "Traceback" not in missing.stderr
