"""Ground truth from the simulated world: 3D boxes (ego frame), per-camera 2D boxes, BEV drivable/lane maps."""

from __future__ import annotations

import cv2
import numpy as np

from perception.geometry import BevGrid, invert_se3, wrap_angle
from perception.labels import Boxes2D, Boxes3D
from perception.sim.render import RenderResult
from perception.sim.road import Road
from perception.sim.traffic import Traffic

BEV_CHANNELS = ["drivable", "lane"]
_SHIFT = 3


def boxes3d_at(traffic: Traffic, t: float, world_from_ego: np.ndarray, *, label_range: float) -> Boxes3D:
    """Actors' boxes in the ego frame at time ``t`` (centre, size, yaw, world velocity rotated into the ego frame)."""
    x, y, yaw, vx, vy = (a[1:] for a in traffic.state(t))
    if len(x) == 0:
        return Boxes3D.empty()
    ego_from_world = invert_se3(world_from_ego)
    centre_world = np.stack([x, y, traffic.sizes[:, 2] / 2], -1)
    centre = centre_world @ ego_from_world[:3, :3].T + ego_from_world[:3, 3]
    ego_yaw = float(np.arctan2(world_from_ego[1, 0], world_from_ego[0, 0]))
    c, s = np.cos(-ego_yaw), np.sin(-ego_yaw)
    velocity = np.stack([c * vx - s * vy, s * vx + c * vy], -1)
    track = np.arange(len(x), dtype=np.int64)
    keep = np.hypot(centre[:, 0], centre[:, 1]) <= label_range
    return Boxes3D(
        center=centre[keep],
        size=traffic.sizes[keep],
        yaw=np.asarray(wrap_angle(yaw - ego_yaw))[keep],
        velocity=velocity[keep],
        class_id=traffic.class_ids[keep],
        score=np.ones(int(keep.sum()), dtype=np.float32),
        track_id=track[keep],
    )


def boxes2d_from_render(
    result: RenderResult, class_ids: np.ndarray, width: int, height: int, *, min_visible_pixels: int
) -> Boxes2D:
    """2D boxes of actors seen in a rendered image; object id = track id + 1.

    The box is the actor's unoccluded silhouette clipped to the image; visibility = visible pixels (id buffer) /
    unoccluded silhouette pixels; truncation = share of the projected extent's area outside the image.
    """
    rows = []
    for object_id, (count, box, full) in sorted(result.silhouettes.items()):
        visible = int(result.visible_pixels[object_id])
        if visible < min_visible_pixels:
            continue
        fx0, fy0, fx1, fy1 = full
        full_area = max((fx1 - fx0) * (fy1 - fy0), 1e-9)
        cx0, cy0, cx1, cy1 = max(fx0, 0.0), max(fy0, 0.0), min(fx1, float(width)), min(fy1, float(height))
        inside = max(cx1 - cx0, 0.0) * max(cy1 - cy0, 0.0)
        truncation = float(np.clip(1.0 - inside / full_area, 0.0, 1.0))
        rows.append((box, object_id - 1, min(visible / count, 1.0), truncation))
    if not rows:
        return Boxes2D.empty()
    track = np.array([r[1] for r in rows], dtype=np.int64)
    return Boxes2D(
        xyxy=np.array([r[0] for r in rows], dtype=np.float64),
        class_id=class_ids[track],
        score=np.ones(len(rows), dtype=np.float32),
        track_id=track,
        visibility=np.array([r[2] for r in rows], dtype=np.float32),
        truncation=np.array([r[3] for r in rows], dtype=np.float32),
    )


def bev_maps_at(road: Road, grid: BevGrid, world_from_ego: np.ndarray, ego_s: float) -> np.ndarray:
    """(2, H, W) uint8 maps: drivable road surface, lane markings (lines 1+ cells wide)."""
    height, width = grid.shape
    reach = float(np.hypot(max(abs(grid.x_min), abs(grid.x_max)), max(abs(grid.y_min), abs(grid.y_max)))) + 10.0
    s0, s1 = ego_s - reach, ego_s + reach
    ego_from_world = invert_se3(world_from_ego)

    def to_cells(world_xy: np.ndarray) -> np.ndarray:
        ego = world_xy @ ego_from_world[:2, :2].T + ego_from_world[:2, 3]
        rc = grid.ego_to_cell(ego)
        return np.round(rc[:, ::-1] * (1 << _SHIFT)).astype(np.int32)  # (col, row) for OpenCV

    maps = np.zeros((2, height, width), dtype=np.uint8)
    cv2.fillPoly(maps[0], [to_cells(road.band(road.right_edge, road.left_edge, s0, s1, 1.0))], 1, cv2.LINE_8, _SHIFT)
    thickness = max(1, int(round(0.3 / grid.resolution)))
    lines = [to_cells(road.polyline(marking.d, s0, s1, 1.0)) for marking in road.markings]
    lane = maps[1].copy()
    cv2.polylines(lane, lines, False, 1, thickness, cv2.LINE_8, _SHIFT)
    maps[1] = lane
    return maps
