"""benchmarks/diagnose_missed_objects.py adds exactly the ground-truth boxes the pseudo-labels miss."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from clip_factory import make_clip

from perception.clip import DriveClip
from perception.labels import ClipLabels, FrameLabels, make_provenance

ROOT = Path(__file__).resolve().parents[2]


def test_missed_ground_truth_is_added_as_objects_or_ignore_regions(tmp_path: Path) -> None:
    clips = make_clip(tmp_path / "U" / "clip_0000", frames=2).parent
    truth = DriveClip.open(clips / "clip_0000").labels
    frames = []
    for frame in truth.frames:  # the teacher finds boxes 0 and 1 (0.5 m off), misses 2..4, and adds a ghost
        boxes = frame.boxes3d[[0, 1, 0]]
        boxes.center[:2] += 0.5
        boxes.center[2, :2] += 30.0
        boxes.score[:] = [0.9, 0.6, 0.4]
        frames.append(FrameLabels(boxes3d=boxes))
    (tmp_path / "pseudo" / "clip_0000").mkdir(parents=True)
    ClipLabels(truth.classes, frames, make_provenance("autolabel", "test")).save(
        tmp_path / "pseudo" / "clip_0000" / "labels.json"
    )
    for mode, score in (("object", 1.0), ("ignore", 0.0)):
        out = tmp_path / mode
        result = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks/diagnose_missed_objects.py"), str(tmp_path / "pseudo"),
             str(clips), str(out), "--as", mode],
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "added 6 of 10 ground-truth boxes" in result.stdout
        labels = ClipLabels.load(out / "clip_0000" / "labels.json")
        for frame, gt in zip(labels.frames, truth.frames):
            boxes = frame.boxes3d
            assert len(boxes) == 6 and np.allclose(boxes.score, [0.9, 0.6, 0.4, score, score, score])
            np.testing.assert_array_equal(boxes.center[3:], gt.boxes3d.center[2:5])  # the three it missed
    missing = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/diagnose_missed_objects.py"), str(tmp_path / "pseudo"),
         str(tmp_path), str(tmp_path / "x"), "--as", "object"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode == 2 and "clip_0000" in missing.stderr and "Traceback" not in missing.stderr
