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


def test_raw_teacher_output_counts_each_object_under_its_best_scored_box(tmp_path: Path) -> None:
    """--teacher: the raw output (here a cache standing in for the teacher) holds two boxes on the pedestrian, a
    pedestrian box 0.3 m off at score 0.3 and a cyclist box 1 m off at 0.6: the object counts as a cyclist (the
    closest-first pairing of labels would say pedestrian); above --min-score 0.7 it is missed."""
    import numpy as np

    from perception.labels import Boxes3D

    clips = make_clip(tmp_path / "U" / "clip_0000", frames=2).parent
    frames = []
    for frame in DriveClip.open(clips / "clip_0000").labels.frames:
        boxes = frame.boxes3d[[2, 2]]  # the pedestrian at 9 m, twice
        boxes.center[:, 0] += [0.3, 1.0]
        boxes.class_id[:] = [3, 4]
        boxes.score[:] = [0.3, 0.6]
        frames.append(boxes)
    cache = tmp_path / "cache" / "U"
    cache.mkdir(parents=True)
    np.savez(cache / "clip_0000.bidirectional.npz",
             **{f"{i}_{k}": getattr(b, k) for i, b in enumerate(frames) for k in Boxes3D._shapes})  # fmt: skip
    command = [sys.executable, SCRIPT, "--teacher", "unused.pt", str(clips), "--cache", str(tmp_path / "cache")]
    raw = subprocess.run(command, capture_output=True, text=True)
    assert raw.returncode == 0, raw.stderr
    assert "| pedestrian | 0 | 0 | 0 | 0 | 2 | 0 | 0 |" in raw.stdout
    assert "| car | 0 | 0 | 0 | 0 | 0 | 0 | 6 |" in raw.stdout  # three cars in range per frame, no box near them
    strict = subprocess.run([*command, "--min-score", "0.7"], capture_output=True, text=True)
    assert strict.returncode == 0, strict.stderr
    assert "| pedestrian | 0 | 0 | 0 | 0 | 0 | 0 | 2 |" in strict.stdout
    wrong = subprocess.run([sys.executable, SCRIPT, str(clips), "--teacher", "a.pt", str(clips)],
                           capture_output=True, text=True)  # fmt: skip
    assert wrong.returncode == 2 and "--teacher TEACHER CLIPS" in wrong.stderr


def test_pairing_by_score_takes_the_best_scored_box_and_closest_takes_the_nearest() -> None:
    import numpy as np

    from benchmarks.diagnose_class_confusion import pair_regardless_of_class
    from perception.labels import Boxes3D

    def boxes(xs, scores, classes) -> Boxes3D:
        n = len(xs)
        centre = np.zeros((n, 3))
        centre[:, 0] = xs
        return Boxes3D(centre, np.ones((n, 3)), np.zeros(n), np.zeros((n, 2)), np.asarray(classes),
                       score=np.asarray(scores, np.float32))  # fmt: skip

    truth = boxes([10.0, 13.0], [1.0, 1.0], [5, 3])  # a cone at 10 m, a pedestrian at 13 m
    found = boxes([10.2, 10.8, 30.0], [0.2, 0.9, 0.95], [5, 4, 0])  # cone box, a cyclist box by it, a far car
    assert pair_regardless_of_class(found, truth, 25.0) == ([(0, 0)], [1])  # the nearest box names the cone
    assert pair_regardless_of_class(found, truth, 25.0, by_score=True) == ([(0, 1)], [1])  # the best-scored
