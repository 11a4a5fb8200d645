"""Training-target encoders (numpy, for data-loader workers): CenterPoint BEV boxes and CenterNet 2D boxes.

All outputs are dense, fixed-size float32 arrays laid out exactly like the model outputs they supervise,
so a batch is just ``np.stack``/default collate, and losses pair ``outputs[key]`` with ``targets[key]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

GRID_FIELDS = ("x_min", "x_max", "y_min", "y_max", "resolution")


def grid_values(grid: Any) -> tuple[float, float, float, float, float]:
    """(x_min, x_max, y_min, y_max, resolution) of a ``BevGrid``, or of a mapping with those keys."""
    if isinstance(grid, Mapping):
        return tuple(float(grid[k]) for k in GRID_FIELDS)  # type: ignore[return-value]
    return tuple(float(getattr(grid, k)) for k in GRID_FIELDS)  # type: ignore[return-value]


def grid_shape(grid: Any) -> tuple[int, int]:
    """(rows, cols) of a grid (see ``grid_values``)."""
    x_min, x_max, y_min, y_max, res = grid_values(grid)
    return round((x_max - x_min) / res), round((y_max - y_min) / res)


def gaussian_radius(height: float, width: float, *, min_overlap: float = 0.1) -> float:
    """Largest centre shift (cells) keeping IoU >= ``min_overlap`` with a box of height x width cells (CornerNet)."""
    area = height * width
    total = height + width
    # Three cases: both corners shifted inward / outward / one each; take the most restrictive radius.
    b1, c1 = total, area * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(max(b1 * b1 - 4 * c1, 0.0))) / 2
    b2, c2 = 2 * total, (1 - min_overlap) * area
    r2 = (b2 + math.sqrt(max(b2 * b2 - 16 * c2, 0.0))) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * total, (min_overlap - 1) * area
    r3 = (b3 + math.sqrt(max(b3 * b3 - 4 * a3 * c3, 0.0))) / 2
    return min(r1, r2, r3)


def draw_gaussian(
    heatmap: np.ndarray,
    row: int,
    col: int,
    radius: int,
    *,
    quality_map: np.ndarray | None = None,
    quality: float = 1.0,
) -> None:
    """Max-combine a gaussian (sigma = diameter/6, peak 1 at (row, col)) into ``heatmap`` [H,W] in place.

    ``quality_map`` [H,W]: set to ``quality`` where this gaussian is the largest so far (the higher on a tie)."""
    sigma = (2 * radius + 1) / 6.0
    rows, cols = heatmap.shape
    r0, r1 = max(row - radius, 0), min(row + radius + 1, rows)
    c0, c1 = max(col - radius, 0), min(col + radius + 1, cols)
    if r0 >= r1 or c0 >= c1:
        return
    dr = np.arange(r0, r1)[:, None] - row
    dc = np.arange(c0, c1)[None, :] - col
    blob = np.exp(-(dr * dr + dc * dc) / (2 * sigma * sigma)).astype(np.float32)
    if quality_map is not None:
        before, region = heatmap[r0:r1, c0:c1], quality_map[r0:r1, c0:c1]
        region[:] = np.where(blob > before, quality, np.where(blob == before, np.maximum(region, quality), region))
    np.maximum(heatmap[r0:r1, c0:c1], blob, out=heatmap[r0:r1, c0:c1])


def _centre_cells(center: np.ndarray, size: np.ndarray, grid: Any, min_radius: int, min_overlap: float):
    """Per box on the grid: (index, (row_f, col_f, row, col, heatmap radius in cells)); boxes off the grid skipped.
    The one cell-and-radius rule of the heatmap targets and the ignore mask."""
    _, x_max, _, y_max, res = grid_values(grid)
    rows, cols = grid_shape(grid)
    for i in range(len(center)):
        row_f, col_f = (x_max - center[i, 0]) / res, (y_max - center[i, 1]) / res
        row, col = math.floor(row_f), math.floor(col_f)
        if 0 <= row < rows and 0 <= col < cols:
            radius = gaussian_radius(size[i, 0] / res, size[i, 1] / res, min_overlap=min_overlap)
            yield i, (row_f, col_f, row, col, max(min_radius, int(radius)))


def encode_bev_targets(
    *,
    center: np.ndarray,
    size: np.ndarray,
    yaw: np.ndarray,
    velocity: np.ndarray,
    class_id: np.ndarray,
    num_classes: int,
    grid: Any,
    min_radius: int = 2,
    min_overlap: float = 0.1,
    quality: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """CenterPoint targets on ``grid`` (the model's ``head_grid()``) from ego-frame boxes (metres, radians).

    center (M,3) box centres, size (M,3) [l,w,h], yaw (M,), velocity (M,2) (NaN = unknown), class_id (M,).
    Returns heatmap (K,H,W); offset (2,H,W) = (row, col) position of the centre inside its cell in [0,1);
    z (1,H,W) metres; size (3,H,W) log metres; yaw (2,H,W) (sin, cos); velocity (2,H,W) m/s;
    reg_mask (H,W) 1 at object cells; velocity_mask (H,W) 1 where velocity is known. Boxes off the grid are skipped.

    ``quality`` (M,) in [0, 1]: how likely each box is a real object (soft pseudo-labels; ground truth is 1). Adds
    heatmap_quality (K,H,W), the quality of the box whose gaussian covers each cell most (1 elsewhere), and the
    regression masks hold the box's quality instead of 1 (``focal_heatmap_loss(..., quality=)``).
    """
    center = np.asarray(center, np.float64).reshape(-1, 3)
    size = np.asarray(size, np.float64).reshape(-1, 3)
    yaw = np.asarray(yaw, np.float64).reshape(-1)
    velocity = np.asarray(velocity, np.float64).reshape(-1, 2)
    class_id = np.asarray(class_id, np.int64).reshape(-1)
    count = len(center)
    weight = np.ones(count) if quality is None else np.clip(np.asarray(quality, np.float64).reshape(-1), 0.0, 1.0)
    columns = {"size": size, "yaw": yaw, "velocity": velocity, "class_id": class_id, "quality": weight}
    for name, arr in columns.items():
        if len(arr) != count:
            raise ValueError(f"encode_bev_targets: {name} has {len(arr)} rows, expected {count} (as center)")
    if count and (class_id.min() < 0 or class_id.max() >= num_classes):
        raise ValueError(
            f"encode_bev_targets: class_id must be in [0, {num_classes}), found {sorted(set(class_id.tolist()))}"
        )
    rows, cols = grid_shape(grid)
    out = {
        "heatmap": np.zeros((num_classes, rows, cols), np.float32),
        "offset": np.zeros((2, rows, cols), np.float32),
        "z": np.zeros((1, rows, cols), np.float32),
        "size": np.zeros((3, rows, cols), np.float32),
        "yaw": np.zeros((2, rows, cols), np.float32),
        "velocity": np.zeros((2, rows, cols), np.float32),
        "reg_mask": np.zeros((rows, cols), np.float32),
        "velocity_mask": np.zeros((rows, cols), np.float32),
    }
    quality_map = None if quality is None else np.ones((num_classes, rows, cols), np.float32)
    for i, (row_f, col_f, row, col, radius) in _centre_cells(center, size, grid, min_radius, min_overlap):
        cls_quality = None if quality_map is None else quality_map[class_id[i]]
        draw_gaussian(out["heatmap"][class_id[i]], row, col, radius, quality_map=cls_quality, quality=weight[i])
        out["offset"][:, row, col] = (row_f - row, col_f - col)
        out["z"][0, row, col] = center[i, 2]
        out["size"][:, row, col] = np.log(np.maximum(size[i], 1e-3))
        out["yaw"][:, row, col] = (math.sin(yaw[i]), math.cos(yaw[i]))
        out["reg_mask"][row, col] = weight[i]
        if np.all(np.isfinite(velocity[i])):
            out["velocity"][:, row, col] = velocity[i]
            out["velocity_mask"][row, col] = weight[i]
    if quality_map is not None:
        out["heatmap_quality"] = quality_map
    return out


def encode_ignore_mask(
    *,
    center: np.ndarray,
    size: np.ndarray,
    class_id: np.ndarray,
    num_classes: int,
    grid: Any,
    min_radius: int = 2,
    min_overlap: float = 0.1,
) -> np.ndarray:
    """``heatmap_ignore`` (K,H,W) float32: 1 in the square of each box's heatmap radius around its centre cell.

    For boxes whose label is uncertain (a pseudo-label below its class floor): the heatmap loss treats those cells
    as neither object nor background (``focal_heatmap_loss(..., ignore=)``). Same grid and radius rule as
    ``encode_bev_targets``; boxes off the grid are skipped."""
    center = np.asarray(center, np.float64).reshape(-1, 3)
    size = np.asarray(size, np.float64).reshape(-1, 3)
    class_id = np.asarray(class_id, np.int64).reshape(-1)
    if not (len(size) == len(class_id) == len(center)):
        raise ValueError(
            f"encode_ignore_mask: center, size and class_id need one row per box, found "
            f"{len(center)}, {len(size)}, {len(class_id)}"
        )
    mask = np.zeros((num_classes, *grid_shape(grid)), np.float32)
    for i, (_, _, row, col, radius) in _centre_cells(center, size, grid, min_radius, min_overlap):
        if 0 <= class_id[i] < num_classes:
            mask[class_id[i], max(row - radius, 0) : row + radius + 1, max(col - radius, 0) : col + radius + 1] = 1.0
    return mask


def encode_det2d_targets(
    *,
    boxes_xyxy: np.ndarray,
    class_id: np.ndarray,
    num_classes: int,
    image_size: tuple[int, int],
    stride: int,
    min_radius: int = 0,
    min_overlap: float = 0.7,
) -> dict[str, np.ndarray]:
    """CenterNet targets for ONE camera image of ``image_size`` (H, W) pixels at output ``stride``.

    Returns det2d_heatmap (K,h,w), det2d_box (4,h,w) = (offset_x, offset_y of the centre inside its cell,
    log(w/stride), log(h/stride)), det2d_mask (h,w); h = ceil(H/stride), w = ceil(W/stride).
    Boxes are clipped to the image; empty ones are skipped. Stack cameras with ``np.stack`` for [N,...].
    """
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    class_id = np.asarray(class_id, np.int64).reshape(-1)
    if len(class_id) != len(boxes):
        raise ValueError(f"encode_det2d_targets: class_id has {len(class_id)} rows, expected {len(boxes)}")
    if len(boxes) and (class_id.min() < 0 or class_id.max() >= num_classes):
        raise ValueError(
            f"encode_det2d_targets: class_id must be in [0, {num_classes}), found {sorted(set(class_id.tolist()))}"
        )
    height, width = image_size
    rows, cols = math.ceil(height / stride), math.ceil(width / stride)
    out = {
        "det2d_heatmap": np.zeros((num_classes, rows, cols), np.float32),
        "det2d_box": np.zeros((4, rows, cols), np.float32),
        "det2d_mask": np.zeros((rows, cols), np.float32),
    }
    boxes = boxes.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    for box, cls in zip(boxes, class_id):
        box_w, box_h = box[2] - box[0], box[3] - box[1]
        if box_w <= 0 or box_h <= 0:
            continue
        cx, cy = (box[0] + box[2]) / (2 * stride), (box[1] + box[3]) / (2 * stride)
        col, row = min(math.floor(cx), cols - 1), min(math.floor(cy), rows - 1)
        radius = gaussian_radius(box_h / stride, box_w / stride, min_overlap=min_overlap)
        draw_gaussian(out["det2d_heatmap"][cls], row, col, max(min_radius, int(radius)))
        out["det2d_box"][:, row, col] = (cx - col, cy - row, math.log(box_w / stride), math.log(box_h / stride))
        out["det2d_mask"][row, col] = 1.0
    return out
