"""What every exporter needs besides the labels: clip name, camera image sizes, frame rate."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from perception.labels import Boxes2D, ClipLabels

__all__ = ["ExportContext", "camera_boxes", "camera_tracks"]


@dataclass(frozen=True)
class ExportContext:
    """Clip name, per-camera image size (width, height) in pixels, frames per second, number of frames; for still
    images (``stills``) the size and file name of every frame; ``videos``: camera -> the source video or image
    path relative to the job's input root (what CVAT / Label Studio tasks point at), when known."""

    name: str
    image_sizes: dict[str, tuple[int, int]]
    fps: float
    num_frames: int
    frame_sizes: dict[str, list[tuple[int, int] | None]] | None = None
    frame_files: list[str] | None = None
    videos: dict[str, str] | None = None

    @property
    def stills(self) -> bool:
        """Independent images (no tracks, one size per image)."""
        return self.frame_sizes is not None

    def size(self, camera: str, frame: int) -> tuple[int, int] | None:
        """(width, height) of one frame's image (None: a still that could not be decoded)."""
        if self.frame_sizes is not None:
            return self.frame_sizes[camera][frame]
        return self.image_sizes[camera]

    @classmethod
    def from_clip(cls, clip, *, videos: dict[str, str] | None = None) -> ExportContext:
        """From a ``perception.clip.DriveClip`` or an ``autolabel.sources.ImageSet`` (still images)."""
        if hasattr(clip, "files"):  # ImageSet
            first = next((size for size in clip.sizes if size is not None), (0, 0))
            return cls(
                clip.name, {clip.CAMERA: first}, 0.0, clip.num_frames, {clip.CAMERA: list(clip.sizes)},
                [f.name for f in clip.files], videos,
            )  # fmt: skip
        sizes = {camera.name: (int(camera.width), int(camera.height)) for camera in clip.rig}
        times = np.asarray(clip.timestamps, dtype=np.float64)
        fps = float(1.0 / np.median(np.diff(times))) if len(times) > 1 and np.median(np.diff(times)) > 0 else 10.0
        return cls(clip.name, sizes, round(fps, 6), clip.num_frames, videos=videos)


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
