"""Exports: MOT per class, CVAT XML (and back), Label Studio tasks, and the YOLO / COCO training dataset a job writes
(frames as JPEG, split by clip), read back with pycocotools and supervision's YOLO reader."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
from autolabel_fakes import BLOB_TEACHER, blob_frame, write_blob_clip, write_blob_video

from autolabel.cli import main
from autolabel.exporters import ExportContext, export_all, read_cvat_xml
from perception.labels import Boxes2D, ClipLabels, FrameLabels

CLASSES = ["car", "pedestrian"]


@pytest.fixture()
def exported(tmp_path: Path) -> tuple[Path, ClipLabels]:
    frames = []
    for i in range(4):
        rows = [[10 + i, 20, 50 + i, 60]] + ([[100, 10, 120, 70]] if i != 2 else [])  # track 7 absent on frame 2
        frames.append(
            FrameLabels(
                boxes2d={
                    "front": Boxes2D(
                        xyxy=np.array(rows, float),
                        class_id=[0] + ([1] if i != 2 else []),
                        score=[0.9] + ([0.6] if i != 2 else []),
                        track_id=[3] + ([7] if i != 2 else []),
                    )
                }
            )
        )
    labels = ClipLabels(CLASSES, frames, {"source": "autolabel"})
    context = ExportContext(
        "clip_a", {"front": (200, 100)}, 10.0, 4, videos={"front": "drives/clip_a/cameras/front.mp4"}
    )
    export_all(labels, context, tmp_path, ["mot", "cvat", "labelstudio", "yolo", "coco"])
    return tmp_path, labels


def test_mot_one_file_per_class(exported) -> None:
    folder, _ = exported
    cars = (folder / "mot" / "car" / "front.txt").read_text().splitlines()
    people = (folder / "mot" / "pedestrian" / "front.txt").read_text().splitlines()
    assert len(cars) == 4 and len(people) == 3
    assert cars[0] == "1,3,10.00,20.00,40.00,40.00,0.9000,-1,-1,-1"
    assert {r.split(",")[1] for r in cars} == {"3"} and {r.split(",")[1] for r in people} == {"7"}
    assert [int(r.split(",")[0]) for r in people] == [1, 2, 4]  # track 7 absent on (1-based) frame 3
    assert not (folder / "yolo").exists() and not (folder / "coco.json").exists()  # dataset formats: job level


def test_cvat_video_xml_tracks_and_read_back(exported) -> None:
    folder, labels = exported
    root = ET.parse(folder / "cvat" / "front.xml").getroot()
    assert root.find("version").text == "1.1" and root.find("meta/source").text == "drives/clip_a/cameras/front.mp4"
    tracks = {int(t.get("id")): t for t in root.findall("track")}
    assert set(tracks) == {3, 7}
    assert tracks[3].get("label") == "car" and tracks[7].get("label") == "pedestrian"
    boxes7 = [(int(b.get("frame")), b.get("outside")) for b in tracks[7].findall("box")]
    assert boxes7 == [(0, "0"), (1, "0"), (2, "1"), (3, "0")]  # gap closed with outside=1
    back = read_cvat_xml(folder / "cvat" / "front.xml")
    assert back.classes == CLASSES and len(back.frames) == 4
    for original, read in zip(labels.frames, back.frames):
        boxes = original.boxes2d["front"]
        order = np.argsort(read.track_id)
        np.testing.assert_array_equal(read.track_id[order], boxes.track_id)
        np.testing.assert_array_equal(read.class_id[order], boxes.class_id)
        np.testing.assert_allclose(read.xyxy[order], boxes.xyxy, atol=0.005)


def test_cvat_semantics_interpolation_outside_and_last_shape(tmp_path: Path) -> None:
    """Keyframes 0 and 4 interpolate; outside=1 at 6 ends the track; a track whose last shape is visible lasts to
    the task's last frame; start_frame / step map task frames to source frames."""
    xml = tmp_path / "corrected.xml"
    xml.write_text(
        '<?xml version="1.0"?><annotations><version>1.1</version><meta><task><size>10</size>'
        "<start_frame>0</start_frame><stop_frame>9</stop_frame><labels><label><name>car</name></label>"
        "<label><name>truck</name></label></labels></task></meta>"
        '<track id="1" label="truck"><box frame="0" outside="0" keyframe="1" xtl="0" ytl="0" xbr="10" ybr="10"/>'
        '<box frame="4" outside="0" keyframe="1" xtl="40" ytl="0" xbr="50" ybr="10"/>'
        '<box frame="6" outside="1" keyframe="1" xtl="40" ytl="0" xbr="50" ybr="10"/></track>'
        '<track id="2" label="car"><box frame="7" outside="0" keyframe="1" xtl="5" ytl="5" xbr="9" ybr="9"/></track>'
        "</annotations>"
    )
    back = read_cvat_xml(xml)
    truck = [f[f.class_id == 1] for f in back.frames]
    assert [len(t) for t in truck] == [1] * 6 + [0] * 4
    np.testing.assert_allclose(truck[2].xyxy[0], [20, 0, 30, 10])  # half-way between the keyframes
    np.testing.assert_allclose(truck[5].xyxy[0], [40, 0, 50, 10])  # held until outside
    assert [len(f[f.class_id == 0]) for f in back.frames] == [0] * 7 + [1] * 3
    stepped = xml.read_text().replace("<start_frame>0</start_frame>", "<start_frame>3</start_frame>")
    stepped = stepped.replace("</stop_frame>", "</stop_frame><frame_filter>step=2</frame_filter>")
    xml.write_text(stepped.replace("<stop_frame>9</stop_frame>", "<stop_frame>21</stop_frame>"))
    back = read_cvat_xml(xml, num_frames=30)
    assert len(back.frames) == 30 and len(back.frames[3 + 2 * 2]) == 1 and len(back.frames[4]) == 0


