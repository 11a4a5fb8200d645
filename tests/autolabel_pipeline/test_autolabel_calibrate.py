"""``autolabel calibrate``: F1-best per-class score floors from a labelled split, written as a job-config fragment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from autolabel.cli import build_parser, main
from autolabel.jobconfig import parse_job_args
from perception.labels import DRIVING_CLASSES, Boxes3D, ClipLabels, FrameLabels, make_provenance

CAR, PEDESTRIAN = DRIVING_CLASSES.index("car"), DRIVING_CLASSES.index("pedestrian")


def _boxes(centres, classes, scores=None) -> Boxes3D:
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    count = len(centres)
    return Boxes3D(
        center=np.column_stack([centres, np.ones(count)]),
        size=np.tile([4.0, 2.0, 1.5], (count, 1)),
        yaw=np.zeros(count),
        class_id=np.asarray(classes, dtype=np.int64),
        score=np.ones(count, np.float32) if scores is None else np.asarray(scores, np.float32),
    )


def _write(root: Path, frames: list[Boxes3D], source: str, done: bool) -> None:
    root.mkdir(parents=True)
    ClipLabels(list(DRIVING_CLASSES), [FrameLabels(b) for b in frames], make_provenance(source, "test")).save(
        root / "labels.json"
    )
    if done:
        (root / "done").write_text("{}")


def test_floors_separate_true_from_false_boxes_per_class(tmp_path: Path) -> None:
    """Cars: true boxes score 0.6-0.9, ghosts 0.1-0.4, so the floor lands between; pedestrians have too few boxes."""
    rng = np.random.default_rng(0)
    gt, pseudo = [], []
    for frame in range(30):
        truth = rng.uniform(-20, 20, (2, 2))
        ghost = rng.uniform(-20, 20, (1, 2)) + 50.0  # far from any true box: a false positive
        walker = frame < 10  # 10 pedestrian boxes: fewer than min_gt
        gt.append(
            _boxes(np.vstack([truth, np.reshape([[3.0, 3.0]] * walker, (-1, 2))]), [CAR, CAR] + [PEDESTRIAN] * walker)
        )
        found = truth + rng.normal(0, 0.3, truth.shape)
        pseudo.append(
            _boxes(
                np.vstack([found, ghost, np.reshape([[3.0, 3.2]] * walker, (-1, 2))]),
                [CAR, CAR, CAR] + [PEDESTRIAN] * walker,
                np.r_[rng.uniform(0.6, 0.9, 2), rng.uniform(0.1, 0.4), [0.2] * walker],
            )
        )
    _write(tmp_path / "gt" / "clip_0000", gt, "ground_truth", done=False)
    _write(tmp_path / "labels" / "clip_0000", pseudo, "autolabel", done=True)
    out = tmp_path / "floors.yaml"
    code = main(["calibrate", str(tmp_path / "labels"), "--gt", str(tmp_path / "gt"), "--out", str(out)])
    assert code == 0
    floors = yaml.safe_load(out.read_text())["tracking3d"]["class_min_score"]
    assert 0.4 < floors["car"] <= 0.61  # every ghost (<= 0.4) below, every true car (>= 0.6) kept
    assert floors["pedestrian"] == 0.0  # 10 ground-truth boxes < min_gt: no floor
    # the fragment is a valid second job config
    job = tmp_path / "job.yaml"
    job.write_text("teacher: null\nclasses: [car, truck, bus, pedestrian, cyclist, traffic_cone]\n")
    args = parse_job_args(build_parser(), [str(tmp_path), "--out", str(tmp_path / "o"), "-c", str(job), "-c", str(out)])
    assert args.tracking3d.class_min_score["car"] == floors["car"]
    missing = main(["calibrate", str(tmp_path / "gt"), "--gt", str(tmp_path / "gt"), "--out", str(out)])
    assert missing == 2  # no finished labels there: bad input


def test_a_floor_chosen_on_few_objects_is_not_set(tmp_path: Path, capsys) -> None:
    """30 boxes of ONE truck are enough boxes for a floor but not enough objects to trust it: the truck gets no floor
    and the fragment and the command say why; cars (three tracked objects) keep theirs; --min-objects 0 keeps the
    truck's floor."""
    truck = DRIVING_CLASSES.index("truck")
    gt, pseudo = [], []
    for frame in range(30):
        centres = [[5.0 + frame * 0.1, 0.0], [10.0, 5.0], [15.0, -5.0], [-8.0, 3.0], [30.0, 30.0], [-30.0, 30.0]]
        boxes = _boxes(centres[:4], [truck, CAR, CAR, CAR])
        boxes.track_id = np.array([7, 1, 2, 3])
        gt.append(boxes)  # a low-score ghost truck and a low-score ghost car: each class has a floor to find
        pseudo.append(_boxes(centres, [truck, CAR, CAR, CAR, truck, CAR], [0.5, 0.8, 0.7, 0.6, 0.2, 0.3]))
    _write(tmp_path / "gt" / "clip_0000", gt, "ground_truth", done=False)
    _write(tmp_path / "labels" / "clip_0000", pseudo, "autolabel", done=True)
    out = tmp_path / "floors.yaml"
    command = ["calibrate", str(tmp_path / "labels"), "--gt", str(tmp_path / "gt"), "--out", str(out)]
    assert main(command) == 0
    text = out.read_text()
    truck_line = next(line for line in text.splitlines() if line.strip().startswith("truck:"))
    car_line = next(line for line in text.splitlines() if line.strip().startswith("car:"))
    assert "no floor: 0.5000 was best" in truck_line and "on 30 boxes of 1 objects" in truck_line
    assert "on 90 boxes of 3 objects" in car_line and "no floor" not in car_line
    assert "warning: no truck floor: the best one (0.500) was chosen on 1 object(s)" in capsys.readouterr().err
    floors = yaml.safe_load(text)["tracking3d"]["class_min_score"]
    assert floors["truck"] == 0.0 and 0.3 < floors["car"] <= 0.6  # the car ghost (0.3) is below the car floor
    assert main([*command, "--min-objects", "0"]) == 0
    assert yaml.safe_load(out.read_text())["tracking3d"]["class_min_score"]["truck"] == 0.5
