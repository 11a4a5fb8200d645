"""Each 3D refinement step moves the labels toward the truth on a crafted drive (and can be switched off).

The scene: the ego drives straight at 8 m/s; a parked car, a car driving ahead, a crossing pedestrian. The fake
detector adds the errors a per-frame teacher makes: position noise, size noise, noisy velocities, a wrong class on
some frames, missed frames, a late start, and a short spurious track.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from autolabel.tracking3d import Tracker3DConfig, track_and_refine_3d
from perception.geometry import invert_se3, se3, transform_points, yaw_matrix
from perception.labels import DRIVING_CLASSES, Boxes3D

FRAMES, DT = 40, 0.1
CAR, TRUCK, PEDESTRIAN = DRIVING_CLASSES.index("car"), DRIVING_CLASSES.index("truck"), 3
# world: x, y, vx, vy, class, size, detected frames
PARKED = (30.0, 4.0, 0.0, 0.0, CAR, (4.5, 1.9, 1.6), range(12, 24))
AHEAD = (12.0, -3.5, 6.0, 0.0, CAR, (4.5, 1.9, 1.6), [f for f in range(6, FRAMES) if f not in (20, 21, 22)])
WALKER = (20.0, 8.0, 0.0, -1.2, PEDESTRIAN, (0.7, 0.7, 1.8), range(FRAMES))
OBJECTS = (PARKED, AHEAD, WALKER)
# keep every track unless a test says otherwise; 0.3 m detection noise spreads a parked car over ~0.8 m
LOOSE = Tracker3DConfig(min_length=1, min_track_score=0.0, stationary_max_spread_m=1.0)


def _pose(frame: int) -> np.ndarray:
    return se3(yaw_matrix(0.0), [8.0 * frame * DT, 0.0, 0.0])


def _truth(index: int, frame: int) -> np.ndarray:
    x, y, vx, vy, *_ = OBJECTS[index]
    t = frame * DT
    return np.array([x + vx * t, y + vy * t])


def _scene(seed: int = 0, spurious: bool = False):
    rng = np.random.default_rng(seed)
    poses = np.stack([_pose(f) for f in range(FRAMES)])
    detections = []
    for frame in range(FRAMES):
        ego_from_world = invert_se3(poses[frame])
        rows = []
        for index, (_, _, vx, vy, cls, size, seen) in enumerate(OBJECTS):
            if frame not in seen:
                continue
            world = np.r_[_truth(index, frame), size[2] / 2]
            centre = transform_points(ego_from_world, world[None])[0] + np.r_[rng.normal(0, 0.3, 2), 0]
            noisy_size = np.asarray(size) * rng.uniform(0.8, 1.2, 3)
            label = TRUCK if (index == 1 and frame % 3 == 0) else cls  # the car ahead looks like a truck at times
            velocity = np.array([vx, vy]) + rng.normal(0, 2.0, 2)
            rows.append((centre, noisy_size, 0.0, velocity, label, 0.8))
        if spurious and 30 <= frame < 32:  # a two-frame ghost pedestrian
            rows.append((np.array([6.0, -9.0, 0.9]), np.array([0.7, 0.7, 1.8]), 0.0, np.zeros(2), PEDESTRIAN, 0.45))
        columns = list(zip(*rows))
        detections.append(
            Boxes3D(
                center=np.stack(columns[0]),
                size=np.stack(columns[1]),
                yaw=np.array(columns[2]),
                velocity=np.stack(columns[3]),
                class_id=np.array(columns[4], dtype=np.int64),
                score=np.array(columns[5], dtype=np.float32),
            )
        )
    return poses, detections


def _match(poses, tracked) -> list[tuple[int, int, int, Boxes3D]]:
    """(frame, object index, row, boxes) of every output box within 2 m of a true object (-1 when none)."""
    out = []
    for frame, boxes in enumerate(tracked):
        world = transform_points(poses[frame], boxes.center) if len(boxes) else np.zeros((0, 3))
        for row in range(len(boxes)):
            distances = [np.linalg.norm(world[row, :2] - _truth(i, frame)) for i in range(len(OBJECTS))]
            index = int(np.argmin(distances))
            out.append((frame, index if distances[index] < 2.0 else -1, row, boxes))
    return out


def _run(config: Tracker3DConfig, **scene) -> tuple[np.ndarray, list[Boxes3D]]:
    poses, detections = _scene(**scene)
    tracked, _ = track_and_refine_3d(detections, poses, np.arange(FRAMES) * DT, classes=DRIVING_CLASSES, config=config)
    return poses, tracked


def _toggle(**changes) -> tuple[list, list]:
    """Matches with the step on (LOOSE + changes) and off (the listed booleans negated / numbers zeroed)."""
    off = {k: (not v) if isinstance(v, bool) else type(v)() for k, v in changes.items()}
    return _match(*_run(dataclasses.replace(LOOSE, **changes))), _match(*_run(dataclasses.replace(LOOSE, **off)))


def test_class_vote_gives_the_car_ahead_one_class() -> None:
    on, off = _toggle(class_vote=True)

    def wrong(matches) -> int:
        return sum(int(b.class_id[r]) != OBJECTS[i][4] for _, i, r, b in matches if i == 1)

    assert wrong(on) == 0 < wrong(off)


def test_rigid_size_and_smoothing_reduce_size_and_position_errors() -> None:
    def size_error(matches) -> float:
        return float(np.mean([np.abs(b.size[r] - OBJECTS[i][5]).sum() for _, i, r, b in matches if i >= 0]))

    on, off = _toggle(rigid_size=True)
    assert size_error(on) < 0.6 * size_error(off)

    def position_error(poses, matches) -> float:
        errors = []
        for frame, i, r, b in matches:
            if i == 1:  # the moving car: smoothing matters where nothing is held
                errors.append(
                    np.linalg.norm(transform_points(poses[frame], b.center[r : r + 1])[0, :2] - _truth(1, frame))
                )
        return float(np.mean(errors))

    poses = _scene()[0]
    smooth, raw = _toggle(smooth=True)
    assert position_error(poses, smooth) < 0.8 * position_error(poses, raw)


def test_trajectory_velocity_beats_the_detector_velocity() -> None:
    def velocity_error(matches) -> float:
        errors = []
        for _, i, r, b in matches:
            if i >= 0:
                errors.append(np.linalg.norm(b.velocity[r] - np.array(OBJECTS[i][2:4])))
        return float(np.mean(errors))

    on, off = _toggle(trajectory_velocity=True)
    assert velocity_error(on) < 0.5 * velocity_error(off)


def test_stationary_hold_labels_the_parked_car_where_it_was_not_detected() -> None:
    poses = _scene()[0]
    in_range = [f for f in range(FRAMES) if np.linalg.norm(_truth(0, f) - poses[f][:2, 3]) <= 25.0]
    held = _match(*_run(dataclasses.replace(LOOSE, hold_range_m=25.0)))
    plain = _match(*_run(dataclasses.replace(LOOSE, hold_stationary=False)))
    frames_held = {f for f, i, _, _ in held if i == 0}
    frames_plain = {f for f, i, _, _ in plain if i == 0}
    assert frames_plain == set(PARKED[6])
    assert frames_held == set(in_range) | set(PARKED[6]) and len(frames_held) > len(frames_plain) + 5


def test_speed_test_holds_a_jittering_parked_car_and_not_the_walker() -> None:
    """0.3 m of detection noise spreads the parked car over more than 0.4 m: only the straight-line fit holds it."""
    tight = dataclasses.replace(LOOSE, stationary_max_spread_m=0.4)

    def speeds(matches, index: int) -> np.ndarray:
        return np.array([np.linalg.norm(b.velocity[r]) for _, i, r, b in matches if i == index])

    held = _match(*_run(dataclasses.replace(tight, stationary_max_speed=0.5)))
    plain = _match(*_run(tight))
    assert speeds(plain, 0).max() > 0.2  # the spread test alone leaves it moving with the noise
    assert np.all(speeds(held, 0) == 0.0)
    assert abs(np.median(speeds(held, 2)) - 1.2) < 0.3 and np.all(speeds(held, 2) > 0.5)  # the walker still walks
    too_short = len(PARKED[6]) + 1
    short = _match(*_run(dataclasses.replace(tight, stationary_max_speed=0.5, stationary_min_frames=too_short)))
    assert speeds(short, 0).max() > 0.2  # a track shorter than stationary_min_frames is not judged by its speed


def test_gap_filling_and_extrapolation_add_the_missed_frames_of_the_car_ahead() -> None:
    def frames_of(matches) -> set[int]:
        return {f for f, i, _, _ in matches if i == 1}

    filled, unfilled = _toggle(max_fill_gap=10)
    assert {20, 21, 22} <= frames_of(filled) and not {20, 21, 22} & frames_of(unfilled)
    extended = _match(*_run(dataclasses.replace(LOOSE, extrapolate_s=0.3)))
    assert {3, 4, 5} <= frames_of(extended) and not {0, 1, 2} & frames_of(extended)
    assert not {3, 4, 5} & frames_of(filled)


@pytest.mark.parametrize("step", ["min_length", "class_min_score"])
def test_short_or_weak_tracks_are_dropped(step: str) -> None:
    config = {"min_length": {"min_length": 3}, "class_min_score": {"class_min_score": {"pedestrian": 0.5}}}[step]
    kept = _match(*_run(dataclasses.replace(LOOSE, **config), spurious=True))
    loose = _match(*_run(LOOSE, spurious=True))
    ghosts = sum(i == -1 for _, i, _, _ in loose)
    assert ghosts >= 2 and sum(i == -1 for _, i, _, _ in kept) == 0
    assert sum(i == 2 for _, i, _, _ in kept) == sum(i == 2 for _, i, _, _ in loose)  # the real walker stays
    with pytest.raises(ValueError, match="unknown classes"):
        _run(dataclasses.replace(LOOSE, class_min_score={"unicorn": 0.5}))
