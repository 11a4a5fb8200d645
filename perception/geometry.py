"""Rigid transforms, rotations, boxes and the BEV grid (numpy only).

Frames follow DESIGN.md: ego x forward, y left, z up (metres); cameras are OpenCV (x right, y down,
z forward). Transforms are 4x4 matrices named ``a_from_b`` and compose right to left.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def se3(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Build a 4x4 rigid transform from a 3x3 rotation and a 3-vector translation."""
    transform = np.eye(4)
    transform[:3, :3] = np.asarray(rotation, dtype=np.float64)
    transform[:3, 3] = np.asarray(translation, dtype=np.float64)
    return transform


def invert_se3(a_from_b: np.ndarray) -> np.ndarray:
    """Invert a rigid transform: returns ``b_from_a`` (works on (..., 4, 4) stacks)."""
    a_from_b = np.asarray(a_from_b, dtype=np.float64)
    rotation_t = np.swapaxes(a_from_b[..., :3, :3], -1, -2)
    b_from_a = np.zeros_like(a_from_b)
    b_from_a[..., :3, :3] = rotation_t
    b_from_a[..., :3, 3] = -(rotation_t @ a_from_b[..., :3, 3:4])[..., 0]
    b_from_a[..., 3, 3] = 1.0
    return b_from_a


def transform_points(a_from_b: np.ndarray, points_b: np.ndarray) -> np.ndarray:
    """Map points (..., 3) from frame b into frame a."""
    points_b = np.asarray(points_b, dtype=np.float64)
    return points_b @ a_from_b[:3, :3].T + a_from_b[:3, 3]


def quat_to_matrix(quaternion_wxyz: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) to a 3x3 rotation matrix (normalises the input)."""
    w, x, y, z = np.asarray(quaternion_wxyz, dtype=np.float64) / np.linalg.norm(quaternion_wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(rotation: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix to a unit quaternion (w, x, y, z) with w >= 0."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def slerp(q0: np.ndarray, q1: np.ndarray, alpha: float) -> np.ndarray:
    """Spherical linear interpolation between unit quaternions (w, x, y, z)."""
    q0, q1 = np.asarray(q0, dtype=np.float64), np.asarray(q1, dtype=np.float64)
    dot = float(np.dot(q0, q1))
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + alpha * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(dot)
    return (np.sin((1 - alpha) * theta) * q0 + np.sin(alpha * theta) * q1) / np.sin(theta)


def interpolate_pose(a_from_b0: np.ndarray, a_from_b1: np.ndarray, alpha: float) -> np.ndarray:
    """Interpolate two rigid transforms (slerp rotation, lerp translation); alpha in [0, 1]."""
    rotation = quat_to_matrix(slerp(matrix_to_quat(a_from_b0[:3, :3]), matrix_to_quat(a_from_b1[:3, :3]), alpha))
    translation = (1 - alpha) * a_from_b0[:3, 3] + alpha * a_from_b1[:3, 3]
    return se3(rotation, translation)


def yaw_matrix(yaw: float) -> np.ndarray:
    """Rotation about +z by ``yaw`` radians."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def yaw_from_matrix(rotation: np.ndarray) -> float:
    """Heading (radians about +z) of a rotation's x axis."""
    return float(np.arctan2(rotation[1, 0], rotation[0, 0]))