def test_labelstudio_video_tasks(exported) -> None:
    folder, _ = exported
    tasks = json.loads((folder / "labelstudio" / "front.json").read_text())
    assert tasks[0]["data"]["video"] == "/data/local-files/?d=drives/clip_a/cameras/front.mp4"
    results = {r["meta"]["track_id"]: r for r in tasks[0]["predictions"][0]["result"]}
    assert set(results) == {3, 7} and all(r["type"] == "videorectangle" for r in results.values())
    first = results[3]["value"]["sequence"][0]
    assert (first["frame"], first["x"], first["y"], first["width"], first["height"]) == (1, 5.0, 20.0, 20.0, 40.0)
    assert results[7]["value"]["labels"] == ["pedestrian"]
    # the span before the gap and the track's last box end their lifespans (no interpolation across the gap)
    assert [s["enabled"] for s in results[7]["value"]["sequence"]] == [True, False, False]
    config = (folder / "labelstudio" / "config.xml").read_text()
    assert '<VideoRectangle name="box" toName="video"/>' in config and '<Label value="pedestrian"/>' in config


# ------------------------------------------------------------------------------------------ the dataset of a job
@pytest.fixture(scope="module")
def dataset_job(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Inputs: two videos, a two-camera clip, a folder of stills of three sizes; labelled by the job (yolo+coco)."""
    root = tmp_path_factory.mktemp("dataset_inputs")
    write_blob_video(root / "drive_a.mp4", frames=6)
    write_blob_video(root / "drive_b.mp4", frames=5, offset=15)
    write_blob_clip(root / "clips" / "clip_0000", frames=4)
    stills = root / "photos"
    stills.mkdir()
    for index, (width, height) in enumerate([(192, 128), (240, 160), (176, 144)]):
        cv2.imwrite(str(stills / f"p{index}.png"), blob_frame(index, width=width, height=height))
    out = tmp_path_factory.mktemp("dataset_labels")
    code = main(
        [str(root), "--out", str(out), "--teacher", BLOB_TEACHER, "--export=[mot, yolo, coco]", "--no-progress"]
    )
    assert code == 0
    return root, out, out / "dataset"


def _labelled_boxes(out: Path, relative: str, camera: str, frame: int) -> Boxes2D:
    return ClipLabels.load(out / relative / "labels.json").frames[frame].boxes2d.get(camera, Boxes2D.empty())


def _source_image(root: Path, relative: str, camera: str, frame: int) -> np.ndarray:
    from autolabel.sources import open_input

    if relative == "photos":
        return cv2.imread(str(root / "photos" / f"p{frame}.png"))
    clip = open_input(root / (relative + ".mp4") if relative.startswith("drive") else root / relative,
                      "video" if relative.startswith("drive") else "clip")  # fmt: skip
    return clip.read_frame(frame).images[camera]


def test_dataset_yolo_reads_with_supervision(dataset_job) -> None:
    sv = pytest.importorskip("supervision", reason="supervision (make bench-install) is the YOLO reader")
    root, out, dataset = dataset_job
    manifest = json.loads((dataset / "dataset.json").read_text())
    items = manifest["items"]
    assert sorted(items["train"] + items["val"]) == ["clips/clip_0000", "drive_a", "drive_b", "photos"]
    assert len(items["val"]) == 1 and not set(items["train"]) & set(items["val"])  # split by clip
    data = (dataset / "data.yaml").read_text()
    assert f"path: {json.dumps(str(dataset.resolve()))}" in data and "train: images/train" in data
    assert "val: images/val" in data and '0: "car"' in data
    checked = 0
    for split in ("train", "val"):
        ds = sv.DetectionDataset.from_yolo(
            images_directory_path=str(dataset / "images" / split),
            annotations_directory_path=str(dataset / "labels" / split),
            data_yaml_path=str(dataset / "data.yaml"),
        )
        assert ds.classes[:2] == ["car", "truck"] and len(ds) == manifest["images"][split]
        for path, image, detections in ds:
            stem = Path(path).stem
            relative, camera, frame = stem.split("__")[0].replace("clips", "clips/"), *stem.split("__")[-2:]
            relative = "clips/clip_0000" if stem.startswith("clips") else relative
            frame = int(frame)
            source = _source_image(root, relative, camera, frame)
            assert image.shape == source.shape  # each image at its own size (stills differ)
            boxes = _labelled_boxes(out, relative, camera, frame)
            assert len(detections) == len(boxes) > 0
            order_a, order_b = np.lexsort(detections.xyxy.T[::-1]), np.lexsort(boxes.xyxy.T[::-1])
            np.testing.assert_allclose(detections.xyxy[order_a], boxes.xyxy[order_b], atol=0.01)
            np.testing.assert_array_equal(detections.class_id[order_a], boxes.class_id[order_b])
            checked += 1
    assert checked == 6 + 5 + 2 * 4 + 3


def test_dataset_yolo_by_ultralytics_path_rule(dataset_job) -> None:
    """Without supervision: every image's label file is where ultralytics looks (the last /images/ replaced by
    /labels/, suffix .txt); rows denormalised by THAT image's size give the labelled boxes."""
    import os

    root, out, dataset = dataset_job
    count = 0
    for image_path in sorted((dataset / "images").rglob("*.jpg")):
        text = str(image_path)
        label_path = Path(f"{os.sep}labels{os.sep}".join(text.rsplit(f"{os.sep}images{os.sep}", 1)).rsplit(".", 1)[0]
                          + ".txt")  # fmt: skip
        rows = np.loadtxt(label_path, ndmin=2).reshape(-1, 5)
        height, width = cv2.imread(text).shape[:2]
        stem = image_path.stem
        relative = "clips/clip_0000" if stem.startswith("clips__") else stem.split("__")[0]
        camera, frame = stem.split("__")[-2], int(stem.split("__")[-1])
        assert (height, width) == _source_image(root, relative, camera, frame).shape[:2]
        xyxy = np.c_[rows[:, 1:3] - rows[:, 3:5] / 2, rows[:, 1:3] + rows[:, 3:5] / 2] * [width, height, width, height]
        boxes = _labelled_boxes(out, relative, camera, frame)
        np.testing.assert_allclose(np.sort(xyxy, axis=0), np.sort(boxes.xyxy, axis=0), atol=0.01)
        count += 1
    assert count == 6 + 5 + 2 * 4 + 3


