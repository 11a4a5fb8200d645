"""What every exporter needs besides the labels: clip name, camera image sizes, frame rate."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from perception.labels import Boxes2D, ClipLabels

__all__ = ["ExportContext", "camera_boxes", "camera_tracks"]


@dataclass(frozen=True)
class ExportContext:
    """Clip name, per-camera image size (width, height) in pixels, frames per second, number of frames."""

    name: str
    image_sizes: dict[str, tuple[int, int]]
    fps: float
    num_frames: int

    @classmethod
    def from_clip(cls, clip) -> ExportContext:
        """From a ``perception.clip.DriveClip``."""
        sizes = {camera.name: (int(camera.width), int(camera.height)) for camera in clip.rig}
        times = np.asarray(clip.timestamps, dtype=np.float64)
        fps = float(1.0 / np.median(np.diff(times))) if len(times) > 1 and np.median(np.diff(times)) > 0 else 10.0
        return cls(clip.name, sizes, round(fps, 6), clip.num_frames)


def camera_boxes(labels: ClipLabels, camera: str) -> Iterator[tuple[int, Boxes2D]]:
    """(frame index, Boxes2D) for one camera over the clip (empty boxes where the camera has none)."""
    for index, frame in enumerate(labels.frames):
        yield index, frame.boxes2d.get(camera, Boxes2D.empty())


def camera_tracks(labels: ClipLabels, camera: str) -> dict[int, list[tuple[int, np.ndarray, int, float]]]:
    """track id -> [(frame, xyxy, class_id, score)] sorted by frame, for one camera (boxes without id skipped)."""
    tracks: dict[int, list[tuple[int, np.ndarray, int, float]]] = {}
    for index, boxes in camera_boxes(labels, camera):
        for row in range(len(boxes)):
            track_id = int(boxes.track_id[row])
            if track_id < 0:
                continue
            tracks.setdefault(track_id, []).append(
                (index, boxes.xyxy[row], int(boxes.class_id[row]), float(boxes.score[row]))
            )
    return dict(sorted(tracks.items()))
