"""Visualisation: boxes drawn where they project, mosaic and BEV layout, whole frames on real and synthetic clips."""

import sys
from pathlib import Path

import numpy as np
import pytest

from perception.clip import DriveClip
from perception.geometry import BevGrid
from perception.labels import Boxes3D, ClipLabels
from perception.viz import color_for, draw_boxes3d_on_image, main, render_bev, render_frame, render_mosaic

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ (pytest's default import mode adds it too)
from test_check import _rig, write_clip

NUSCENES_INFO = (
    Path(__file__).resolve().parents[1] / "../shared/data/nuscenes_sample/n015-2018-07-24-11-22-45+0800.json"
)


def _one_box(x=8.0, y=0.0, class_id=0, track_id=5, score=1.0):
    return Boxes3D(
        np.array([[x, y, 0.8]]),
        np.array([[4.0, 1.8, 1.6]]),
        np.array([0.0]),
        class_id=np.array([class_id]),
        track_id=np.array([track_id]),
        score=np.array([score], np.float32),
    )


def test_box_is_drawn_where_it_projects():
    camera = _rig()["front"]
    image = np.zeros((48, 64, 3), np.uint8)
    drawn = draw_boxes3d_on_image(image, _one_box(), camera, show_labels=False)
    assert image.sum() == 0, "input image must not be modified"
    changed = np.argwhere(drawn.any(axis=2))  # (row, col)
    uv, _ = camera.project_ego(_one_box().corners()[0])
    assert changed[:, 1].min() >= uv[:, 0].min() - 2 and changed[:, 1].max() <= uv[:, 0].max() + 2
    assert changed[:, 0].min() >= uv[:, 1].min() - 2 and changed[:, 0].max() <= uv[:, 1].max() + 2
    for u, v in uv:  # every corner is on a drawn edge
        assert drawn[int(v) - 1 : int(v) + 2, int(u) - 1 : int(u) + 2].any()
    labelled = draw_boxes3d_on_image(image, _one_box(), camera, classes=["car"])
    assert (labelled > 0).sum() > (drawn > 0).sum()
    behind = draw_boxes3d_on_image(image, _one_box(x=-8.0), camera)
    assert behind.sum() == 0, "a box behind the camera draws nothing"
    dashed = draw_boxes3d_on_image(image, _one_box(score=0.4), camera, style="pred", show_labels=False)
    assert 0 < (dashed > 0).sum() < (drawn > 0).sum(), "predictions are dashed (fewer pixels than solid)"


def test_box_crossing_the_image_plane_is_clipped():
    camera = _rig()["front"]
    near = Boxes3D(np.array([[1.5, 0.0, 1.0]]), np.array([[4.0, 2.0, 1.6]]), np.array([0.3]))
    drawn = draw_boxes3d_on_image(np.zeros((48, 64, 3), np.uint8), near, camera)
    assert drawn.any()


def test_fisheye_box_edges_are_drawn_as_the_lens_bends_them():
    """A wide box just in front of and below a fisheye: its near bottom edge spans ~140 deg of the view. The drawing
    passes through the edge's projected midpoint, not along the straight chord between its projected ends; solid
    and dashed (prediction) lines both curve."""
    from perception.rig import Camera

    K = np.array([[60.0, 0.0, 99.5], [0.0, 60.0, 79.5], [0.0, 0.0, 1.0]])
    ego_from_camera = np.eye(4)
    ego_from_camera[:3, :3] = [[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]  # looking along +x
    camera = Camera("fish", 200, 160, K, ego_from_camera, "fisheye", np.zeros(4))
    box = Boxes3D(np.array([[1.0, 0.0, 0.0]]), np.array([[0.4, 4.0, 1.0]]), np.array([0.0]))
    edge = box.corners()[0][[2, 3]]  # bottom rear-right -> rear-left, 0.8 m ahead, 0.5 m below the camera
    (u0, v0), (u1, v1) = camera.project_ego(edge)[0]
    um, vm = camera.project_ego(edge.mean(axis=0, keepdims=True))[0][0]
    chord_v = v0 + (v1 - v0) * (um - u0) / (u1 - u0)
    assert vm - chord_v > 10  # the lens bends this edge: its middle sags below the chord
    for style, score in (("gt", 1.0), ("pred", 0.5)):
        box.score = np.array([score], np.float32)
        drawn = draw_boxes3d_on_image(np.zeros((160, 200, 3), np.uint8), box, camera, style=style, show_labels=False)
        near_curve = drawn[int(vm) - 2 : int(vm) + 3, int(um) - 8 : int(um) + 9].any()
        near_chord = drawn[int(chord_v) - 1 : int(chord_v) + 2, int(um) - 1 : int(um) + 2].any()
        assert near_curve and not near_chord, style


def test_mosaic_and_bev_layout():
    images = {f"cam{i}": np.full((90, 160, 3), 30 * i, np.uint8) for i in range(5)}
    mosaic = render_mosaic(images, columns=3, tile_width=160)
    assert mosaic.shape == (180, 480, 3)
    assert np.all(mosaic[120:180, 340:470] == 0)  # the sixth tile is empty
    grid = BevGrid(-20, 20, -10, 10, 0.5)
    bev = render_bev(_one_box(x=15.0, y=5.0), grid, pred_boxes=_one_box(x=-10.0, y=-5.0), size=400, classes=["car"])
    assert bev.shape == (400, 200, 3)
    car_colour = np.array(color_for(0))
    rows, cols = np.nonzero(np.abs(bev.astype(int) - car_colour).sum(axis=2) < 30)
    ahead_left = (rows < 100) & (cols < 100)
    assert ahead_left.any(), "a box 15 m ahead, 5 m left must be drawn in the upper-left of the panel"
    maps = np.zeros((2, *grid.shape), np.uint8)
    maps[0, 30:50] = 1
    with_map = render_bev(None, grid, bev_maps=maps, bev_channels=["drivable", "lane"], size=400, legend=False)
    assert (with_map[int(35 * 5), 100] != with_map[5, 100]).any()


def test_render_frame_on_synthetic_clip(tmp_path, capsys):
    clip = DriveClip.open(write_clip(tmp_path / "clip"))
    boxes = clip.labels.frames[0].boxes3d
    prediction = ClipLabels(
        ["car"],
        [
            type(f)(
                Boxes3D(
                    f.boxes3d.center + [0.5, 0.3, 0], f.boxes3d.size, f.boxes3d.yaw, score=np.array([0.7], np.float32)
                ),
                {},
            )
            for f in clip.labels.frames
        ],
        {},
    )
    image = render_frame(clip, 3, pred_labels=prediction, tile_width=128)
    assert image.ndim == 3 and image.shape[0] >= 96 and image.shape[1] > 2 * 128
    assert len(boxes) == 1 and image.std() > 10
    prediction.save(tmp_path / "pred.json")
    out = tmp_path / "preview.mp4"
    assert (
        main(
            [
                str(tmp_path / "clip"),
                "--out",
                str(out),
                "--labels",
                str(tmp_path / "pred.json"),
                "--max-frames",
                "4",
                "--tile-width",
                "128",
            ]
        )
        == 0
    )
    from perception.video import VideoReader

    with VideoReader(out) as reader:
        assert reader.frame_count == 4


@pytest.mark.shared_data
def test_viz_on_real_nuscenes_sample(tmp_path):
    if not NUSCENES_INFO.is_file():
        pytest.skip(f"real nuScenes sample not found at {NUSCENES_INFO}")
    import cv2

    from perception.importers.nuscenes_info import import_nuscenes_info

    clip_path = import_nuscenes_info(NUSCENES_INFO, tmp_path / "nuscenes", progress=False)[0]
    out = tmp_path / "preview.png"
    assert main([str(clip_path), "--frame", "0", "--out", str(out)]) == 0
    image = cv2.imread(str(out))
    assert image is not None and image.shape[1] > image.shape[0] > 400
    bare = cv2.imread(str(clip_path / "cameras" / "CAM_FRONT" / "000000.jpg"))
    tile = cv2.resize(bare, (480, 270), interpolation=cv2.INTER_AREA)
    changed = np.abs(image[:270, :480].astype(int) - tile.astype(int)).max(axis=2) > 60
    assert changed.mean() > 0.01, "boxes should be drawn over the CAM_FRONT tile"
    assert image[:, -100:].std() > 5, "the BEV panel has content"