def test_dataset_coco_loads_with_pycocotools(dataset_job) -> None:
    from pycocotools.coco import COCO

    _, out, dataset = dataset_job
    seen = 0
    for split in ("train", "val"):
        coco = COCO(str(dataset / "annotations" / f"instances_{split}.json"))
        for image in coco.dataset["images"]:
            picture = cv2.imread(str(dataset / "images" / image["file_name"]))
            assert picture is not None and picture.shape[:2] == (image["height"], image["width"])  # written frames
            video = next(v for v in coco.dataset["videos"] if v["id"] == image["video_id"])
            relative, camera = video["name"].rsplit("/", 1)
            boxes = _labelled_boxes(out, relative, camera, image["frame_id"])
            annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
            assert len(annotations) == len(boxes)
            got = sorted(tuple(a["bbox"]) for a in annotations)
            expected = sorted((round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)) for x1, y1, x2, y2 in
                              boxes.xyxy.tolist())  # fmt: skip
            np.testing.assert_allclose(got, expected, atol=0.011)
            seen += 1
        tracked = [a for a in coco.dataset["annotations"] if a["track_id"] >= 0]
        assert all(coco.dataset["tracks"][a["track_id"] - 1]["id"] == a["track_id"] for a in tracked)
    assert seen == 6 + 5 + 2 * 4 + 3


def test_dataset_rewritten_only_when_labels_change(dataset_job) -> None:
    from autolabel.exporters import write_dataset

    _, out, dataset = dataset_job
    stamp = (dataset / "dataset.json").stat().st_mtime_ns
    summary = write_dataset(out, dataset, formats=["yolo", "coco"])
    assert summary.reused and (dataset / "dataset.json").stat().st_mtime_ns == stamp
    other = write_dataset(out, out.parent / "yolo_only", formats=["yolo"], val_fraction=0.5, every=2)
    assert not other.reused and len(other.items["val"]) == 2
    assert not (out.parent / "yolo_only" / "annotations").exists()
    assert other.images["train"] + other.images["val"] == 3 + 3 + 2 * 2 + 2  # every 2nd frame / still
