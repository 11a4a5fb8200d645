"""YOLO label rows ``class cx cy w h`` normalised to [0, 1] by the image size (ultralytics layout); the training
dataset around them (frames, images/ + labels/, data.yaml) is written by ``autolabel.exporters.dataset``."""

from __future__ import annotations

import numpy as np

__all__ = ["yolo_lines"]


def yolo_lines(xyxy: np.ndarray, class_id: np.ndarray, width: int, height: int) -> list[str]:
    """Rows ``class cx cy w h`` (normalised by the image size, clipped to the image; empty boxes dropped)."""
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4).copy()
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    lines = []
    for (x1, y1, x2, y2), cls in zip(boxes, class_id):
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            continue
        lines.append(
            f"{int(cls)} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
            f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
        )
    return lines
