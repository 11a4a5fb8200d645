"""``autolabel calibrate``: F1-best per-class score floors (3D) or the track-score threshold (2D) from a labelled split,
written as a job-config fragment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from autolabel.cli import build_parser, main
from autolabel.jobconfig import parse_job_args
from perception.labels import DRIVING_CLASSES, Boxes2D, Boxes3D, ClipLabels, FrameLabels, make_provenance

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


# ---------------------------------------------------------------------------------------- 2D: the track-score threshold
def _track(frames: int, x: float, track_id: int, score: float) -> list[Boxes2D]:
    """One box per frame walking right from ``x``, every box carrying the track's score (``output_score: track``)."""
    return [
        Boxes2D(
            xyxy=np.array([[x + 2.0 * f, 50.0, x + 2.0 * f + 30.0, 130.0]]),
            class_id=np.array([PEDESTRIAN]),
            score=np.array([score], np.float32),
            track_id=np.array([track_id]),
        )
        for f in range(frames)
    ]


def _write_2d(root: Path, tracks: list[list[Boxes2D]], *, refine: str | None) -> None:
    """A label folder (``refine`` = its config.yaml's refine section, None: no config.yaml) or ground truth."""
    frames = [FrameLabels(boxes2d={"cam": Boxes2D.concat([t[f] for t in tracks])}) for f in range(len(tracks[0]))]
    (root / "clip_0000").mkdir(parents=True)
    ClipLabels(list(DRIVING_CLASSES), frames, make_provenance("autolabel", "test")).save(root / "clip_0000/labels.json")
    if refine is not None:
        (root / "clip_0000/done").write_text("{}")
        (root / "config.yaml").write_text(f"teacher: null\nrefine: {refine}\n")


def test_track_score_threshold_drops_a_persistent_false_track(tmp_path: Path, capsys) -> None:
    """Two people tracked at score 0.8 and a clutter track at 0.6 that matches nothing: the best mean of HOTA, IDF1
    and MOTA drops the clutter and keeps the people, so the threshold lands in (0.6, 0.8]; the fragment is a valid
    second job config. With the clutter a real person instead, nothing gains from a threshold: the lowest (0) wins."""
    people = [_track(20, 0.0, 1, 0.8), _track(20, 200.0, 2, 0.8)]
    _write_2d(tmp_path / "gt", people, refine=None)
    _write_2d(tmp_path / "labels", [*people, _track(20, 400.0, 3, 0.6)], refine="{output_score: track}")
    out = tmp_path / "track.yaml"
    command = ["calibrate", str(tmp_path / "labels"), "--gt", str(tmp_path / "gt"), "--out", str(out), "--track-score"]
    assert main(command) == 0
    chosen = yaml.safe_load(out.read_text())["refine"]["min_track_score"]
    assert 0.6 < chosen <= 0.8
    printed = capsys.readouterr().out
    assert "min_track_score 0.00  HOTA" in printed and f"refine.min_track_score {chosen:.2f} written" in printed
    job = tmp_path / "job.yaml"
    job.write_text("teacher: null\nclasses: [car, truck, bus, pedestrian, cyclist, traffic_cone]\n")
    args = parse_job_args(build_parser(), [str(tmp_path), "--out", str(tmp_path / "o"), "-c", str(job), "-c", str(out)])
    assert args.refine.min_track_score == chosen and args.refine.output_score == "box"  # the rest stays the default

    _write_2d(tmp_path / "gt3", [*people, _track(20, 400.0, 3, 0.6)], refine=None)
    assert main([*command[:3], str(tmp_path / "gt3"), *command[4:]]) == 0
    assert yaml.safe_load(out.read_text())["refine"]["min_track_score"] == 0.0


def test_track_score_calibration_refuses_labels_with_box_scores(tmp_path: Path, capsys) -> None:
    """Labels written with per-box scores (the default) cannot show what min_track_score keeps: bad input (exit 2),
    naming the file and the field; a folder without the job's config.yaml likewise."""
    people = [_track(10, 0.0, 1, 0.8)]
    _write_2d(tmp_path / "gt", people, refine=None)
    _write_2d(tmp_path / "labels", people, refine="{output_score: box}")
    command = ["calibrate", str(tmp_path / "labels"), "--gt", str(tmp_path / "gt"), "--out", str(tmp_path / "t.yaml")]
    assert main([*command, "--track-score"]) == 2
    err = capsys.readouterr().err
    assert "config.yaml: refine.output_score: expected 'track'" in err and "found 'box'" in err
    (tmp_path / "labels/config.yaml").unlink()
    assert main([*command, "--track-score"]) == 2
    assert "config.yaml: not found" in capsys.readouterr().err
    assert not (tmp_path / "t.yaml").exists()
