"""3D multi-object tracking in the WORLD frame (ego poses), offline refinement, and projection into cameras.

Per frame, ego-frame boxes are moved to the world frame with ``world_from_ego``; tracks are associated by Hungarian
matching on BEV centre distance normalised by a per-class gate (metres), with a constant-velocity Kalman filter in
world x, y. Offline, each kept track is RTS-smoothed (past and future frames) in world x, y, z and yaw, gets one size
(median), is held still when it does not move, gaps are filled, and everything goes back to each frame's ego frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from autolabel.refine.smooth import rts_smooth_series
from autolabel.tracking.association import match
from perception.geometry import invert_se3, transform_points, wrap_angle, yaw_from_matrix
from perception.labels import Boxes2D, Boxes3D

__all__ = [
    "DEFAULT_GATES_M",
    "Track3D",
    "Tracker3DConfig",
    "WorldTracker3D",
    "boxes_to_world",
    "project_boxes_to_cameras",
    "track_and_refine_3d",
]

DEFAULT_GATES_M = {"car": 3.0, "truck": 4.0, "bus": 4.0, "pedestrian": 1.5, "cyclist": 2.0, "traffic_cone": 1.0}


@dataclass(frozen=True)
class Tracker3DConfig:
    """Knobs of the world-frame tracker and its offline refinement (metres, seconds, detector scores in [0,1]).

    Association: Hungarian on the centre distance over the track class's gate (``gates_m``), plus
    ``cross_class_cost`` when the detection's class differs from the track's (a per-frame teacher confuses car and
    truck, pedestrian and cyclist; None = never across classes).

    Every refinement step can be switched off, so its effect can be measured (``benchmarks/bench_data_engine.py``):
    ``class_vote`` one class per track (score-weighted vote; off: each box keeps its detector class), ``rigid_size``
    one size per track (median; off: per-frame sizes), ``smooth`` RTS-smoothed world position and yaw (off:
    detections, linear in gaps), ``trajectory_velocity`` velocity from the smoothed world trajectory (off: the
    detector's per-frame velocity), ``hold_stationary`` a track that does not move (its centres' 10-90 % spread
    under ``stationary_max_spread_m``, or the speed of a straight-line fit to them under ``stationary_max_speed``) gets
    one pose, held over its gaps
    and over every frame in which it lies within ``hold_range_m`` of the ego (0: only between its first and last
    detection), ``max_fill_gap`` frames of a moving track's gaps filled (0: none), ``extrapolate_s`` seconds a moving
    track is continued before its first and after its last detection (constant velocity), ``min_length`` and
    ``min_track_score`` drop short or weak tracks, and ``class_min_score`` is a per-class floor on the final box
    scores (choose it on a labelled split: ``autolabel calibrate``).

    Args:
        gates_m: association gate per class (metres of centre distance)
        default_gate_m: gate of classes not in gates_m (m)
        min_score: detections below this score are ignored
        new_track_score: a detection starts a new track only from this score on
        max_lost_s: seconds a track survives without a detection
        min_hits: detections a track needs before it is confirmed
        accel_std: constant-velocity Kalman filter process noise (m/s^2)
        measurement_std: Kalman filter measurement noise (m)
        cross_class_cost: extra cost of matching a detection of another class (None: never across classes)
        class_vote: one class per track (score-weighted vote)
        rigid_size: one box size per track (median)
        smooth: RTS-smoothed world position and yaw
        trajectory_velocity: velocity from the smoothed world trajectory
        hold_stationary: a track that does not move gets one pose
        stationary_max_spread_m: centre spread (m) under which a track counts as stationary
        stationary_max_speed: least-squares straight-line speed (m/s) under which a track of at least
            stationary_min_frames detections counts as stationary, however much its centres jitter (None: off)
        stationary_min_frames: detections a track needs for the speed test
        hold_range_m: a stationary track is also held on every frame within this distance of the ego (m)
        max_fill_gap: longest gap (frames) of a moving track that is filled
        extrapolate_s: seconds a moving track is continued before its first and after its last detection
        min_length: tracks with fewer frames are dropped
        min_track_score: tracks whose track score (mean of the better half of the scores) is lower are dropped
        class_min_score: per-class floor on the final box scores (autolabel calibrate)
    """

    gates_m: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_GATES_M))
    default_gate_m: float = 2.5
    min_score: float = 0.2
    new_track_score: float = 0.4
    max_lost_s: float = 1.0
    min_hits: int = 2
    accel_std: float = 3.0
    measurement_std: float = 0.3
    cross_class_cost: float | None = 0.3
    class_vote: bool = True
    rigid_size: bool = True
    smooth: bool = True
    trajectory_velocity: bool = True
    hold_stationary: bool = True
    stationary_max_spread_m: float = 0.4
    stationary_max_speed: float | None = None
    stationary_min_frames: int = 5
    hold_range_m: float = 0.0
    max_fill_gap: int = 10
    extrapolate_s: float = 0.0
    min_length: int = 3
    min_track_score: float = 0.3
    class_min_score: dict[str, float] = field(default_factory=dict)


def _ego_yaw(world_from_ego: np.ndarray) -> np.ndarray:
    return np.array([yaw_from_matrix(m[:3, :3]) for m in world_from_ego.reshape(-1, 4, 4)])


def boxes_to_world(boxes: Boxes3D, world_from_ego: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre (N,3), yaw (N,), velocity (N,2)) in the world frame for ego-frame boxes at one pose."""
    centre = transform_points(world_from_ego, boxes.center) if len(boxes) else np.zeros((0, 3))
    yaw = wrap_angle(boxes.yaw + yaw_from_matrix(world_from_ego[:3, :3]))
    velocity = boxes.velocity @ world_from_ego[:2, :2].T
    return centre, np.asarray(yaw, dtype=np.float64).reshape(-1), velocity


