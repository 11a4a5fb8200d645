"""What every exporter needs besides the labels: clip name, camera image sizes, frame rate."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from perception.labels import Boxes2D, ClipLabels

__all__ = ["ExportContext", "atomic_text_stream", "camera_boxes", "camera_tracks"]


@contextlib.contextmanager
def atomic_text_stream(path: Path) -> Iterator[IO[str]]:
    """Write a text file piece by piece (no whole document in memory) into a temp file renamed on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            yield stream
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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
