"""World-frame 3D tracking on a synthetic drive (moving, turning ego): one id per object, ego-frame output."""

from __future__ import annotations

import numpy as np

from autolabel.tracking3d import Tracker3DConfig, track_and_refine_3d
from perception.geometry import invert_se3, se3, transform_points, yaw_matrix
from perception.labels import DRIVING_CLASSES, Boxes3D

# world boxes: start x, y, velocity vx, vy (m/s), class
OBJECTS = [
    (20.0, 3.0, 0.0, 0.0, 0),  # parked car
    (10.0, -3.5, 6.0, 0.0, 0),  # car driving the same way
    (25.0, 6.0, 0.0, -1.2, 3),  # pedestrian crossing
]
FRAMES, DT = 40, 0.1


def _ego_pose(t: float) -> np.ndarray:
    yaw = 0.15 * t  # gently turning left
    return se3(yaw_matrix(yaw), [8.0 * t, 0.5 * t * t, 0.0])


def _scene(seed: int = 0):
    rng = np.random.default_rng(seed)
    poses, detections, truth = [], [], []
    for frame in range(FRAMES):
        t = frame * DT
        world_from_ego = _ego_pose(t)
        ego_from_world = invert_se3(world_from_ego)
        ego_yaw = np.arctan2(world_from_ego[1, 0], world_from_ego[0, 0])
        rows, ids = [], []
        for index, (x, y, vx, vy, cls) in enumerate(OBJECTS):
            if index == 1 and frame in (15, 16, 17):  # missed detections
                continue
            world = np.array([x + vx * t, y + vy * t, 0.8])
            ego = transform_points(ego_from_world, world[None])[0] + rng.normal(0, 0.15, 3) * [1, 1, 0]
            rows.append((ego, [4.5, 1.9, 1.6] if cls == 0 else [0.7, 0.7, 1.8], -ego_yaw, cls))
            ids.append(index)
        detections.append(
            Boxes3D(
                center=np.stack([r[0] for r in rows]),
                size=np.array([r[1] for r in rows]),
                yaw=np.array([r[2] for r in rows]),
                class_id=np.array([r[3] for r in rows]),
                score=np.full(len(rows), 0.8, np.float32),
            )
        )
        poses.append(world_from_ego)
        truth.append(ids)
    return np.stack(poses), detections, truth


def test_one_track_id_per_object_on_moving_ego() -> None:
    poses, detections, _ = _scene()
    tracked, uncertainty = track_and_refine_3d(
        detections, poses, np.arange(FRAMES) * DT, classes=DRIVING_CLASSES, config=Tracker3DConfig()
    )
    assert len(tracked) == FRAMES and uncertainty.shape == (FRAMES,)
    ids_per_object: dict[int, set[int]] = {0: set(), 1: set(), 2: set()}
    for frame, boxes in enumerate(tracked):
        assert len(boxes) == 3, frame  # gaps filled, no duplicates
        world = transform_points(poses[frame], boxes.center)
        for row in range(len(boxes)):
            t = frame * DT
            truths = [np.array([x + vx * t, y + vy * t]) for x, y, vx, vy, _ in OBJECTS]
            nearest = int(np.argmin([np.linalg.norm(world[row, :2] - p) for p in truths]))
            assert np.linalg.norm(world[row, :2] - truths[nearest]) < 0.5
            ids_per_object[nearest].add(int(boxes.track_id[row]))
    assert all(len(ids) == 1 for ids in ids_per_object.values()), ids_per_object
    assert len(set().union(*ids_per_object.values())) == 3


def test_parked_car_is_held_still_and_velocities_are_world_consistent() -> None:
    poses, detections, _ = _scene(seed=1)
    tracked, _ = track_and_refine_3d(detections, poses, np.arange(FRAMES) * DT, classes=DRIVING_CLASSES)
    parked, moving = [], []
    for frame, boxes in enumerate(tracked):
        world = transform_points(poses[frame], boxes.center)
        for row in range(len(boxes)):
            velocity_world = poses[frame][:2, :2] @ boxes.velocity[row]
            if np.linalg.norm(world[row, :2] - [20.0, 3.0]) < 1.0:
                parked.append(world[row, :2])
                assert np.allclose(boxes.velocity[row], 0.0)
            elif boxes.class_id[row] == 0:
                moving.append(velocity_world)
    assert np.ptp(np.array(parked), axis=0).max() < 1e-6  # exactly still in the world
    np.testing.assert_allclose(np.median(np.array(moving), axis=0), [6.0, 0.0], atol=0.5)
