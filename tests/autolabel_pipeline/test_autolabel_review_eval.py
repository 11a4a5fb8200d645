"""``autolabel review`` ranks frames by uncertainty and draws them; ``autolabel eval`` scores labels vs GT."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from autolabel_fakes import BLOB_TEACHER

from autolabel.cli import main
from autolabel.review import collect_review_items
from perception.labels import Boxes2D, ClipLabels, FrameLabels


def _write_labels(folder: Path, uncertainties: list[float]) -> None:
    folder.mkdir(parents=True)
    frames = [
        FrameLabels(boxes2d={"camera": Boxes2D(xyxy=[[1, 1, 5, 5]], track_id=[1])}, uncertainty=u)
        for u in uncertainties
    ]
    ClipLabels(["car"], frames, {"source": "autolabel"}).save(folder / "labels.json")
    (folder / "done").write_text("{}")


def test_review_orders_most_uncertain_first(tmp_path: Path) -> None:
    _write_labels(tmp_path / "a", [0.1, 0.9, 0.2, 0.3, 0.1, 0.1, 0.1, 0.1, 0.8])
    _write_labels(tmp_path / "b", [0.5, 0.05, 0.95])
    (tmp_path / "unfinished").mkdir()  # no done marker: ignored
    ClipLabels(["car"], [FrameLabels(uncertainty=1.0)], {}).save(tmp_path / "unfinished" / "labels.json")
    items = collect_review_items(tmp_path, top=4, min_separation=1)
    assert [(i["clip"], i["frame"]) for i in items] == [("b", 2), ("a", 1), ("a", 8), ("b", 0)]
    assert [i["uncertainty"] for i in items] == sorted((i["uncertainty"] for i in items), reverse=True)


def test_review_command_writes_pictures(input_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels"
    assert main([str(input_tree / "clips"), "--out", str(out), "--teacher", BLOB_TEACHER, "--no-progress"]) == 0
    assert main(["review", str(out), "--top", "2"]) == 0
    items = json.loads((out / "review" / "review.json").read_text())
    assert len(items) == 2 and items[0]["clip"] == "clip_0000"
    picture = cv2.imread(items[0]["picture"])
    assert picture is not None and picture.shape[0] >= 128  # both cameras in a mosaic


def test_eval_against_clip_ground_truth(input_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels"
    video = input_tree / "drive_a.mp4"
    assert main([str(video), "--out", str(out), "--teacher", BLOB_TEACHER, "--no-progress"]) == 0
    labels = ClipLabels.load(out / "drive_a" / "labels.json")
    gt = tmp_path / "gt" / "drive_a"
    gt.mkdir(parents=True)
    # ground truth = the labels themselves but with class names in another order and one box shifted away
    names = list(reversed(labels.classes))
    frames = []
    for index, frame in enumerate(labels.frames):
        boxes = frame.boxes2d["camera"]
        xyxy = boxes.xyxy.copy()
        if index == 0:
            xyxy[0] += 100
        frames.append(
            FrameLabels(
                boxes2d={
                    "camera": Boxes2D(
                        xyxy=xyxy,
                        class_id=[names.index(labels.classes[c]) for c in boxes.class_id],
                        track_id=boxes.track_id,
                    )
                }
            )
        )
    ClipLabels(names, frames, {"source": "ground_truth"}).save(gt / "labels.json")
    assert main(["eval", str(out), "--gt", str(tmp_path / "gt")]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    clip = metrics["clips"]["drive_a"]
    assert 0.9 < clip["det2d"]["AP50"] < 1.0  # one miss + one false positive out of 48 boxes
    tracking = clip["tracking"]["camera"]
    assert tracking["num_switches"] == 0
    assert tracking["mota"] == pytest.approx(1 - 2 / 48, abs=1e-6)


def test_eval_bev_map_for_3d_labels(tmp_path: Path) -> None:
    from perception.labels import Boxes3D

    classes = ["car", "truck", "bus", "pedestrian", "cyclist", "traffic_cone"]
    rng = np.random.default_rng(0)
    frames_pred, frames_gt = [], []
    for _ in range(5):
        centre = np.c_[rng.uniform(-20, 20, (4, 2)), np.full(4, 0.8)]
        gt = Boxes3D(
            center=centre,
            size=np.tile([4.5, 1.9, 1.6], (4, 1)),
            yaw=np.zeros(4),
            class_id=[0, 0, 3, 3],
            track_id=[1, 2, 3, 4],
        )
        pred = Boxes3D(
            center=centre + [0.3, 0.0, 0.0],
            size=gt.size,
            yaw=gt.yaw,
            class_id=gt.class_id,
            score=[0.9, 0.8, 0.7, 0.6],
            track_id=gt.track_id,
        )
        frames_gt.append(FrameLabels(boxes3d=gt))
        frames_pred.append(FrameLabels(boxes3d=pred))
    (tmp_path / "labels" / "clip").mkdir(parents=True)
    ClipLabels(classes, frames_pred, {}).save(tmp_path / "labels" / "clip" / "labels.json")
    (tmp_path / "labels" / "clip" / "done").write_text("{}")
    (tmp_path / "gt" / "clip").mkdir(parents=True)
    ClipLabels(classes, frames_gt, {}).save(tmp_path / "gt" / "clip" / "labels.json")
    assert main(["eval", str(tmp_path / "labels"), "--gt", str(tmp_path / "gt")]) == 0
    bev = json.loads((tmp_path / "labels" / "metrics.json").read_text())["overall"]["bev"]
    assert bev["mAP"] == pytest.approx(1.0)  # 0.3 m offset < every distance threshold (0.5, 1, 2, 4 m)
    assert bev["mATE"] == pytest.approx(0.3, abs=1e-3)  # the 0.3 m offset, nothing else


def test_eval_reports_ground_truth_classes_the_labels_lack(tmp_path: Path, caplog) -> None:
    xyxy = np.array([[10.0, 10, 40, 40], [60, 60, 90, 90]])
    pred = [FrameLabels(boxes2d={"camera": Boxes2D(xyxy=xyxy[:1], class_id=[0], score=[0.9])}) for _ in range(3)]
    gt = [FrameLabels(boxes2d={"camera": Boxes2D(xyxy=xyxy, class_id=[0, 1])}) for _ in range(3)]
    (tmp_path / "labels" / "clip").mkdir(parents=True)
    ClipLabels(["car"], pred, {}).save(tmp_path / "labels" / "clip" / "labels.json")
    (tmp_path / "labels" / "clip" / "done").write_text("{}")
    (tmp_path / "gt" / "clip").mkdir(parents=True)
    ClipLabels(["car", "tram"], gt, {}).save(tmp_path / "gt" / "clip" / "labels.json")
    with caplog.at_level("WARNING", logger="autolabel"):
        assert main(["eval", str(tmp_path / "labels"), "--gt", str(tmp_path / "gt")]) == 0
    assert any("'tram'" in m and "labels.json" in m and "3 boxes are not scored" in m for m in caplog.messages)
    clip = json.loads((tmp_path / "labels" / "metrics.json").read_text())["clips"]["clip"]
    assert clip["unscored_gt_classes"] == {"tram": 3}
    assert clip["det2d"]["AP50"] == pytest.approx(1.0)  # the car is found; the tram is reported, not counted


def test_eval_hota_without_optional_packages_and_not_applicable_bev(tmp_path: Path, monkeypatch, capsys) -> None:
    """2D labels against 3D+2D ground truth: HOTA/MOTA/IDF1 per class with motmetrics and TrackEval unimportable,
    BEV "not applicable" (not 0.000), a label class the ground truth lacks reported."""
    from perception.labels import Boxes3D

    monkeypatch.setitem(sys.modules, "motmetrics", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "trackeval", None)
    xyxy = np.array([[10.0, 10, 40, 40], [60, 60, 90, 90]])
    gt, pred = [], []
    for index in range(6):
        boxes3d = Boxes3D(center=[[5.0, 0, 0.8]], size=[[4.5, 1.9, 1.6]], yaw=[0.0], class_id=[0], track_id=[1])
        gt.append(
            FrameLabels(boxes3d=boxes3d, boxes2d={"camera": Boxes2D(xyxy=xyxy, class_id=[0, 1], track_id=[1, 2])})
        )
        # the pedestrian changes id half-way (one switch); a traffic cone the ground truth does not know
        pred.append(
            FrameLabels(
                boxes2d={
                    "camera": Boxes2D(
                        xyxy=np.r_[xyxy, [[100.0, 10, 110, 30]]],
                        class_id=[0, 1, 2],
                        score=[0.9, 0.8, 0.7],
                        track_id=[5, 6 if index < 3 else 7, 8],
                    )
                }
            )
        )
    (tmp_path / "labels" / "clip").mkdir(parents=True)
    ClipLabels(["car", "pedestrian", "traffic_cone"], pred, {}).save(tmp_path / "labels" / "clip" / "labels.json")
    (tmp_path / "labels" / "clip" / "done").write_text("{}")
    (tmp_path / "gt" / "clip").mkdir(parents=True)
    ClipLabels(["car", "pedestrian"], gt, {}).save(tmp_path / "gt" / "clip" / "labels.json")
    assert main(["eval", str(tmp_path / "labels"), "--gt", str(tmp_path / "gt")]) == 0
    printed = capsys.readouterr().out
    assert "HOTA" in printed and "BEV not applicable" in printed and "mAP 0.000" not in printed
    metrics = json.loads((tmp_path / "labels" / "metrics.json").read_text())
    clip = metrics["clips"]["clip"]
    assert clip["bev"] == {"not_applicable": "not applicable: the labels have no 3D boxes (a 2D teacher)"}
    assert clip["unscored_label_classes"] == {"traffic_cone": 6}
    tracking = clip["tracking"]["camera"]
    assert tracking["per_class"]["car"]["hota"] == pytest.approx(1.0)
    assert tracking["per_class"]["pedestrian"]["num_switches"] == 1
    assert tracking["per_class"]["pedestrian"]["assa"] == pytest.approx(0.5)  # two halves of one object
    assert tracking["deta"] == pytest.approx(1.0) and tracking["num_false_positives"] == 0  # the cone is not scored
    assert tracking["hota"] == pytest.approx(np.sqrt((6 * 1.0 + 6 * 0.5) / 12))  # detection-weighted over classes
    assert metrics["overall"]["tracking"]["hota"] == pytest.approx(tracking["hota"])


def test_eval_mot_ground_truth_of_an_unknown_class_exits_1(tmp_path: Path, capsys) -> None:
    (tmp_path / "labels" / "seq").mkdir(parents=True)
    frames = [FrameLabels(boxes2d={"camera": Boxes2D(xyxy=[[1, 1, 5, 5]], track_id=[1])})]
    ClipLabels(["car"], frames, {}).save(tmp_path / "labels" / "seq" / "labels.json")
    (tmp_path / "labels" / "seq" / "done").write_text("{}")
    (tmp_path / "gt" / "seq" / "gt").mkdir(parents=True)
    (tmp_path / "gt" / "seq" / "gt" / "gt.txt").write_text("1,1,1,1,4,4,1,-1,-1,-1\n")
    assert main(["eval", str(tmp_path / "labels"), "--gt", str(tmp_path / "gt")]) == 2  # bad input
    assert "--gt-class 'pedestrian'" in capsys.readouterr().err
