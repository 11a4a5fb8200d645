"""Cross-camera association of 2D tracks (autolabel.multicam) on a crafted two-camera drive, plus the ground-plane
lifting it rests on and the handover metric that scores it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autolabel.multicam import CrossCameraConfig, associate_cameras, lift_tracks, polygon_distance, tracks_to_boxes3d
from autolabel.tracking3d import project_boxes_to_cameras
from perception.clip import DriveClip
from perception.geometry import invert_se3, se3, transform_points, yaw_matrix
from perception.labels import DRIVING_CLASSES, Boxes2D, Boxes3D
from perception.metrics import camera_handover_ids
from perception.rig import Camera, Rig

WIDTH, HEIGHT, FRAMES, DT = 320, 200, 40, 0.1
CAR, PEDESTRIAN = DRIVING_CLASSES.index("car"), DRIVING_CLASSES.index("pedestrian")
# world objects: x, y (m) at t = 0, vx, vy (m/s), class, size (l, w, h)
OBJECTS = [
    (14.0, 6.0, 0.0, 0.0, CAR, (4.6, 1.9, 1.6)),  # parked on the left: front camera, then the left one as we pass
    (12.0, 9.0, -0.4, -1.0, PEDESTRIAN, (0.7, 0.7, 1.8)),  # walking towards the road, left of the ego
    (30.0, -2.0, 4.0, 0.0, CAR, (4.5, 1.8, 1.5)),  # ahead in the front camera only
    (9.0, 2.5, 0.0, 0.0, PEDESTRIAN, (0.7, 0.7, 1.7)),  # standing, seen by both cameras near the overlap
]


def _camera(name: str, yaw_deg: float) -> Camera:
    """A 90-degree pinhole looking along ``yaw_deg`` in the ego frame, 1.5 m high, level."""
    optical_from_body = np.array([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]])  # x fwd, y left, z up -> OpenCV axes
    rotation = yaw_matrix(np.radians(yaw_deg)) @ optical_from_body.T
    K = np.array([[WIDTH / 2, 0, WIDTH / 2], [0, WIDTH / 2, HEIGHT / 2], [0, 0, 1]])
    return Camera(name, WIDTH, HEIGHT, K, se3(rotation, [1.5, 0.0, 1.5]))


def _clip(tmp_path: Path) -> DriveClip:
    rig = Rig([_camera("front", 0.0), _camera("left", 70.0)])
    times = np.arange(FRAMES) * DT
    poses = np.stack([se3(yaw_matrix(0.02 * t), [5.0 * t, 0.0, 0.0]) for t in times])
    capture = {"front": times, "left": times + 0.01}
    pose_times = np.arange(FRAMES + 1) * DT
    pose_stream = np.stack([se3(yaw_matrix(0.02 * t), [5.0 * t, 0.0, 0.0]) for t in pose_times])
    return DriveClip(tmp_path, rig, {}, times, poses, capture, pose_times, pose_stream)


def _truth(clip: DriveClip) -> tuple[list[Boxes3D], list[dict[str, Boxes2D]]]:
    """Ego-frame 3D boxes and their projections per camera (track id = object index + 1)."""
    boxes3d, boxes2d = [], []
    for frame, t in enumerate(clip.timestamps):
        ego_from_world = invert_se3(clip.world_from_ego[frame])
        ego_yaw = np.arctan2(clip.world_from_ego[frame][1, 0], clip.world_from_ego[frame][0, 0])
        centres, sizes, yaws, classes = [], [], [], []
        for x, y, vx, vy, cls, size in OBJECTS:
            world = np.array([x + vx * t, y + vy * t, size[2] / 2])
            centres.append(transform_points(ego_from_world, world[None])[0])
            sizes.append(size)
            yaws.append((np.arctan2(vy, vx) if vx or vy else 0.0) - ego_yaw)
            classes.append(cls)
        boxes = Boxes3D(
            center=np.array(centres), size=np.array(sizes), yaw=np.array(yaws), class_id=np.array(classes),
            track_id=np.arange(1, len(OBJECTS) + 1),
        )  # fmt: skip
        boxes3d.append(boxes)
        boxes2d.append(project_boxes_to_cameras(boxes, clip, frame))
    return boxes3d, boxes2d


def _per_camera_tracks(truth2d: list[dict[str, Boxes2D]], rng: np.random.Generator, jitter_px: float = 1.0):
    """What the single-camera chain gives: per camera, its own ids (camera offset + object), jittered boxes."""
    out: dict[str, list[Boxes2D]] = {}
    for offset, camera in ((100, "front"), (200, "left")):
        frames = []
        for boxes in truth2d:
            b = boxes[camera]
            xyxy = b.xyxy + rng.normal(0.0, jitter_px, b.xyxy.shape) * (b.truncation[:, None] == 0)
            frames.append(
                Boxes2D(xyxy=xyxy, class_id=b.class_id, score=np.full(len(b), 0.8), track_id=b.track_id + offset)
            )
        out[camera] = frames
    return out


@pytest.fixture()
def scene(tmp_path):
    clip = _clip(tmp_path)
    truth3d, truth2d = _truth(clip)
    return clip, truth3d, truth2d


def test_ground_points_hit_the_ground_below_the_horizon() -> None:
    camera = _camera("front", 0.0)
    # a point 10 m ahead on the ground projects to a pixel whose ray comes back to it
    uv, _ = camera.project_ego(np.array([[10.0, 1.0, 0.0]]))
    points, hit = camera.ground_points(np.r_[uv, [[WIDTH / 2, 10.0]]])
    assert hit.tolist() == [True, False]  # the second pixel looks above the horizon
    np.testing.assert_allclose(points[0], [10.0, 1.0, 0.0], atol=1e-6)


def test_polygon_distance_points_segments_triangles() -> None:
    assert polygon_distance(np.array([[0.0, 0]]), np.array([[3.0, 4]])) == pytest.approx(5.0)
    assert polygon_distance(np.array([[0.0, 0], [2, 0]]), np.array([[1.0, -1], [1, 1]])) == 0.0  # crossing
    triangle = np.array([[0.0, 0], [4, -2], [4, 2]])
    assert polygon_distance(np.array([[3.0, 0]]), triangle) == 0.0  # inside
    assert polygon_distance(np.array([[6.0, 0]]), triangle) == pytest.approx(2.0)


def test_objects_crossing_between_cameras_get_one_id(scene) -> None:
    clip, _, truth2d = scene
    seen = {camera: {int(t) for b in truth2d for t in b[camera].track_id} for camera in ("front", "left")}
    shared = seen["front"] & seen["left"]
    assert {1, 2, 4} <= shared and 3 not in seen["left"]  # the crafted drive does what it says
    per_camera = _per_camera_tracks(truth2d, np.random.default_rng(0))
    config = CrossCameraConfig()
    lifted = [t for camera in per_camera for t in lift_tracks(clip, camera, per_camera[camera], config)]
    ids = associate_cameras(lifted, config, classes=DRIVING_CLASSES, camera_order=["front", "left"])
    for obj in shared:
        assert ids[("front", 100 + obj)] == ids[("left", 200 + obj)], f"object {obj} got two ids"
    objects = {obj: ids[("front", 100 + obj)] for obj in seen["front"]}
    assert len(set(objects.values())) == len(objects), "two objects merged into one id"
    assert sorted(set(ids.values())) == list(range(1, len(objects) + 1))  # compact, in order of appearance

    # the metric agrees: every handover keeps its id; with per-camera ids every handover is a switch
    predicted = [
        {c: b.with_fields(track_id=np.array([ids[(c, int(t))] for t in b.track_id])) for c, b in frame.items()}
        for frame in ({c: per_camera[c][i] for c in per_camera} for i in range(FRAMES))
    ]
    after = camera_handover_ids(predicted, truth2d)
    before = camera_handover_ids([{c: per_camera[c][i] for c in per_camera} for i in range(FRAMES)], truth2d)
    assert after["handovers"] == before["handovers"] >= 3
    assert after["handover_switches"] == 0 and before["handover_switches"] == before["handovers"]
    assert after["objects_single_id"] == after["objects_multi_camera"] == len(shared)
    assert after["false_merges"] == 0


def test_different_objects_in_the_overlap_stay_apart(scene) -> None:
    """Two pedestrians 3 m apart, each seen by both cameras: four tracks, two ids."""
    clip, _, truth2d = scene
    per_camera = _per_camera_tracks(truth2d, np.random.default_rng(1))
    config = CrossCameraConfig()
    lifted = [t for camera in per_camera for t in lift_tracks(clip, camera, per_camera[camera], config)]
    ids = associate_cameras(lifted, config, classes=DRIVING_CLASSES)
    assert ids[("front", 102)] != ids[("front", 104)]
    assert ids[("left", 202)] != ids[("left", 204)]
    assert ids[("front", 102)] != ids[("left", 204)] and ids[("front", 104)] != ids[("left", 202)]


def test_disabled_association_keeps_ids_per_camera(scene) -> None:
    """Without a rig that sees the ground (a plain video: camera at the origin, no extrinsic) nothing is merged."""
    clip, _, truth2d = scene
    per_camera = _per_camera_tracks(truth2d, np.random.default_rng(2))
    flat_rig = Rig([Camera(c.name, c.width, c.height, c.K) for c in clip.rig])
    video_like = DriveClip(
        clip.path, flat_rig, {}, clip.timestamps, clip.world_from_ego, clip.camera_timestamps,
        clip.timestamps, clip.world_from_ego,
    )  # fmt: skip
    config = CrossCameraConfig()
    lifted = [t for camera in per_camera for t in lift_tracks(video_like, camera, per_camera[camera], config)]
    ids = associate_cameras(lifted, config, classes=DRIVING_CLASSES)
    assert len(set(ids.values())) == len(ids)


def test_3d_boxes_from_lifted_tracks(scene) -> None:
    clip, truth3d, truth2d = scene
    per_camera = _per_camera_tracks(truth2d, np.random.default_rng(3), jitter_px=0.5)
    config = CrossCameraConfig()
    lifted = [t for camera in per_camera for t in lift_tracks(clip, camera, per_camera[camera], config)]
    ids = associate_cameras(lifted, config, classes=DRIVING_CLASSES)
    boxes = tracks_to_boxes3d(lifted, ids, clip, DRIVING_CLASSES, config)
    assert len(boxes) == FRAMES
    errors, yaw_errors = {}, {}
    for pred, gt in zip(boxes, truth3d):
        for k in range(len(pred)):
            distance = np.linalg.norm(gt.center[:, :2] - pred.center[k, :2], axis=1)
            j = int(np.argmin(distance))
            assert pred.class_id[k] == gt.class_id[j]
            errors.setdefault(int(gt.track_id[j]), []).append(distance[j])
            if gt.class_id[j] == PEDESTRIAN and OBJECTS[j][2:4] != (0.0, 0.0):
                yaw_errors.setdefault(int(gt.track_id[j]), []).append(
                    abs(np.angle(np.exp(1j * (pred.yaw[k] - gt.yaw[j]))))
                )
    assert set(errors) == {1, 2, 3, 4}  # every object placed in 3D
    for obj, values in errors.items():
        assert np.median(values) < 1.0, f"object {obj}: median centre error {np.median(values):.2f} m"
    assert np.median(yaw_errors[2]) < 0.3  # walking pedestrian: heading from its motion
    assert boxes[20].size[0, 0] > 0 and np.all(boxes[20].center[:, 2] > 0)


def _along_ray_errors(boxes: list[Boxes3D], truth3d: list[Boxes3D]) -> np.ndarray:
    """Signed range error (m, negative: placed short of the truth, as seen from the ego) of every 3D box."""
    errors = []
    for pred, gt in zip(boxes, truth3d):
        for k in range(len(pred)):
            j = int(np.argmin(np.linalg.norm(gt.center[:, :2] - pred.center[k, :2], axis=1)))
            errors.append(np.linalg.norm(pred.center[k, :2]) - np.linalg.norm(gt.center[j, :2]))
    return np.asarray(errors)


def test_bottom_offset_undoes_a_detector_whose_boxes_sit_low(scene) -> None:
    clip, truth3d, truth2d = scene
    per_camera = _per_camera_tracks(truth2d, np.random.default_rng(3), jitter_px=0.0)
    low = {  # a detector whose boxes end 3 px below the object's ground contact (bottom edge only)
        camera: [
            Boxes2D(xyxy=b.xyxy + np.array([0, 0, 0, 3.0]), class_id=b.class_id, score=b.score, track_id=b.track_id)
            for b in frames
        ]
        for camera, frames in per_camera.items()
    }

    def errors(tracks, config):
        lifted = [t for camera in tracks for t in lift_tracks(clip, camera, tracks[camera], config)]
        ids = associate_cameras(lifted, config, classes=DRIVING_CLASSES)
        return _along_ray_errors(tracks_to_boxes3d(lifted, ids, clip, DRIVING_CLASSES, config), truth3d)

    exact, biased = errors(per_camera, CrossCameraConfig()), errors(low, CrossCameraConfig())
    undone = errors(low, CrossCameraConfig(bottom_offset_px=3.0))
    assert np.median(biased) < np.median(exact) - 0.5  # low boxes put objects short
    assert np.median(np.abs(undone - np.median(exact))) < 0.1  # the offset puts them back
    with pytest.raises(ValueError, match="bottom_offset_px"):
        CrossCameraConfig(bottom_offset_px=float("nan"))
    with pytest.raises(ValueError, match="size_priors_m"):
        CrossCameraConfig(size_priors_m={"car": (4.0, 0.0, 1.5)})
