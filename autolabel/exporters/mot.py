"""MOTChallenge result txt, one file per class and camera: ``mot/<class>/<camera>.txt`` with rows
``frame,id,bb_left,bb_top,bb_width,bb_height,conf,-1,-1,-1`` (1-based frames).

One file per class is the benchmark convention (MOTChallenge scores pedestrians only): point TrackEval's tracker
folder at ``mot/pedestrian`` and parked cars are not counted as false positives. Still images have no tracks and
write no MOT files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from autolabel.exporters.common import ExportContext, camera_boxes
from perception.atomic import atomic_write_text, path_inside
from perception.labels import ClipLabels

__all__ = ["export_mot", "mot_lines"]


def mot_lines(labels: ClipLabels, camera: str, class_id: int | None = None) -> list[str]:
    """MOTChallenge rows for one camera (and one class id, or all), sorted by frame then track id (boxes without a
    track id skipped)."""
    rows = []
    for frame, boxes in camera_boxes(labels, camera):
        for row in range(len(boxes)):
            track_id = int(boxes.track_id[row])
            if track_id < 0 or (class_id is not None and int(boxes.class_id[row]) != class_id):
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


def export_mot(
    labels: ClipLabels, context: ExportContext, out_dir: Path, *, classes: Sequence[str] | None = None
) -> list[Path]:
    """Write ``mot/<class>/<camera>.txt`` for each class (``classes``, default every class of the labels) and camera
    (an empty file where a class has no track, so every sequence is there for the evaluator)."""
    if context.stills:
        return []
    unknown = [name for name in classes or () if name not in labels.classes]
    if unknown:
        raise ValueError(f"MOT export: classes {unknown} are not label classes {labels.classes}")
    written = []
    for name in classes or labels.classes:
        for camera in context.image_sizes:
            path = path_inside(out_dir, "mot", name, f"{camera}.txt")  # a class or camera name never leaves out_dir
            lines = mot_lines(labels, camera, labels.classes.index(name))
            atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
            written.append(path)
    return written
