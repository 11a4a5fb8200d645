"""Exporters keep track ids: COCO-video loads with pycocotools, MOT txt rows, CVAT video XML tracks, YOLO coords."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from autolabel.exporters import ExportContext, export_all
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
    context = ExportContext("clip_a", {"front": (200, 100)}, 10.0, 4)
    export_all(labels, context, tmp_path, ["coco", "mot", "cvat", "yolo"])
    return tmp_path, labels


def test_coco_video_loads_with_pycocotools_and_keeps_track_ids(exported) -> None:
    from pycocotools.coco import COCO

    folder, _ = exported
    coco = COCO(str(folder / "coco.json"))
    assert len(coco.getImgIds()) == 4
    annotations = coco.loadAnns(coco.getAnnIds())
    assert len(annotations) == 7
    assert {a["track_id"] for a in annotations} == {3, 7}
    first = next(a for a in annotations if a["track_id"] == 3 and coco.imgs[a["image_id"]]["frame_id"] == 1)
    assert first["bbox"] == [11.0, 20.0, 40.0, 40.0] and first["category_id"] == 1
    assert coco.dataset["videos"][0]["name"] == "clip_a/front"
    assert {(t["id"], t["category_id"]) for t in coco.dataset["tracks"]} == {(3, 1), (7, 2)}


def test_mot_rows(exported) -> None:
    folder, _ = exported
    rows = (folder / "mot" / "front.txt").read_text().splitlines()
    assert len(rows) == 7
    assert rows[0] == "1,3,10.00,20.00,40.00,40.00,0.9000,-1,-1,-1"
    frames = [int(r.split(",")[0]) for r in rows]
    assert frames == sorted(frames) and min(frames) == 1
    assert "3,7," not in "".join(rows)  # track 7 absent on (1-based) frame 3


def test_cvat_video_xml_tracks(exported) -> None:
    folder, _ = exported
    root = ET.parse(folder / "cvat" / "front.xml").getroot()
    assert root.find("version").text == "1.1"
    tracks = {int(t.get("id")): t for t in root.findall("track")}
    assert set(tracks) == {3, 7}
    assert tracks[3].get("label") == "car" and tracks[7].get("label") == "pedestrian"
    boxes7 = [(int(b.get("frame")), b.get("outside")) for b in tracks[7].findall("box")]
    assert boxes7 == [(0, "0"), (1, "0"), (2, "1"), (3, "0")]  # gap closed with outside=1
    assert float(tracks[3].findall("box")[1].get("xtl")) == 11.0


def test_yolo_normalised(exported) -> None:
    folder, _ = exported
    lines = (folder / "yolo" / "front" / "000000.txt").read_text().splitlines()
    cls, cx, cy, w, h = lines[0].split()
    assert cls == "0"
    np.testing.assert_allclose([float(cx), float(cy), float(w), float(h)], [30 / 200, 40 / 100, 40 / 200, 40 / 100])
    assert len((folder / "yolo" / "front" / "000002.txt").read_text().splitlines()) == 1
    assert "1: pedestrian" in (folder / "yolo" / "data.yaml").read_text()
