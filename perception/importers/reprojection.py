"""Project 3D boxes into a camera as 2D boxes and compare them with a dataset's own 2D boxes (IoU, matching)."""

from __future__ import annotations

import numpy as np

from perception.geometry import box_iou, transform_points
from perception.labels import Boxes3D
from perception.rig import Camera


def project_boxes(
    boxes3d: Boxes3D, camera: Camera, camera_from_ego: np.ndarray, min_depth: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """2D boxes (N,4) xyxy pixels spanning each box's projected corners in front of the camera, clipped to the image.

    Returns (xyxy, valid); a box is invalid when no corner is in front of the camera or the clipped box is empty.
    """
    corners = transform_points(camera_from_ego, boxes3d.corners())  # (N, 8, 3) camera frame
    xyxy = np.full((len(boxes3d), 4), np.nan)
    valid = np.zeros(len(boxes3d), dtype=bool)
    for index, box_corners in enumerate(corners):
        front = box_corners[box_corners[:, 2] > min_depth]
        if len(front) == 0:
            continue
        uv, _ = camera.project(front)
        uv = uv[np.isfinite(uv).all(axis=1)]
        if len(uv) == 0:
            continue
        x1, y1 = np.clip(uv.min(axis=0), 0, [camera.width, camera.height])
        x2, y2 = np.clip(uv.max(axis=0), 0, [camera.width, camera.height])
        if x2 - x1 > 0 and y2 - y1 > 0:
            xyxy[index] = [x1, y1, x2, y2]
            valid[index] = True
    return xyxy, valid


def match_by_iou(projected: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching maximising IoU; returns (projected_index, reference_index) pairs (IoU > 0 only)."""
    from scipy.optimize import linear_sum_assignment

    if len(projected) == 0 or len(reference) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    iou = box_iou(projected, reference)
    rows, cols = linear_sum_assignment(-iou)
    keep = iou[rows, cols] > 0
    return rows[keep], cols[keep]


def reference_box_ious(
    boxes3d: Boxes3D,
    camera: Camera,
    camera_from_ego: np.ndarray,
    reference_xyxy: np.ndarray,
    reference_class: np.ndarray | None = None,
) -> np.ndarray:
    """IoU of each reference 2D box with its matched projected 3D box (0 when unmatched); one value per reference box.

    Matching is Hungarian on IoU within each class (when classes are given), so every reference box counts once.
    """
    xyxy, valid = project_boxes(boxes3d, camera, camera_from_ego)
    reference_xyxy = np.asarray(reference_xyxy, dtype=np.float64).reshape(-1, 4)
    result = np.zeros(len(reference_xyxy))
    classes = [None] if reference_class is None else np.unique(reference_class)
    for cls in classes:
        ref_index = np.arange(len(reference_xyxy)) if cls is None else np.nonzero(reference_class == cls)[0]
        box_index = np.nonzero(valid if cls is None else valid & (boxes3d.class_id == cls))[0]
        rows, cols = match_by_iou(xyxy[box_index], reference_xyxy[ref_index])
        result[ref_index[cols]] = box_iou(xyxy[box_index[rows]], reference_xyxy[ref_index[cols]]).diagonal()
    return result
