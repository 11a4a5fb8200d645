"""Synthetic world: determinism, label/image consistency, per-camera timing, rigs, BEV maps and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from perception.clip import DriveClip
from perception.geometry import BevGrid, se3, transform_points
from perception.rig import Rig
from perception.sim import generate_clip

REPO = Path(__file__).resolve().parents[2]
RIGS = REPO / "configs" / "rigs"


def _rig(name: str) -> Rig:
    return Rig.load(RIGS / f"{name}.yaml")


@pytest.fixture(scope="module")
def six_cam_clip(tmp_path_factory) -> DriveClip:
    path = tmp_path_factory.mktemp("sim") / "six"
    generate_clip(path, _rig("nuscenes_like_6cam"), frames=4, seed=11, num_actors=(14, 20))
    return DriveClip.open(path)


def _boxes_inside(clip: DriveClip) -> None:
    for frame in clip.labels.frames:
        for name, boxes in frame.boxes2d.items():
            camera = clip.rig[name]
            x1, y1, x2, y2 = boxes.xyxy.T
            assert np.all(x1 >= 0) and np.all(y1 >= 0), name
            assert np.all(x2 <= camera.width) and np.all(y2 <= camera.height), name
            assert np.all(x2 > x1) and np.all(y2 > y1), name
            assert np.all((boxes.visibility > 0) & (boxes.visibility <= 1)), name
            assert np.all((boxes.truncation >= 0) & (boxes.truncation <= 1)), name


def _centres_project_into_boxes(clip: DriveClip) -> int:
    """Every untruncated 2D box contains the projection of its 3D box centre; returns how many were checked."""
    checked = 0
    for index, frame in enumerate(clip.labels.frames):
        boxes3d = frame.boxes3d
        for name, boxes in frame.boxes2d.items():
            camera_from_ego = clip.camera_from_ego(index, name)
            for xyxy, track, truncation in zip(boxes.xyxy, boxes.track_id, boxes.truncation):
                match = np.nonzero(boxes3d.track_id == track)[0]
                if len(match) == 0 or truncation > 0:
                    continue
                uv, depth = clip.rig[name].project(transform_points(camera_from_ego, boxes3d.center[match]))
                assert depth[0] > 0
                u, v = uv[0]
                assert xyxy[0] - 1.5 <= u <= xyxy[2] + 1.5 and xyxy[1] - 1.5 <= v <= xyxy[3] + 1.5, (
                    name,
                    track,
                    uv,
                    xyxy,
                )
                checked += 1
    return checked


def test_six_camera_clip_is_valid_and_labels_match_images(six_cam_clip: DriveClip) -> None:
    clip = six_cam_clip
    clip.validate(deep=True)
    labels = clip.labels
    assert labels.provenance["source"] == "ground_truth" and labels.provenance["producer"] == "fleetvision.sim"
    assert labels.provenance["seed"] == 11
    assert len(clip.rig) == 6 and clip.num_frames == 4
    counts = [len(frame.boxes3d) for frame in labels.frames]
    assert min(counts) >= 5
    _boxes_inside(clip)
    assert _centres_project_into_boxes(clip) >= 5
    first = labels.frames[0].boxes3d  # track ids are stable: the same ids recur in the next frame
    assert len(set(first.track_id) & set(labels.frames[1].boxes3d.track_id)) >= len(first) - 1
    assert np.all(np.abs(first.center[:, 2] - first.size[:, 2] / 2) < 1e-4)  # boxes stand on the ground
    for frame in labels.frames:  # vehicles point where they drive; cones never move
        boxes = frame.boxes3d
        speed = np.linalg.norm(boxes.velocity, axis=1)
        vehicle = np.isin(boxes.class_id, [0, 1, 2]) & (speed > 2.0)
        heading = np.arctan2(boxes.velocity[vehicle, 1], boxes.velocity[vehicle, 0])
        assert np.all(np.abs(np.angle(np.exp(1j * (heading - boxes.yaw[vehicle])))) < 0.3)
        assert np.all(speed[boxes.class_id == 5] < 1e-6)


def test_rendered_images_show_objects_where_the_labels_say(six_cam_clip: DriveClip) -> None:
    frame = six_cam_clip.read_frame(1)
    labels = six_cam_clip.labels.frames[1]
    for name, boxes in labels.boxes2d.items():
        image = frame.images[name].astype(np.float32)
        for xyxy, visibility in zip(boxes.xyxy, boxes.visibility):
            x1, y1, x2, y2 = xyxy.astype(int)
            if visibility < 0.9 or (x2 - x1) * (y2 - y1) < 200:
                continue
            patch = image[y1:y2, x1:x2]
            assert patch.std() > 3.0  # an object, not a flat background


def test_bev_maps_have_drivable_area_around_the_ego(six_cam_clip: DriveClip) -> None:
    bev = six_cam_clip.labels.bev
    assert bev.channels == ["drivable", "lane"]
    assert bev.grid == BevGrid()
    assert bev.data.shape == (4, 2, 100, 100)
    for maps in bev.data:
        row, col = bev.grid.ego_to_cell(np.array([1.4, 0.0])).astype(int)
        assert maps[0, row, col] == 1  # the ego stands on the road
        assert 0.05 < maps[0].mean() < 0.9
        assert maps[1].sum() > 50
        assert np.all(maps[1][maps[0] == 0] <= 1)


def test_same_seed_same_clip_different_seed_different_clip(tmp_path: Path) -> None:
    rig = _rig("front_1cam")
    paths = [tmp_path / name for name in ("a", "b", "c")]
    for path, seed in zip(paths, (5, 5, 6)):
        generate_clip(path, rig, frames=3, seed=seed, image_format="png")

    def content(path: Path) -> tuple[list[np.ndarray], dict]:
        clip = DriveClip.open(path)
        images = [frame.images["front"] for frame in clip.frames()]
        document = json.loads((path / "labels.json").read_text())
        document["provenance"].pop("created")
        return images, document

    images_a, labels_a = content(paths[0])
    images_b, labels_b = content(paths[1])
    images_c, labels_c = content(paths[2])
    assert labels_a == labels_b
    assert all(np.array_equal(a, b) for a, b in zip(images_a, images_b))
    assert (
        np.load(paths[0] / "labels_bev.npz")["data"].tobytes() == np.load(paths[1] / "labels_bev.npz")["data"].tobytes()
    )
    assert labels_a["frames"] != labels_c["frames"]
    assert not np.array_equal(images_a[0], images_c[0])


def test_occluded_object_has_visibility_below_one() -> None:
    """Two boxes straight ahead of a camera: the far one is partly hidden by the near one."""
    from perception.sim.ground import GroundTexture
    from perception.sim.look import Look
    from perception.sim.meshes import MeshBuilder
    from perception.sim.render import SceneBatch, camera_look, camera_setup, render_camera

    camera = _rig("front_1cam")["front"]
    near, far = MeshBuilder(), MeshBuilder()
    near.box((0, 0), 0.0, (1.0, 1.0, 1.0), (200, 50, 50))
    far.box((0, 0), 0.0, (4.0, 2.0, 1.6), (50, 50, 200))
    batch = SceneBatch.build([near.build(1), far.build(1)], [1, 2])
    look = Look(
        np.array([0.3, 0.2, 0.9]),
        0.5,
        0.5,
        1.0,
        np.ones(3),
        np.array([200.0, 150, 100]),
        np.array([230.0, 220, 200]),
        1000.0,
        0.0,
        0.0,
        False,
        "day",
    )
    ground = GroundTexture(np.full((10, 10, 3), 90, np.uint8), 0.0, -50.0, -50.0, 10.0, (90.0, 90.0, 90.0))
    rng = np.random.default_rng(0)
    poses = np.stack([se3(np.eye(3), [8.0, 0.3, 0.0]), se3(np.eye(3), [16.0, 0.0, 0.0])])
    result = render_camera(
        camera_setup(camera),
        look,
        camera_look(camera_setup(camera), look, rng),
        ground,
        np.eye(4),
        batch,
        poses,
        poses[:, :3, :3],
        np.ones(2, bool),
        rng,
    )
    visible_near, visible_far = result.visible_pixels[1], result.visible_pixels[2]
    assert visible_near == result.silhouettes[1][0]  # nothing in front of the near box
    assert 0 < visible_far < result.silhouettes[2][0]  # the far box is partly hidden
    # the image shows the near box's colour at its centre and the far box's at its visible edge
    uv, _ = camera.project_ego(np.array([[7.5, 0.3, 0.5]]))
    u, v = np.round(uv[0]).astype(int)
    assert result.ids[v, u] == 1 and result.image[v, u, 0] > result.image[v, u, 2]


def test_capture_offset_is_honoured_by_camera_from_ego(tmp_path: Path) -> None:
    """Cameras captured 35 ms apart (5 Hz frames): boxes projected with clip.camera_from_ego land on the rendered
    2D boxes, while the static rig transform misses them (the ego and the actors moved in between)."""
    path = tmp_path / "timed"
    generate_clip(
        path, _rig("nuscenes_like_6cam"), frames=3, fps=5.0, seed=26, capture_offset=0.035, num_actors=(14, 20)
    )
    clip = DriveClip.open(path)
    assert clip.camera_timestamps["back_right"][1] - clip.timestamps[1] == pytest.approx(0.175)
    timed, static = [], []
    for index, frame in enumerate(clip.labels.frames):
        for name in clip.rig.names[1:]:
            camera, boxes = clip.rig[name], frame.boxes2d[name]
            for xyxy, track, truncation in zip(boxes.xyxy, boxes.track_id, boxes.truncation):
                match = np.nonzero(frame.boxes3d.track_id == track)[0]
                if len(match) == 0 or truncation > 0:
                    continue
                centre = np.array([(xyxy[0] + xyxy[2]) / 2, (xyxy[1] + xyxy[3]) / 2])
                errors = []
                for transform in (clip.camera_from_ego(index, name), camera.camera_from_ego):
                    uv, _ = camera.project(transform_points(transform, frame.boxes3d.center[match]))
                    errors.append(float(np.linalg.norm(uv[0] - centre)))
                timed.append(errors[0])
                static.append(errors[1])
    timed, static = np.array(timed), np.array(static)
    moved = np.abs(timed - static) > 3.0  # boxes whose projection the timing changes visibly
    assert moved.sum() >= 5
    assert np.mean(timed[moved] < static[moved]) > 0.8
    assert np.median(timed[moved]) < 0.5 * np.median(static[moved])


@pytest.mark.parametrize("rig_name", ["front_1cam", "front_3cam", "front_fisheye_1cam"])
def test_other_rigs_and_distorted_cameras(tmp_path: Path, rig_name: str) -> None:
    rig = _rig(rig_name)
    path = generate_clip(tmp_path / rig_name, rig, frames=2, seed=3, num_actors=(12, 20))
    clip = DriveClip.open(path)
    clip.validate(deep=True)
    assert clip.rig.names == rig.names
    _boxes_inside(clip)
    assert sum(len(b) for f in clip.labels.frames for b in f.boxes2d.values()) >= 2
    _centres_project_into_boxes(clip)
    if rig_name == "front_3cam":
        assert clip.rig["front_wide"].distortion_model == "radtan"


def _projected_box_extent(camera, camera_from_ego: np.ndarray, corners: np.ndarray) -> np.ndarray | None:
    """Pixel extent (x1, y1, x2, y2) of a 3D box's edges, densely sampled (a lens bends them), or None if any
    sample is not seen."""
    from perception.viz import BOX_EDGES

    t = np.linspace(0.0, 1.0, 33)[:, None]
    points = np.concatenate([corners[a] + t * (corners[b] - corners[a]) for a, b in BOX_EDGES])
    uv, _ = camera.project(transform_points(camera_from_ego, points))
    if not np.isfinite(uv).all():
        return None
    return np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max() + 1, uv[:, 1].max() + 1])


@pytest.mark.parametrize("rig_name", ["robot_quadruped_4fisheye", "robot_indoor_base"])
def test_robot_rigs_render_with_fisheye_labels_that_match_the_lens(tmp_path: Path, rig_name: str) -> None:
    """Low fisheye cameras: every untruncated 2D box (from the rendered silhouette) lies inside its 3D box's
    fisheye projection and covers most of it; pixels beyond 90 deg off-axis show nothing; the ground is seen
    close to the low mount."""
    from perception.sim.render import camera_setup

    rig = _rig(rig_name)
    assert {camera.distortion_model for camera in rig} >= {"fisheye"}
    assert max(camera.ego_from_camera[2, 3] for camera in rig) < 0.7  # a low mount
    path = generate_clip(tmp_path / rig_name, rig, frames=3, seed=5, num_actors=(14, 20))
    clip = DriveClip.open(path)
    clip.validate(deep=True)
    _boxes_inside(clip)
    assert _centres_project_into_boxes(clip) >= 5
    overlaps = []
    for index, frame in enumerate(clip.labels.frames):
        corners = frame.boxes3d.corners()
        for name, boxes in frame.boxes2d.items():
            camera = clip.rig[name]
            for xyxy, track, truncation in zip(boxes.xyxy, boxes.track_id, boxes.truncation):
                match = np.nonzero(frame.boxes3d.track_id == track)[0]
                if camera.distortion_model != "fisheye" or len(match) == 0 or truncation > 0:
                    continue
                extent = _projected_box_extent(camera, clip.camera_from_ego(index, name), corners[match[0]])
                if extent is None:
                    continue
                assert np.all(xyxy[:2] >= extent[:2] - 2) and np.all(xyxy[2:] <= extent[2:] + 2), (name, track)
                overlaps.append(np.prod(xyxy[2:] - xyxy[:2]) / np.prod(extent[2:] - extent[:2]))
    assert len(overlaps) >= 10 and np.median(overlaps) > 0.4  # meshes fill their boxes, not a sliver of them
    for camera in rig:
        if camera.distortion_model != "fisheye":
            continue
        setup = camera_setup(camera)
        image = clip.read_frame(0, [camera.name]).images[camera.name]
        assert not setup.valid[0, 0] and setup.valid[camera.height // 2, camera.width // 2]  # corners: beyond 90 deg
        assert image[:4, :4].max() < 40 and image[camera.height // 2].mean() > 40
        nearest = float(np.nanmin(np.where(np.isfinite(setup.ground_distance), setup.ground_distance, np.nan)))
        assert nearest < 1.0  # a low, down-looking fisheye sees the ground within a metre


def test_synth_cli_writes_openable_clips_and_resumes(tmp_path: Path) -> None:
    from perception.cli import main

    out = tmp_path / "dataset"
    argv = [
        "synth",
        "--rig",
        str(RIGS / "front_1cam.yaml"),
        "--clips",
        "2",
        "--frames",
        "2",
        "--out",
        str(out),
        "--seed",
        "4",
        "--quiet",
    ]
    assert main(argv) == 0
    clips = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert clips == ["clip_0000", "clip_0001"]
    for name in clips:
        clip = DriveClip.open(out / name)
        clip.validate(deep=True)
        assert clip.labels is not None and clip.num_frames == 2
    stamp = (out / "clip_0000" / "frames.csv").stat().st_mtime_ns
    assert main(argv[:4] + ["3"] + argv[5:]) == 0  # one more clip; the first two are kept
    assert (out / "clip_0000" / "frames.csv").stat().st_mtime_ns == stamp
    assert (out / "clip_0002" / "labels.json").is_file()
    (out / "clip_0003").mkdir()  # a folder we did not write is never overwritten
    assert main(argv[:4] + ["4"] + argv[5:]) == 2


def test_cli_reports_a_bad_rig(tmp_path: Path, capsys) -> None:
    from perception.sim.cli import main

    bad = tmp_path / "rig.yaml"
    bad.write_text("schema_version: 1\ncameras: []\n")
    assert main(["--rig", str(bad), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "cameras" in capsys.readouterr().err


def test_import_is_light() -> None:
    code = (
        "import sys, perception.sim; "
        "assert 'torch' not in sys.modules and 'cv2' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
