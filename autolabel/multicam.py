"""One track id per object across the cameras of a rig, from 2D tracks and the rig geometry, and a 3D box per track
where the geometry allows.

Each camera's 2D tracks (the single-camera offline chain, ``autolabel.offline``) are lifted to the ground: the bottom
edge of every box is cast onto the plane z = 0 of the ego frame (``Camera.ground_points``, with the camera's pose
at its own capture time, ``DriveClip.camera_from_ego``) and moved into the world frame (``DriveClip.world_from_ego``).
Two tracks of different cameras are the same object when their ground tracks agree over the frames both see it
(the cameras' overlap): the median distance, over a gate that grows with range (a pixel of error on the ground line
is more metres far away), at most 1 on at least ``min_overlap_frames`` frames. A track that starts in one camera
within ``handoff_max_gap`` frames of another camera's track ending, where that one's constant-velocity prediction
lands, is the same object too (a blind gap between two views). Pairs are merged cheapest first, never into a group
that would hold two tracks one camera sees at the same time or two tracks whose ground tracks disagree.

Approximations (say them to users): flat ground (on a slope the lifted range is wrong by range x slope angle); the
bottom-centre of a box is taken as the nearest ground point of the object (the 3D centre is pushed back along the
viewing ray by half the class prior footprint); a box cut by the left or right image border is compared by the
segment its visible bottom edge spans, not by its centre; a box cut by the bottom border is not lifted (its ground
contact is not seen); cameras capture a few ms apart and those ms of object motion are not compensated. The row
lifted is the box's bottom edge less ``bottom_offset_px``: a detector (or a renderer's pixel convention) that ends
boxes a pixel below the ground contact puts far objects metres short; ``autolabel calibrate --lifting`` measures it,
and the class sizes, on labelled clips.

3D boxes: for a merged track with at least ``min_frames_3d`` lifted, uncut observations whose height (box height in
pixels x depth / focal length) lies within ``height_tolerance`` of the class prior, one box per frame: centre from
the RTS-smoothed world ground track, length and width from ``size_priors_m`` (nuScenes mean sizes by default), height
measured (median), yaw from the direction of motion (held where it moves slower than ``min_speed_mps``; a track that
never moves gets the ego's heading: the yaw of parked objects is not observed), velocity from the smoothed track.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from autolabel.refine.smooth import rts_smooth_series
from perception.geometry import invert_se3, transform_points, wrap_angle, yaw_from_matrix
from perception.labels import Boxes2D, Boxes3D

__all__ = [
    "DEFAULT_SIZE_PRIORS_M",
    "CrossCameraConfig",
    "LiftedTrack",
    "associate_cameras",
    "lift_tracks",
    "tracks_to_boxes3d",
]

# mean (length, width, height) of nuScenes annotations, metres (cyclist: bicycle with rider)
DEFAULT_SIZE_PRIORS_M = {
    "car": (4.6, 1.95, 1.75),
    "truck": (6.9, 2.5, 2.85),
    "bus": (10.5, 2.95, 3.45),
    "pedestrian": (0.73, 0.67, 1.77),
    "cyclist": (1.7, 0.6, 1.7),
    "traffic_cone": (0.41, 0.41, 1.07),
}


@dataclass(frozen=True)
class CrossCameraConfig:
    """Knobs of the cross-camera association and the 3D boxes from lifted 2D tracks (metres, frames, m/s).

    ``enabled`` False: ids stay unique per camera (one object seen by two cameras gets two ids), no 3D boxes.
    Gate at range r (m): ``gates_m[class] + gate_per_m * r``. Two views of an object lift the middles of different
    near faces, so by default a class's gate is half its prior footprint's diagonal (``size_priors_m``), at least
    ``default_gate_m`` (also the gate of a class with neither). ``max_range_m``: lifted points farther away are not
    used.

    Args:
        enabled: associate tracks across cameras and build 3D boxes (False: ids unique per camera only)
        max_range_m: lifted ground points farther from the camera than this (metres) are not used
        gates_m: association gate at zero range per class (metres); None: half the class prior's footprint diagonal
        default_gate_m: smallest gate, and the gate of a class without prior or gate (metres)
        gate_per_m: growth of the gate per metre of range (a pixel on the ground line is more metres far away)
        min_overlap_frames: frames two tracks must both be lifted in to be compared over their overlap
        min_agreement: fraction of those frames within the gate for a pair to count as agreeing
        region_cost: least cost of a frame where a box is cut by the image bottom (its ground contact is unseen)
        region_only_merge: merge pairs seen only as two such regions in every shared frame
        handoff_max_gap_s: longest blind gap (seconds) a track may continue another camera's track across
        handoff_speed_std_mps: speed uncertainty (m/s) widening the gate of a handover per second of gap
        border_px: a box side within this many pixels of the image border counts as cut by it
        boxes3d: also output a 3D box per consistent merged track
        min_frames_3d: uncut lifted frames a merged track needs for a 3D box
        height_tolerance: a measured height outside prior/(1+t)..prior*(1+t) means no 3D box for that track
        size_priors_m: (length, width, height) per class name, metres (default: nuScenes means)
        bottom_offset_px: the ground contact is lifted from this many pixels above a box's bottom edge (a detector's
            or a labelling convention's bias: a box bottom one pixel low puts an object r^2 / (f h) metres short,
            4.5 m at 44 m in a nuScenes front camera); autolabel calibrate --lifting measures it on labelled clips
        accel_std_mps2: acceleration noise of the smoother of 3D ground tracks (m/s^2)
        measurement_std_m: noise of a lifted ground point at zero range (metres)
        measurement_std_per_m: growth of that noise per metre of range
        min_speed_mps: slower than this the heading is not taken from the motion (held from moving frames)
        max_fill_gap: 3D boxes are output up to half this many frames from an uncut observation
    """

    enabled: bool = True
    max_range_m: float = 60.0
    gates_m: dict[str, float] | None = None
    default_gate_m: float = 1.0
    gate_per_m: float = 0.05
    min_overlap_frames: int = 2
    min_agreement: float = 0.5
    region_cost: float = 0.5
    region_only_merge: bool = False
    handoff_max_gap_s: float = 1.5
    handoff_speed_std_mps: float = 1.0
    border_px: float = 2.0
    boxes3d: bool = True
    min_frames_3d: int = 3
    height_tolerance: float = 0.5
    size_priors_m: dict[str, tuple[float, float, float]] = field(default_factory=lambda: dict(DEFAULT_SIZE_PRIORS_M))
    bottom_offset_px: float = 0.0
    accel_std_mps2: float = 2.0
    measurement_std_m: float = 0.3
    measurement_std_per_m: float = 0.03
    min_speed_mps: float = 0.5
    max_fill_gap: int = 10

    def __post_init__(self) -> None:
        for name in ("max_range_m", "default_gate_m", "border_px", "accel_std_mps2", "measurement_std_m"):
            if getattr(self, name) <= 0:
                raise ValueError(f"CrossCameraConfig.{name}: expected > 0, found {getattr(self, name)}")
        if not np.isfinite(self.bottom_offset_px):
            raise ValueError(f"CrossCameraConfig.bottom_offset_px: expected a number, found {self.bottom_offset_px}")
        for name, prior in self.size_priors_m.items():
            if len(prior) != 3 or not all(np.isfinite(v) and v > 0 for v in prior):
                raise ValueError(
                    f"CrossCameraConfig.size_priors_m[{name!r}]: expected (length, width, height) > 0 metres, "
                    f"found {prior}"
                )
        if self.min_overlap_frames < 1:
            raise ValueError(f"CrossCameraConfig.min_overlap_frames: expected >= 1, found {self.min_overlap_frames}")
        object.__setattr__(self, "size_priors_m", {k: tuple(v) for k, v in self.size_priors_m.items()})

        gates = self.gates_m
        if gates is None:
            gates = {
                k: max(self.default_gate_m, 0.5 * float(np.hypot(v[0], v[1]))) for k, v in self.size_priors_m.items()
            }
        object.__setattr__(self, "gates_m", {k: float(v) for k, v in gates.items()})

    def gate(self, range_m: np.ndarray | float, base_m: float | None = None) -> np.ndarray | float:
        return (self.default_gate_m if base_m is None else base_m) + self.gate_per_m * range_m


FULL, SIDE_CUT, BOTTOM_CUT, UNUSABLE = 0, 1, 2, -1


@dataclass
class LiftedTrack:
    """One camera's 2D track on the ground, per frame it is seen (T,), world frame x, y in metres.

    ``kind``: FULL (the box's bottom edge lifted: ``centre`` is its middle, ``left``/``right`` its ends), SIDE_CUT
    (the box touches the left or right image border: only the ``left``-``right`` segment is meaningful), BOTTOM_CUT
    (the ground contact is below the image: the object stands somewhere in the triangle between the camera,
    ``camera_xy``, and the ground points of the image's last row under the box, ``left`` and ``right``) or UNUSABLE
    (above the horizon or beyond ``max_range_m``). ``range_m`` from the camera; ``height_m`` object height from the
    box (nan unless FULL with the top inside the image); ``time`` seconds; box ``score``; ``gate_m`` the class's
    association gate at zero range (set by ``associate_cameras``).
    """

    camera: str
    local_id: int
    class_id: int
    frames: np.ndarray
    time: np.ndarray
    kind: np.ndarray
    centre: np.ndarray
    left: np.ndarray
    right: np.ndarray
    camera_xy: np.ndarray
    range_m: np.ndarray
    height_m: np.ndarray
    score: np.ndarray
    gate_m: float = 1.5

    @property
    def key(self) -> tuple[str, int]:
        return (self.camera, self.local_id)

    @property
    def usable(self) -> np.ndarray:
        return self.kind != UNUSABLE

    def shape(self, k: int) -> np.ndarray:
        """Observation k as a ground polygon (1, 2 or 3 points, world x, y)."""
        if self.kind[k] == FULL:
            return self.centre[k][None]
        if self.kind[k] == SIDE_CUT:
            return np.stack([self.left[k], self.right[k]])
        return np.stack([self.camera_xy[k], self.left[k], self.right[k]])


def lift_tracks(clip, camera: str, per_frame: Sequence[Boxes2D], config: CrossCameraConfig) -> list[LiftedTrack]:
    """Every track (``track_id`` >= 0) of one camera's per-frame boxes lifted to the world ground plane."""
    rig_camera = clip.rig[camera]
    width, height = rig_camera.width, rig_camera.height
    focal = rig_camera.K[1, 1]
    rows: dict[int, list] = {}
    for frame, boxes in enumerate(per_frame):
        boxes = boxes[boxes.track_id >= 0]
        if not len(boxes):
            continue
        camera_from_ego = clip.camera_from_ego(frame, camera)
        world_from_ego = clip.world_from_ego[frame]
        x1, y1, x2, y2 = boxes.xyxy.T
        cut_bottom = y2 >= height - config.border_px
        cut_top = y1 <= config.border_px
        cut_side = (x1 <= config.border_px) | (x2 >= width - config.border_px)
        # a box cut at the bottom: the image's last row under it
        y = np.where(cut_bottom, height - 1.0, y2 - config.bottom_offset_px)
        pixels = np.concatenate([np.stack([(x1 + x2) / 2, y], 1), np.stack([x1, y], 1), np.stack([x2, y], 1)])
        points, hit = rig_camera.ground_points(pixels, camera_from_ego)
        n = len(boxes)
        centre, left, right = points[:n], points[n : 2 * n], points[2 * n :]
        hit = hit[:n] & hit[n : 2 * n] & hit[2 * n :]
        camera_ego = invert_se3(camera_from_ego)[:3, 3]
        range_m = np.linalg.norm((centre - camera_ego)[:, :2], axis=1)
        kind = np.where(cut_bottom, BOTTOM_CUT, np.where(cut_side, SIDE_CUT, FULL))
        kind = np.where(hit & (range_m <= config.max_range_m), kind, UNUSABLE)
        depth = transform_points(camera_from_ego, np.where(hit[:, None], centre, 0.0))[:, 2]
        height_m = np.where((kind == FULL) & ~cut_top, (y2 - y1) * depth / focal, np.nan)
        world = [transform_points(world_from_ego, np.where(hit[:, None], p, 0.0))[:, :2] for p in (centre, left, right)]
        camera_xy = transform_points(world_from_ego, camera_ego[None])[0, :2]
        time = float(clip.timestamps[frame])
        for i, track in enumerate(boxes.track_id.tolist()):
            rows.setdefault(track, []).append(
                (frame, time, kind[i], world[0][i], world[1][i], world[2][i], camera_xy, range_m[i], height_m[i],
                 int(boxes.class_id[i]), float(boxes.score[i]))
            )  # fmt: skip
    tracks = []
    for track, items in rows.items():
        c = list(zip(*items))
        classes, scores = np.asarray(c[9]), np.asarray(c[10])
        tracks.append(
            LiftedTrack(
                camera=camera,
                local_id=int(track),
                class_id=int(np.bincount(classes, weights=scores + 1e-3).argmax()),
                frames=np.asarray(c[0], np.int64),
                time=np.asarray(c[1]),
                kind=np.asarray(c[2], np.int64),
                centre=np.asarray(c[3]),
                left=np.asarray(c[4]),
                right=np.asarray(c[5]),
                camera_xy=np.asarray(c[6]),
                range_m=np.asarray(c[7]),
                height_m=np.asarray(c[8]),
                score=scores,
            )
        )
    return tracks


def _point_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = float(np.clip(np.dot(p - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def _inside_triangle(p: np.ndarray, triangle: np.ndarray) -> bool:
    signs = [_cross(triangle[i], triangle[(i + 1) % 3], p) for i in range(3)]
    return all(v >= 0 for v in signs) or all(v <= 0 for v in signs)


def _edges(polygon: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    if len(polygon) == 1:
        return [(polygon[0], polygon[0])]
    if len(polygon) == 2:
        return [(polygon[0], polygon[1])]
    return [(polygon[i], polygon[(i + 1) % len(polygon)]) for i in range(len(polygon))]


def polygon_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance (m) between two ground shapes of 1 (point), 2 (segment) or 3 (triangle) points; 0 where they meet."""
    for inner, outer in ((a, b), (b, a)):
        if len(outer) == 3 and any(_inside_triangle(p, outer) for p in inner):
            return 0.0
    best = np.inf
    for p0, p1 in _edges(a):
        for q0, q1 in _edges(b):
            if _cross(p0, p1, q0) * _cross(p0, p1, q1) < 0 and _cross(q0, q1, p0) * _cross(q0, q1, p1) < 0:
                return 0.0
            best = min(best, _point_segment(p0, q0, q1), _point_segment(p1, q0, q1))
            best = min(best, _point_segment(q0, p0, p1), _point_segment(q1, p0, p1))
    return float(best)


def observation_cost(a: LiftedTrack, k: int, b: LiftedTrack, m: int, config: CrossCameraConfig, shift=None) -> float:
    """Ground distance of observation k of ``a`` (moved by ``shift`` metres) to observation m of ``b`` over the gate
    at their range; at least ``region_cost`` when either is a BOTTOM_CUT region (it says little about where)."""
    shift = np.zeros(2) if shift is None else shift
    if a.kind[k] == FULL and b.kind[m] == FULL:
        distance = float(np.linalg.norm(a.centre[k] + shift - b.centre[m]))
    else:
        shape_a = a.shape(k) if a.kind[k] != FULL else np.stack([a.left[k], a.right[k]])
        shape_b = b.shape(m) if b.kind[m] != FULL else np.stack([b.left[m], b.right[m]])
        distance = polygon_distance(shape_a + shift, shape_b)
    cost = distance / config.gate(max(a.range_m[k], b.range_m[m]), a.gate_m)
    if BOTTOM_CUT in (a.kind[k], b.kind[m]):
        cost = max(cost, config.region_cost)
    return cost


def _pair_cost(a: LiftedTrack, b: LiftedTrack, config: CrossCameraConfig) -> float | None:
    """Median gated ground distance over the frames both tracks are lifted in (> 1 when fewer than
    ``min_agreement`` of them are within the gate); None when they share fewer than ``min_overlap_frames``."""
    ua, ub = np.flatnonzero(a.usable), np.flatnonzero(b.usable)
    _, ia, ib = np.intersect1d(a.frames[ua], b.frames[ub], return_indices=True)
    if len(ia) < config.min_overlap_frames:
        return None
    if not config.region_only_merge and not np.any((a.kind[ua[ia]] != BOTTOM_CUT) | (b.kind[ub[ib]] != BOTTOM_CUT)):
        return None  # two regions only: no frame places either object
    costs = np.array([observation_cost(a, k, b, m, config) for k, m in zip(ua[ia], ub[ib])])
    if np.mean(costs <= 1.0) < config.min_agreement:
        return float(max(np.median(costs), 1.0 + 1e-6))
    return float(np.median(costs))


def _handoff_cost(first: LiftedTrack, second: LiftedTrack, config: CrossCameraConfig) -> float | None:
    """Gated distance between ``second``'s first lifted observations and ``first``'s constant-velocity prediction,
    when ``second`` starts at most ``handoff_max_gap_s`` after ``first``'s last lifted observation; else None."""
    # a BOTTOM_CUT region says too little to predict from (it may be predicted into)
    la = np.flatnonzero(first.usable & (first.kind != BOTTOM_CUT))
    lb = np.flatnonzero(second.usable)
    if not len(la) or not len(lb):
        return None
    end = first.time[la[-1]]
    lb = lb[second.time[lb] >= end]  # tracks that touch for fewer than min_overlap_frames are handovers too
    if not len(lb) or second.time[lb[0]] - end > config.handoff_max_gap_s + 1e-9:
        return None
    recent = la[(first.time[la] >= end - 1.0) & (first.kind[la] == FULL)]
    velocity = np.zeros(2)
    if len(recent) >= 2:  # m/s, least squares over the last second of uncut observations
        t = first.time[recent]
        velocity = np.polyfit(t - t.mean(), first.centre[recent], 1)[0]
    costs = []
    for m in lb[:3]:
        dt = float(second.time[m] - end)
        cost = observation_cost(first, int(la[-1]), second, int(m), config, shift=velocity * dt)
        gate = config.gate(max(first.range_m[la[-1]], second.range_m[m]), first.gate_m)
        costs.append(cost * gate / (gate + config.handoff_speed_std_mps * dt))
    return float(np.median(costs))


def associate_cameras(
    tracks: Sequence[LiftedTrack],
    config: CrossCameraConfig,
    *,
    classes: Sequence[str] = (),
    camera_order: Sequence[str] = (),
) -> dict[tuple[str, int], int]:
    """Global id (1, 2, ... in order of first appearance, then ``camera_order``) of every (camera, local track id).

    Pairs of tracks of different cameras and one class are costed (``_pair_cost`` over shared frames, else
    ``_handoff_cost``); pairs with cost <= 1 are merged cheapest first unless the merged group would hold two
    tracks of one camera at the same frame or two tracks of different cameras whose shared frames disagree.
    """
    n = len(tracks)
    for track in tracks:
        name = classes[track.class_id] if 0 <= track.class_id < len(classes) else None
        track.gate_m = config.gates_m.get(name, config.default_gate_m)
    costs: dict[tuple[int, int], float] = {}
    candidates = []
    spans = [(int(t.frames[0]), int(t.frames[-1])) for t in tracks]
    times = [(float(t.time[0]), float(t.time[-1])) for t in tracks]
    for i in range(n):
        for j in range(i + 1, n):
            a, b = tracks[i], tracks[j]
            if a.camera == b.camera or a.class_id != b.class_id:
                continue
            if (
                times[i][0] > times[j][1] + config.handoff_max_gap_s
                or times[j][0] > times[i][1] + config.handoff_max_gap_s
            ):
                continue
            cost = _pair_cost(a, b, config)
            if cost is not None:
                costs[(i, j)] = cost
            else:
                cost = _handoff_cost(a, b, config)
                if cost is None:
                    cost = _handoff_cost(b, a, config)
            if cost is not None and cost <= 1.0:
                candidates.append((cost, i, j))
    group = list(range(n))
    members = {i: [i] for i in range(n)}

    def conflict(g1: list[int], g2: list[int]) -> bool:
        for x in g1:
            for y in g2:
                if tracks[x].camera == tracks[y].camera:
                    if spans[x][0] <= spans[y][1] and spans[y][0] <= spans[x][1]:
                        return True
                elif costs.get((min(x, y), max(x, y)), 0.0) > 1.0:
                    return True
        return False

    for _, i, j in sorted(candidates):
        gi, gj = group[i], group[j]
        if gi == gj or conflict(members[gi], members[gj]):
            continue
        for k in members[gj]:
            group[k] = gi
        members[gi].extend(members.pop(gj))
    rank = {name: r for r, name in enumerate(camera_order)}
    first = {
        g: min((spans[k][0], rank.get(tracks[k].camera, len(rank)), tracks[k].local_id) for k in ks)
        for g, ks in members.items()
    }
    global_id = {g: new for new, g in enumerate(sorted(members, key=lambda g: first[g]), start=1)}
    return {tracks[k].key: global_id[group[k]] for k in range(n)}


def _fused_observations(
    members: Sequence[LiftedTrack], config: CrossCameraConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per frame seen uncut and lifted by any member: frames (T,), weighted mean near point (T,2), measurement std
    (T,), camera position (T,2) of the nearest view, measured heights (all members' uncut observations, (K,))."""
    rows: dict[int, list] = {}
    heights = []
    for track in members:
        usable = track.kind == FULL
        heights.extend(track.height_m[usable & np.isfinite(track.height_m)].tolist())
        for k in np.flatnonzero(usable):
            rows.setdefault(int(track.frames[k]), []).append((track.centre[k], track.range_m[k], track.camera_xy[k]))
    frames = np.array(sorted(rows), dtype=np.int64)
    point, std, camera_xy = [], [], []
    for frame in frames:
        items = rows[int(frame)]
        sigma = np.array([config.measurement_std_m + config.measurement_std_per_m * r for _, r, _ in items])
        weight = 1.0 / sigma**2
        point.append(np.sum([w * c for w, (c, _, _) in zip(weight, items)], axis=0) / weight.sum())
        std.append(1.0 / np.sqrt(weight.sum()))
        camera_xy.append(items[int(np.argmin(sigma))][2])
    return (
        frames,
        np.asarray(point).reshape(-1, 2),
        np.asarray(std),
        np.asarray(camera_xy).reshape(-1, 2),
        np.asarray(heights),
    )


def _yaw_from_track(velocity: np.ndarray, speed_floor: float, fallback: np.ndarray) -> np.ndarray:
    """Heading (T,) of a world velocity track (m/s); frames slower than ``speed_floor`` take the nearest moving
    frame's heading, a track that never moves takes ``fallback`` (T,)."""
    speed = np.linalg.norm(velocity, axis=1)
    moving = np.flatnonzero(speed >= speed_floor)
    if not len(moving):
        return fallback
    heading = np.arctan2(velocity[:, 1], velocity[:, 0])
    nearest = moving[np.clip(np.searchsorted(moving, np.arange(len(speed))), 0, len(moving) - 1)]
    before = moving[np.clip(np.searchsorted(moving, np.arange(len(speed))) - 1, 0, len(moving) - 1)]
    pick = np.where(np.abs(before - np.arange(len(speed))) < np.abs(nearest - np.arange(len(speed))), before, nearest)
    return np.where(speed >= speed_floor, heading, heading[pick])


def tracks_to_boxes3d(
    tracks: Sequence[LiftedTrack],
    global_ids: Mapping[tuple[str, int], int],
    clip,
    classes: Sequence[str],
    config: CrossCameraConfig,
) -> list[Boxes3D]:
    """Per frame, the 3D boxes (ego frame at the frame's reference time) of merged tracks consistent enough to place:
    ``min_frames_3d`` uncut lifted frames and a measured height within ``height_tolerance`` of the class prior."""
    num_frames = clip.num_frames
    per_frame: list[list[tuple]] = [[] for _ in range(num_frames)]
    groups: dict[int, list[LiftedTrack]] = {}
    for track in tracks:
        groups.setdefault(global_ids[track.key], []).append(track)
    times = np.asarray(clip.timestamps, dtype=np.float64)
    period = float(np.median(np.diff(times))) if len(times) > 1 else 0.1
    ego_yaw = np.array([yaw_from_matrix(pose[:3, :3]) for pose in clip.world_from_ego])
    for gid, members in sorted(groups.items()):
        class_id = int(np.bincount([m.class_id for m in members], weights=[len(m.frames) for m in members]).argmax())
        prior = config.size_priors_m.get(classes[class_id]) if 0 <= class_id < len(classes) else None
        if prior is None:
            continue
        frames, near, std, camera_xy, heights = _fused_observations(members, config)
        if len(frames) < config.min_frames_3d or not np.isfinite(heights).any():
            continue
        height = float(np.median(heights))
        if not (prior[2] / (1 + config.height_tolerance) <= height <= prior[2] * (1 + config.height_tolerance)):
            continue  # not an object of this class standing on the ground (or a false track)
        length, width = prior[0], prior[1]
        # pass 1: heading from the near-point track; pass 2: centres pushed back along the ray by half the footprint
        yaw, out_frames = None, frames
        for _ in range(2):
            centre = near.copy()
            if yaw is not None:
                ray = near - camera_xy
                ray /= np.maximum(np.linalg.norm(ray, axis=1, keepdims=True), 1e-9)
                angle = yaw[np.searchsorted(out_frames, frames)] - np.arctan2(ray[:, 1], ray[:, 0])
                reach = 0.5 * (length * np.abs(np.cos(angle)) + width * np.abs(np.sin(angle)))
                centre = near + ray * reach[:, None]
            if len(frames) >= 2:
                out_frames, smoothed = rts_smooth_series(
                    frames, centre, process_std=config.accel_std_mps2 * period**2,
                    measurement_std=np.repeat(std[:, None], 2, axis=1),
                )  # fmt: skip
            else:
                out_frames, smoothed = frames, centre
            t = times[out_frames]
            velocity = np.gradient(smoothed, t, axis=0) if len(out_frames) >= 2 else np.zeros_like(smoothed)
            displacement = np.linalg.norm(smoothed[-1] - smoothed[0])
            fallback = ego_yaw[out_frames]
            if displacement < 2.0:  # never really moved: velocity is noise
                velocity = np.zeros_like(smoothed)
            yaw = _yaw_from_track(velocity, config.min_speed_mps, fallback)
        nearest_observed = np.abs(out_frames[:, None] - frames[None, :]).min(axis=1)
        keep = nearest_observed <= config.max_fill_gap // 2
        score = float(np.mean(np.concatenate([m.score for m in members])))
        for k in np.flatnonzero(keep):
            per_frame[int(out_frames[k])].append(
                (smoothed[k], yaw[k], velocity[k], gid, class_id, score, (length, width, height))
            )
    out = []
    for frame, items in enumerate(per_frame):
        if not items:
            out.append(Boxes3D.empty())
            continue
        ego_from_world = invert_se3(clip.world_from_ego[frame])
        xy = np.array([item[0] for item in items])
        sizes = np.array([item[6] for item in items])
        ground_z = np.full(len(items), clip.world_from_ego[frame][2, 3])  # the ego's ground, flat around it
        centres = transform_points(ego_from_world, np.c_[xy, ground_z])
        centres[:, 2] = sizes[:, 2] / 2
        rotation = ego_from_world[:2, :2]
        out.append(
            Boxes3D(
                center=centres,
                size=sizes,
                yaw=wrap_angle(np.array([item[1] for item in items]) - ego_yaw[frame]),
                velocity=np.array([item[2] for item in items]) @ rotation.T,
                class_id=np.array([item[4] for item in items]),
                score=np.array([item[5] for item in items], dtype=np.float32),
                track_id=np.array([item[3] for item in items]),
            )
        )
    return out