@dataclass
class Track3D:
    """One object's observations: frames, world centre (T,3), size (T,3), world yaw (T,), world velocity (T,2),
    score (T,), class (T,)."""

    track_id: int
    frames: list[int] = field(default_factory=list)
    centre: list[np.ndarray] = field(default_factory=list)
    size: list[np.ndarray] = field(default_factory=list)
    yaw: list[float] = field(default_factory=list)
    velocity: list[np.ndarray] = field(default_factory=list)
    score: list[float] = field(default_factory=list)
    class_id: list[int] = field(default_factory=list)
    mean: np.ndarray = field(default_factory=lambda: np.zeros(4))  # x, y, vx, vy (world, m and m/s)
    covariance: np.ndarray = field(default_factory=lambda: np.eye(4))
    last_time: float = 0.0
    confirmed: bool = False

    def voted_class(self) -> int:
        """The class with the largest total detector score among the observations."""
        return int(np.bincount(np.asarray(self.class_id), weights=np.asarray(self.score) + 1e-3).argmax())

    def add(
        self,
        frame: int,
        centre: np.ndarray,
        size: np.ndarray,
        yaw: float,
        score: float,
        class_id: int,
        velocity: np.ndarray | None = None,
    ) -> None:
        self.frames.append(frame)
        self.centre.append(centre)
        self.size.append(size)
        self.yaw.append(yaw)
        self.velocity.append(np.zeros(2) if velocity is None else np.asarray(velocity, dtype=np.float64))
        self.score.append(score)
        self.class_id.append(class_id)


