"""YOLO txt per frame and camera: ``class cx cy w h`` normalised to [0, 1] (ultralytics layout), plus data.yaml."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autolabel.exporters.common import ExportContext, camera_boxes
from perception.atomic import atomic_write_text, path_inside
from perception.labels import ClipLabels

__all__ = ["export_yolo", "yolo_lines"]


def yolo_lines(xyxy: np.ndarray, class_id: np.ndarray, width: int, height: int) -> list[str]:
    """Rows ``class cx cy w h`` (normalised by the image size, clipped to the image)."""
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


def export_yolo(labels: ClipLabels, context: ExportContext, out_dir: Path) -> list[Path]:
    """Write ``yolo/<camera>/<frame:06d>.txt`` (one per frame, empty when no box) and ``yolo/data.yaml``."""
    root = Path(out_dir) / "yolo"
    written = []
    for camera, (width, height) in context.image_sizes.items():
        for frame, boxes in camera_boxes(labels, camera):
            path = path_inside(root, camera, f"{frame:06d}.txt")  # a camera name never leaves out_dir
            lines = yolo_lines(boxes.xyxy, boxes.class_id, width, height)
            atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
            written.append(path)
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(labels.classes))
    data = root / "data.yaml"
    atomic_write_text(data, f"# fleetvision autolabel: {context.name}\nnames:\n{names}\n")
    return written + [data]
