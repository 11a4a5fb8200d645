"""Still images are labelled one by one at their own size; corrected CVAT XML comes back as ground truth for
``autolabel eval`` and ``autolabel export``."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
from autolabel_fakes import BLOB_TEACHER, blob_frame, write_blob_video

from autolabel.cli import main
from autolabel.sources import discover_sources
from perception.labels import ClipLabels

SIZES = [(192, 128), (320, 96), (150, 200)]  # width, height: one folder, three sizes


@pytest.fixture()
def stills(tmp_path: Path) -> Path:
    folder = tmp_path / "in" / "photos"
    folder.mkdir(parents=True)
    for index, (width, height) in enumerate(SIZES):
        cv2.imwrite(str(folder / f"img_{index}.jpg"), blob_frame(5 * index, width=width, height=height))
    cv2.imwrite(str(tmp_path / "in" / "single.png"), blob_frame(2))
    return tmp_path / "in"


def test_a_single_still_with_the_default_preset_gets_its_labels(stills: Path, tmp_path: Path) -> None:
    """min_length: 3 of the tracking preset does not apply: one image, one frame, its boxes."""
    out = tmp_path / "single"
    config = Path(__file__).resolve().parents[2] / "configs/autolabel/default.yaml"
    assert main([str(stills / "single.png"), "--out", str(out), "--teacher", BLOB_TEACHER, "--refine", str(config),
                 "--no-progress"]) == 0  # fmt: skip
    labels = ClipLabels.load(out / "single" / "labels.json")
    assert len(labels.frames) == 1 and labels.provenance["input_kind"] == "stills"
    boxes = labels.frames[0].boxes2d["image"]
    assert sorted(labels.classes[c] for c in boxes.class_id) == ["car", "pedestrian"]
    assert (boxes.track_id == -1).all()  # independent images: no track ids


def test_image_folder_of_mixed_sizes_is_labelled_per_image(stills: Path, tmp_path: Path) -> None:
    assert {s.relative.as_posix(): s.kind for s in discover_sources(stills)} == {"photos": "stills", "in": "stills"}
    assert discover_sources(stills, image_mode="sequence")[0].kind == "images"
    out = tmp_path / "labels"
    assert main([str(stills), "--out", str(out), "--teacher", BLOB_TEACHER, "--export=[cvat, labelstudio, yolo]",
                 "--preview", "--no-progress"]) == 0  # fmt: skip
    labels = ClipLabels.load(out / "photos" / "labels.json")
    records = json.loads((out / "photos" / "images.json").read_text())
    assert [(r["file"], r["width"], r["height"]) for r in records] == [
        (f"img_{i}.jpg", w, h) for i, (w, h) in enumerate(SIZES)
    ]
    for index, (width, height) in enumerate(SIZES):
        boxes = labels.frames[index].boxes2d["image"]
        car = boxes.xyxy[boxes.class_id == labels.classes.index("car")]
        x = 10 + 3 * 5 * index  # the red blob of blob_frame(5 * index), drawn at this image's own size
        np.testing.assert_allclose(car[0], [x, 40, x + 31, 71], atol=1.5)
        assert boxes.xyxy[:, 2].max() <= width and boxes.xyxy[:, 3].max() <= height
    # CVAT for images: each image with its own size; Label Studio: one image task each; YOLO normalised per image
    images = ET.parse(out / "photos" / "cvat" / "image.xml").getroot().findall("image")
    assert [(i.get("name"), int(i.get("width")), int(i.get("height"))) for i in images] == [
        (f"img_{i}.jpg", w, h) for i, (w, h) in enumerate(SIZES)
    ]
    tasks = json.loads((out / "photos" / "labelstudio" / "image.json").read_text())
    assert tasks[1]["data"]["image"] == "/data/local-files/?d=photos/img_1.jpg"
    assert tasks[1]["predictions"][0]["result"][0]["original_width"] == 320
    yolo = sorted((out / "dataset" / "labels").rglob("photos__image__000001.txt"))[0].read_text().split("\n")[0]
    cls, cx, cy, _, _ = (float(v) for v in yolo.split())
    assert cls == labels.classes.index("car")
    car = labels.frames[1].boxes2d["image"].xyxy[labels.frames[1].boxes2d["image"].class_id == 0][0]
    np.testing.assert_allclose([cx * 320, cy * 96], [(car[0] + car[2]) / 2, (car[1] + car[3]) / 2], atol=1e-3)
    assert len(list((out / "photos" / "preview").glob("*.jpg"))) == 3


def test_an_image_sequence_of_mixed_sizes_is_refused_with_the_file_named(stills: Path, tmp_path: Path) -> None:
    config = tmp_path / "job.yaml"
    config.write_text("teacher: {class_path: autolabel_fakes.BlobTeacher}\nimages: {mode: sequence}\n")
    out = tmp_path / "labels"
    assert main([str(stills / "photos"), "--out", str(out), "-c", str(config), "--no-progress"]) == 3
    reason = json.loads((out / "failures.json").read_text())[0]["reason"]
    assert "img_1.jpg" in reason and "320x96" in reason and "192x128" in reason


def test_cvat_corrections_back_as_ground_truth(tmp_path: Path, capsys) -> None:
    """Label a video, 'correct' its CVAT XML (drop the pedestrian track, move the car on frame 3), import it as
    ground truth: eval scores the pseudo-labels against it, export trains on the corrected boxes."""
    video = write_blob_video(tmp_path / "in" / "drive.mp4", frames=8)
    out = tmp_path / "labels"
    assert main([str(video), "--out", str(out), "--teacher", BLOB_TEACHER, "--no-progress"]) == 0
    pseudo = ClipLabels.load(out / "drive" / "labels.json")
    xml = out / "drive" / "cvat" / "camera.xml"
    root = ET.parse(xml).getroot()
    for track in root.findall("track"):
        if track.get("label") == "pedestrian":
            root.remove(track)
        else:
            for box in track.findall("box"):
                if box.get("frame") == "3":
                    box.set("xtl", str(float(box.get("xtl")) + 60))
                    box.set("xbr", str(float(box.get("xbr")) + 60))
    corrected = tmp_path / "corrected.xml"
    ET.ElementTree(root).write(corrected)
    gt = tmp_path / "gt" / "drive"
    assert main(["import-cvat", str(corrected), "--input", str(video), "--out", str(gt),
                 "--classes", *pseudo.classes]) == 0  # fmt: skip
    truth = ClipLabels.load(gt / "labels.json")
    assert truth.provenance["source"] == "ground_truth" and truth.provenance["input"] == str(video.resolve())
    assert truth.classes == pseudo.classes
    assert [len(f.boxes2d["camera"]) for f in truth.frames] == [1] * 8  # the car only
    capsys.readouterr()
    assert main(["eval", str(out), "--gt", str(tmp_path / "gt")]) == 0
    clip = json.loads((out / "metrics.json").read_text())["clips"]["drive"]
    car = clip["tracking"]["camera"]["per_class"]["car"]
    assert car["num_misses"] == 1 and car["num_false_positives"] == 1  # the moved box on frame 3
    pedestrian = clip["tracking"]["camera"]["per_class"]["pedestrian"]  # removed by the reviewer: all false
    assert pedestrian["num_objects"] == 0 and pedestrian["num_false_positives"] == 8 and pedestrian["hota"] == 0.0
    assert main(["export", str(tmp_path / "gt"), "--out", str(tmp_path / "gt_dataset"), "--format", "yolo",
                 "--no-progress"]) == 0  # fmt: skip
    lines = (tmp_path / "gt_dataset" / "labels" / "train" / "drive__camera__000003.txt").read_text().splitlines()
    moved = truth.frames[3].boxes2d["camera"].xyxy[0]
    assert len(lines) == 1 and float(lines[0].split()[1]) == pytest.approx((moved[0] + moved[2]) / 2 / 192, abs=1e-5)
    assert cv2.imread(str(tmp_path / "gt_dataset" / "images" / "train" / "drive__camera__000003.jpg")).shape == (
        128, 192, 3,
    )  # fmt: skip


def test_import_cvat_errors_name_the_file(tmp_path: Path, capsys) -> None:
    video = write_blob_video(tmp_path / "drive.mp4", frames=4)
    bad = tmp_path / "wrong_size.xml"
    bad.write_text(
        "<annotations><version>1.1</version><meta><task><size>4</size><original_size><width>640</width>"
        "<height>480</height></original_size><labels><label><name>car</name></label></labels></task></meta>"
        "</annotations>"
    )
    assert main(["import-cvat", str(bad), "--input", str(video), "--out", str(tmp_path / "gt")]) == 2  # bad input
    assert "wrong_size.xml: <original_size> 640x480, the input's camera 'camera' is 192x128" in capsys.readouterr().err
    (tmp_path / "broken.xml").write_text("<annotations><track")
    assert main(["import-cvat", str(tmp_path / "broken.xml"), "--out", str(tmp_path / "gt")]) == 2  # bad input
    assert "broken.xml: not a readable CVAT XML file" in capsys.readouterr().err


def test_review_draws_still_images(stills: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels"
    assert main([str(stills / "photos"), "--out", str(out), "--teacher", BLOB_TEACHER, "--no-progress"]) == 0
    assert main(["review", str(out), "--top", "3"]) == 0
    items = json.loads((out / "review" / "review.json").read_text())
    assert len(items) == 3 and all(item["picture"] for item in items)
    sizes = {cv2.imread(item["picture"]).shape[:2] for item in items}
    assert sizes == {(h, w) for w, h in SIZES}  # each still drawn at its own size