class WorldTracker3D:
    """Online association in the world frame: CV Kalman in x, y; Hungarian on gated centre distance per class."""

    def __init__(self, classes: Sequence[str], config: Tracker3DConfig = Tracker3DConfig()) -> None:
        self.config = config
        self.gates = np.array([config.gates_m.get(name, config.default_gate_m) for name in classes], dtype=np.float64)
        self.live: list[Track3D] = []
        self.finished: list[Track3D] = []
        self._next_id = 1
        self._time: float | None = None

    def _gate(self, class_id: np.ndarray) -> np.ndarray:
        inside = (class_id >= 0) & (class_id < len(self.gates))
        return np.where(inside, self.gates[np.clip(class_id, 0, len(self.gates) - 1)], self.config.default_gate_m)

    def _predict(self, dt: float) -> None:
        transition = np.eye(4)
        transition[0, 2] = transition[1, 3] = dt
        q = self.config.accel_std**2
        block = np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]]) * q
        noise = np.zeros((4, 4))
        noise[np.ix_([0, 2], [0, 2])] = block
        noise[np.ix_([1, 3], [1, 3])] = block
        for track in self.live:
            track.mean = transition @ track.mean
            track.covariance = transition @ track.covariance @ transition.T + noise

    def _update(self, track: Track3D, xy: np.ndarray) -> None:
        h = np.zeros((2, 4))
        h[0, 0] = h[1, 1] = 1.0
        r = np.eye(2) * self.config.measurement_std**2
        innovation_cov = h @ track.covariance @ h.T + r
        gain = track.covariance @ h.T @ np.linalg.inv(innovation_cov)
        track.mean = track.mean + gain @ (xy - h @ track.mean)
        track.covariance = (np.eye(4) - gain @ h) @ track.covariance

    def update(self, frame: int, time: float, boxes: Boxes3D, world_from_ego: np.ndarray) -> None:
        """Advance to one frame's ego-frame boxes (time in seconds, world_from_ego (4,4))."""
        config = self.config
        dt = 0.0 if self._time is None else max(time - self._time, 1e-6)
        self._time = time
        self._predict(dt)
        keep = boxes.score >= config.min_score
        boxes = boxes[keep]
        centre, yaw, velocity = boxes_to_world(boxes, world_from_ego)
        predicted = np.array([t.mean[:2] for t in self.live]).reshape(-1, 2)
        distance = np.linalg.norm(predicted[:, None, :] - centre[None, :, :2], axis=2)
        track_class = np.array([t.voted_class() for t in self.live], dtype=np.int64)
        cost = distance / self._gate(track_class)[:, None]
        other_class = track_class[:, None] != boxes.class_id[None, :]
        penalty = 1e3 if config.cross_class_cost is None else config.cross_class_cost
        cost = np.where(other_class, cost + penalty, cost)
        pairs, free_tracks, free_boxes = match(cost, 1.0)
        for row, col in pairs:
            track = self.live[row]
            self._update(track, centre[col, :2])
            track.add(
                frame,
                centre[col],
                boxes.size[col],
                float(yaw[col]),
                float(boxes.score[col]),
                int(boxes.class_id[col]),
                velocity[col],
            )
            track.last_time = time
            if len(track.frames) >= config.min_hits:
                track.confirmed = True
        for row in free_tracks:
            track = self.live[row]
            if not track.confirmed or time - track.last_time > config.max_lost_s:
                track.last_time = -np.inf  # mark for removal
        for col in free_boxes:
            if boxes.score[col] < config.new_track_score:
                continue
            track = Track3D(self._next_id)
            self._next_id += 1
            track.mean = np.array([centre[col, 0], centre[col, 1], velocity[col, 0], velocity[col, 1]])
            track.covariance = np.diag([config.measurement_std**2] * 2 + [4.0, 4.0])
            track.add(
                frame,
                centre[col],
                boxes.size[col],
                float(yaw[col]),
                float(boxes.score[col]),
                int(boxes.class_id[col]),
                velocity[col],
            )
            track.last_time = time
            track.confirmed = config.min_hits <= 1
            self.live.append(track)
        dead = [t for t in self.live if t.last_time == -np.inf]
        self.finished += [t for t in dead if t.confirmed]
        self.live = [t for t in self.live if t.last_time != -np.inf]

    def tracks(self) -> list[Track3D]:
        """Every confirmed track, by id."""
        return sorted(self.finished + [t for t in self.live if t.confirmed], key=lambda t: t.track_id)


def _track_score(scores: np.ndarray) -> float:
    ordered = np.sort(scores)[::-1]
    return float(ordered[: max(1, int(np.ceil(0.5 * len(ordered))))].mean()) if len(ordered) else 0.0