def wrap_angle(angle: np.ndarray | float) -> np.ndarray | float:
    """Wrap angles to (-pi, pi]."""
    return -((-np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi)


_CORNER_SIGNS = np.array(
    [[1, 1, -1], [1, -1, -1], [-1, -1, -1], [-1, 1, -1], [1, 1, 1], [1, -1, 1], [-1, -1, 1], [-1, 1, 1]],
    dtype=np.float64,
)


def box3d_corners(center: np.ndarray, size: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Corners (N, 8, 3) of boxes given centre (N,3), size (N,3) [l, w, h] and yaw (N,).

    Corners 0-3 are the bottom face, 4-7 the top; per face: front-left, front-right, rear-right, rear-left.
    """
    center = np.asarray(center, dtype=np.float64).reshape(-1, 3)
    size = np.asarray(size, dtype=np.float64).reshape(-1, 3)
    yaw = np.asarray(yaw, dtype=np.float64).reshape(-1)
    local = 0.5 * size[:, None, :] * _CORNER_SIGNS[None]
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x = c * local[..., 0] - s * local[..., 1]
    y = s * local[..., 0] + c * local[..., 1]
    return np.stack([x, y, local[..., 2]], axis=-1) + center[:, None, :]


def box_iou(a_xyxy: np.ndarray, b_xyxy: np.ndarray, *, b_iscrowd: np.ndarray | None = None) -> np.ndarray:
    """Pairwise IoU (N, M) of 2D boxes a (N, 4) and b (M, 4), pixels x1, y1, x2, y2 (no +1 pixel convention).

    Boxes that do not overlap with a positive width and height have IoU 0 (also degenerate ones). ``b_iscrowd`` (M,)
    marks crowd regions among b: their column is intersection / area of a (COCO's rule, as pycocotools computes it).
    """
    a = np.asarray(a_xyxy, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b_xyxy, dtype=np.float64).reshape(-1, 4)
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.where((width > 0) & (height > 0), width * height, 0.0)
    area_a = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None]
    area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None, :]
    union = area_a + area_b - inter
    if b_iscrowd is not None:
        crowd = np.asarray(b_iscrowd, dtype=bool).reshape(1, -1)
        if crowd.shape[1] != len(b):
            raise ValueError(f"box_iou: b_iscrowd: expected {len(b)} flags (one per box of b), found {crowd.shape[1]}")
        union = np.where(crowd, np.broadcast_to(area_a, union.shape), union)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def xyxy_to_cxcywh(xyxy: np.ndarray) -> np.ndarray:
    """(..., 4) boxes x1, y1, x2, y2 -> (..., 4) centre x, centre y, width, height (same units, e.g. pixels)."""
    xyxy = np.asarray(xyxy, dtype=np.float64)
    wh = xyxy[..., 2:] - xyxy[..., :2]
    return np.concatenate([xyxy[..., :2] + wh / 2, wh], axis=-1)


def cxcywh_to_xyxy(cxcywh: np.ndarray) -> np.ndarray:
    """(..., 4) boxes centre x, centre y, width, height -> (..., 4) x1, y1, x2, y2."""
    cxcywh = np.asarray(cxcywh, dtype=np.float64)
    half = cxcywh[..., 2:] / 2
    return np.concatenate([cxcywh[..., :2] - half, cxcywh[..., :2] + half], axis=-1)


@dataclass(frozen=True)
class BevGrid:
    """A bird's-eye-view raster over the ego frame (metres).

    Image-like orientation: row 0 is the forward edge (``x_max``), column 0 the left edge (``y_max``);
    ``row = (x_max - x) / resolution`` and ``col = (y_max - y) / resolution``.
    """

    x_min: float = -25.0
    x_max: float = 25.0
    y_min: float = -25.0
    y_max: float = 25.0
    resolution: float = 0.5

    def __post_init__(self) -> None:
        values = (self.x_min, self.x_max, self.y_min, self.y_max, self.resolution)
        finite = all(np.isfinite(float(v)) for v in values)
        if not finite or self.x_max <= self.x_min or self.y_max <= self.y_min or self.resolution <= 0:
            raise ValueError(f"BevGrid: invalid extent or resolution: {self}")

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the raster."""
        return (
            int(round((self.x_max - self.x_min) / self.resolution)),
            int(round((self.y_max - self.y_min) / self.resolution)),
        )

    def ego_to_cell(self, xy: np.ndarray) -> np.ndarray:
        """Ego-frame (x, y) metres to continuous (row, col); a cell's centre is at integer + 0.5."""
        xy = np.asarray(xy, dtype=np.float64)
        return np.stack([(self.x_max - xy[..., 0]) / self.resolution, (self.y_max - xy[..., 1]) / self.resolution], -1)

    def cell_to_ego(self, rc: np.ndarray) -> np.ndarray:
        """Continuous (row, col) to ego-frame (x, y) metres (inverse of ``ego_to_cell``)."""
        rc = np.asarray(rc, dtype=np.float64)
        return np.stack([self.x_max - rc[..., 0] * self.resolution, self.y_max - rc[..., 1] * self.resolution], -1)

    def cell_centers(self) -> np.ndarray:
        """(H, W, 2) ego (x, y) of every cell centre."""
        rows, cols = np.meshgrid(np.arange(self.shape[0]) + 0.5, np.arange(self.shape[1]) + 0.5, indexing="ij")
        return self.cell_to_ego(np.stack([rows, cols], -1))

    def contains(self, xy: np.ndarray) -> np.ndarray:
        """Boolean mask of points inside the grid extent."""
        xy = np.asarray(xy, dtype=np.float64)
        return (
            (xy[..., 0] >= self.x_min)
            & (xy[..., 0] < self.x_max)
            & (xy[..., 1] >= self.y_min)
            & (xy[..., 1] < self.y_max)
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> BevGrid:
        return cls(**{k: float(data[k]) for k in ("x_min", "x_max", "y_min", "y_max", "resolution")})
