"""MOTChallenge result txt per camera: ``frame,id,bb_left,bb_top,bb_width,bb_height,conf,-1,-1,-1`` (1-based frames)."""

from __future__ import annotations

from pathlib import Path

from autolabel.exporters.common import ExportContext, camera_boxes
from perception.atomic import atomic_write_text, path_inside
from perception.labels import ClipLabels

__all__ = ["export_mot", "mot_lines"]


def mot_lines(labels: ClipLabels, camera: str) -> list[str]:
    """MOTChallenge rows for one camera, sorted by frame then track id (boxes without a track id skipped)."""
    rows = []
    for frame, boxes in camera_boxes(labels, camera):
        for row in range(len(boxes)):
            track_id = int(boxes.track_id[row])
            if track_id < 0:
                continue
            x1, y1, x2, y2 = (float(v) for v in boxes.xyxy[row])
            rows.append(
                (
                    frame + 1,
                    track_id,
                    f"{frame + 1},{track_id},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},"
                    f"{float(boxes.score[row]):.4f},-1,-1,-1",
                )
            )
    return [text for _, _, text in sorted(rows)]


def export_mot(labels: ClipLabels, context: ExportContext, out_dir: Path) -> list[Path]:
    """Write ``mot/<camera>.txt`` for each camera."""
    written = []
    for camera in context.image_sizes:
        path = path_inside(out_dir, "mot", f"{camera}.txt")  # a camera name never leaves out_dir
        lines = mot_lines(labels, camera)
        atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
        written.append(path)
    return written