def _interp_rows(out_frames: np.ndarray, frames: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-column linear interpolation (held constant beyond the ends) of (T,k) values observed at ``frames``."""
    return np.stack([np.interp(out_frames, frames, values[:, k]) for k in range(values.shape[1])], axis=1)


def _nearest(out_frames: np.ndarray, frames: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The value of the nearest observed frame for every output frame."""
    position = np.clip(np.searchsorted(frames, out_frames), 1, max(len(frames) - 1, 1))
    before = np.maximum(position - 1, 0)
    after = np.minimum(position, len(frames) - 1)
    pick = np.where(np.abs(out_frames - frames[before]) <= np.abs(frames[after] - out_frames), before, after)
    return values[pick]


def _output_frames(
    track: Track3D,
    stationary: bool,
    centre: np.ndarray,
    world_from_ego: np.ndarray,
    frame_times: np.ndarray,
    config: Tracker3DConfig,
) -> np.ndarray:
    """Frames that get a box: observed frames, filled gaps, held (stationary) or extrapolated (moving) frames."""
    frames = np.asarray(track.frames, dtype=np.int64)
    span = np.arange(frames[0], frames[-1] + 1)
    if stationary and config.hold_stationary:
        if config.hold_range_m <= 0:
            return span
        ego_xy = world_from_ego[:, :2, 3]
        near = np.flatnonzero(np.linalg.norm(ego_xy - centre[None, :2], axis=1) <= config.hold_range_m)
        return np.union1d(span, near)
    keep = np.isin(span, frames)
    gaps = np.diff(frames) - 1
    for i in np.flatnonzero((gaps > 0) & (gaps <= config.max_fill_gap)):
        keep |= (span > frames[i]) & (span < frames[i + 1])
    out = span[keep]
    if config.extrapolate_s > 0:
        reach = config.extrapolate_s + 1e-6  # seconds, with a margin for rounding of the frame times
        times = frame_times
        before = np.flatnonzero((times < times[frames[0]]) & (times >= times[frames[0]] - reach))
        after = np.flatnonzero((times > times[frames[-1]]) & (times <= times[frames[-1]] + reach))
        out = np.union1d(out, np.union1d(before, after))
    return out


def _fitted_speed(xy: np.ndarray, times: np.ndarray) -> float:
    """Speed (m/s) of the least-squares straight line through world centres ``xy`` (N,2) at ``times`` (N,)."""
    centred_time = times - times.mean()
    denominator = float(centred_time @ centred_time)
    if denominator <= 0:
        return 0.0
    return float(np.linalg.norm(centred_time @ (xy - xy.mean(axis=0)) / denominator))


def _is_stationary(xy: np.ndarray, times: np.ndarray, config: Tracker3DConfig) -> bool:
    """Small spread of the centres, or (long enough tracks) a straight-line fit slower than the speed threshold."""
    if len(xy) < 3:
        return False
    spread = np.percentile(xy, 90, axis=0) - np.percentile(xy, 10, axis=0)
    if float(np.max(spread)) <= config.stationary_max_spread_m:
        return True
    return (
        config.stationary_max_speed is not None
        and len(xy) >= config.stationary_min_frames
        and _fitted_speed(xy, times) <= config.stationary_max_speed
    )


def _refine(
    track: Track3D,
    frame_times: np.ndarray,
    world_from_ego: np.ndarray,
    config: Tracker3DConfig,
    gate: float,
    class_id: int,
) -> dict[str, np.ndarray]:
    """Per-frame world states for one track (frames, centre, yaw, velocity, size, class, score, uncertainty)."""
    frames = np.asarray(track.frames, dtype=np.int64)
    centre = np.stack(track.centre)
    yaw = np.unwrap(np.asarray(track.yaw))
    sizes = np.stack(track.size)
    observed_velocity = np.stack(track.velocity)
    dt = float(np.median(np.diff(frame_times))) if len(frame_times) > 1 else 0.1
    stationary = _is_stationary(centre[:, :2], frame_times[frames], config)
    held_centre = np.median(centre, axis=0)
    out_frames = _output_frames(track, stationary, held_centre, world_from_ego, frame_times, config)
    times = frame_times[out_frames]
    if stationary and config.hold_stationary:
        smoothed = np.repeat(held_centre[None], len(out_frames), axis=0)
        angle = float(np.arctan2(np.median(np.sin(yaw)), np.median(np.cos(yaw))))
        smoothed_yaw = np.full(len(out_frames), angle)
        velocity = np.zeros((len(out_frames), 2))
    else:
        if config.smooth and len(frames) >= 3:
            values = np.concatenate([centre, yaw[:, None]], axis=1)
            process = np.array([config.accel_std * dt * dt] * 3 + [0.2 * dt])
            measurement = np.array([config.measurement_std] * 3 + [0.1])
            smooth_frames, smoothed_all = rts_smooth_series(
                frames, values, process_std=process, measurement_std=measurement
            )
            states = _interp_rows(out_frames, np.asarray(smooth_frames), smoothed_all)
        else:
            states = _interp_rows(out_frames, frames, np.concatenate([centre, yaw[:, None]], axis=1))
        smoothed, smoothed_yaw = states[:, :3], states[:, 3]
        span = (out_frames >= frames[0]) & (out_frames <= frames[-1])
        if config.trajectory_velocity and span.sum() >= 2:
            inner = np.stack([np.gradient(smoothed[span, k], times[span]) for k in range(2)], axis=1)
            velocity = _interp_rows(times, times[span], inner)
        else:
            velocity = _interp_rows(out_frames, frames, observed_velocity)
        outside = ~span  # extrapolated frames: constant velocity from the nearest end
        if outside.any():
            edge = np.where(out_frames[outside] < frames[0], 0, len(out_frames[span]) - 1)
            inner_frames, inner_times = smoothed[span], times[span]
            smoothed[outside] = inner_frames[edge] + np.column_stack(
                [velocity[outside] * (times[outside] - inner_times[edge])[:, None], np.zeros(outside.sum())]
            )
    size = np.repeat(np.median(sizes, axis=0)[None], len(out_frames), axis=0)
    if not config.rigid_size:
        size = _nearest(out_frames, frames, sizes) if len(frames) > 1 else size
    classes = np.full(len(out_frames), class_id, dtype=np.int64)
    if not config.class_vote:
        classes = _nearest(out_frames, frames, np.asarray(track.class_id, dtype=np.int64))
    observed = np.isin(out_frames, frames)
    residual = np.zeros(len(out_frames))
    position = np.searchsorted(out_frames, frames)
    residual[position] = np.linalg.norm(smoothed[position, :2] - centre[:, :2], axis=1) / gate
    scores = np.asarray(track.score, dtype=np.float64)
    track_score = _track_score(scores)
    score = np.full(len(out_frames), track_score)
    score[position] = np.sqrt(scores * track_score)
    uncertainty = np.clip(
        np.maximum.reduce([np.where(observed, residual, 0.5), np.full(len(out_frames), 1 - track_score)]), 0, 1
    )
    return {
        "frames": out_frames,
        "centre": smoothed,
        "yaw": wrap_angle(smoothed_yaw),
        "velocity": velocity,
        "size": size,
        "class_id": classes,
        "score": score,
        "uncertainty": uncertainty,
        "track_score": np.float64(track_score),
    }


def track_and_refine_3d(
    per_frame: Sequence[Boxes3D],
    world_from_ego: np.ndarray,
    timestamps: np.ndarray,
    *,
    classes: Sequence[str],
    config: Tracker3DConfig = Tracker3DConfig(),
) -> tuple[list[Boxes3D], np.ndarray]:
    """Track ego-frame boxes through the clip in the world frame, refine offline, return ego-frame boxes per frame
    with track ids (1.., by first frame) and per-frame uncertainty (F,)."""
    num_frames = len(per_frame)
    world_from_ego = np.asarray(world_from_ego, dtype=np.float64).reshape(num_frames, 4, 4)
    timestamps = np.asarray(timestamps, dtype=np.float64)
    unknown = sorted(set(config.class_min_score) - set(classes))
    if unknown:
        raise ValueError(
            f"tracking3d.class_min_score: unknown classes {unknown}; the job's classes are {list(classes)}"
        )
    floors = np.array([config.class_min_score.get(name, 0.0) for name in classes] + [0.0])
    tracker = WorldTracker3D(classes, config)
    for index, boxes in enumerate(per_frame):
        tracker.update(index, float(timestamps[index]), boxes, world_from_ego[index])
    kept = []
    for track in tracker.tracks():
        scores = np.asarray(track.score)
        if len(track.frames) < config.min_length or _track_score(scores) < config.min_track_score:
            continue
        kept.append(track)
    kept.sort(key=lambda t: (t.frames[0], t.track_id))
    ego_from_world = np.stack([invert_se3(m) for m in world_from_ego])
    ego_yaw = _ego_yaw(world_from_ego)
    rows: list[list[tuple]] = [[] for _ in range(num_frames)]
    frame_uncertainty = np.zeros(num_frames)
    for new_id, track in enumerate(kept, start=1):
        class_id = track.voted_class()
        gate = (
            float(config.gates_m.get(classes[class_id], config.default_gate_m))
            if class_id < len(classes)
            else config.default_gate_m
        )
        refined = _refine(track, timestamps, world_from_ego, config, gate, class_id)
        for k, frame in enumerate(refined["frames"]):
            frame = int(frame)
            box_class = int(refined["class_id"][k])
            if refined["score"][k] < floors[min(box_class, len(floors) - 1)]:
                continue
            centre = transform_points(ego_from_world[frame], refined["centre"][k][None])[0]
            yaw = float(wrap_angle(refined["yaw"][k] - ego_yaw[frame]))
            velocity = world_from_ego[frame][:2, :2].T @ refined["velocity"][k]
            rows[frame].append((centre, refined["size"][k], yaw, velocity, box_class, refined["score"][k], new_id))
            frame_uncertainty[frame] = max(frame_uncertainty[frame], float(refined["uncertainty"][k]))
    out = []
    for frame_rows in rows:
        if not frame_rows:
            out.append(Boxes3D.empty())
            continue
        columns = list(zip(*frame_rows))
        out.append(
            Boxes3D(
                center=np.stack(columns[0]),
                size=np.stack(columns[1]),
                yaw=np.array(columns[2]),
                velocity=np.stack(columns[3]),
                class_id=np.array(columns[4], dtype=np.int64),
                score=np.array(columns[5], dtype=np.float32),
                track_id=np.array(columns[6], dtype=np.int64),
            )
        )
    return out, frame_uncertainty


def project_boxes_to_cameras(
    boxes: Boxes3D, clip, frame_index: int, *, min_depth: float = 0.1, min_area: float = 4.0
) -> dict[str, Boxes2D]:
    """2D boxes (pixels, clipped to the image; truncation = clipped-off fraction) of ego-frame 3D boxes in each camera,
    honouring per-camera capture time (``clip.camera_from_ego``); boxes behind or outside a camera are dropped."""
    out: dict[str, Boxes2D] = {}
    corners = boxes.corners() if len(boxes) else np.zeros((0, 8, 3))
    for camera in clip.rig:
        if not len(boxes):
            out[camera.name] = Boxes2D.empty()
            continue
        camera_from_ego = clip.camera_from_ego(frame_index, camera.name)
        points = transform_points(camera_from_ego, corners.reshape(-1, 3)).reshape(-1, 8, 3)
        keep, xyxy, truncation = [], [], []
        for i in range(len(boxes)):
            front = points[i][points[i][:, 2] > min_depth]
            if len(front) < 2:
                continue
            uv, _ = camera.project(front)
            uv = uv[np.all(np.isfinite(uv), axis=1)]
            if len(uv) < 2:
                continue
            x1, y1 = uv.min(axis=0)
            x2, y2 = uv.max(axis=0)
            full = max((x2 - x1) * (y2 - y1), 1e-9)
            cx1, cy1 = np.clip([x1, y1], 0, [camera.width, camera.height])
            cx2, cy2 = np.clip([x2, y2], 0, [camera.width, camera.height])
            area = (cx2 - cx1) * (cy2 - cy1)
            if area < min_area:
                continue
            keep.append(i)
            xyxy.append([cx1, cy1, cx2, cy2])
            truncation.append(1.0 - area / full)
        selected = boxes[np.asarray(keep, dtype=np.int64)]
        out[camera.name] = Boxes2D(
            xyxy=np.asarray(xyxy, dtype=np.float64).reshape(-1, 4),
            class_id=selected.class_id,
            score=selected.score,
            track_id=selected.track_id,
            truncation=np.asarray(truncation, dtype=np.float32),
        )
    return out
