"""Annotated output video (camera mosaic with predicted 3D boxes beside the BEV panel), written from a background
thread so drawing never delays the next inference."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import numpy as np

from perception.geometry import BevGrid
from perception.labels import Boxes3D
from perception.rig import Rig


def compose(
    images: dict[str, np.ndarray],
    boxes3d: Boxes3D,
    rig: Rig,
    camera_from_ego: dict[str, np.ndarray],
    classes: list[str] | None,
    grid: BevGrid | None,
    segmentation: np.ndarray | None,
    segmentation_classes: list[str] | None,
    caption: str,
    tile_width: int = 320,
) -> np.ndarray:
    """One BGR frame: annotated mosaic + BEV panel (boxes dashed, segmentation >= 0.5 filled)."""
    import cv2

    from perception.viz import draw_boxes3d_on_image, render_bev, render_mosaic

    annotated = {
        name: draw_boxes3d_on_image(image, boxes3d, rig[name], camera_from_ego[name], classes, style="pred")
        for name, image in images.items()
    }
    mosaic = render_mosaic(
        annotated, columns=3 if len(annotated) > 2 else max(1, len(annotated)), tile_width=tile_width
    )
    panel_grid = grid or BevGrid()
    maps = (segmentation >= 0.5).astype(np.uint8) if segmentation is not None else None
    bev = render_bev(None, panel_grid, maps, boxes3d, classes, segmentation_classes, size=max(mosaic.shape[0], 240))
    if bev.shape[0] != mosaic.shape[0]:
        bev = cv2.resize(bev, (int(round(bev.shape[1] * mosaic.shape[0] / bev.shape[0])), mosaic.shape[0]))
    canvas = np.concatenate([mosaic, bev], axis=1)
    cv2.putText(
        canvas, caption, (4, canvas.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA
    )
    return np.ascontiguousarray(canvas[: canvas.shape[0] // 2 * 2, : canvas.shape[1] // 2 * 2])


class VideoSink(threading.Thread):
    """Renders and writes frames handed over by ``submit`` (bounded queue: blocks when 8 frames are waiting)."""

    def __init__(self, path: Path, fps: float) -> None:
        super().__init__(name="video-sink", daemon=True)
        self.path, self.fps = Path(path), fps
        self.jobs: queue.Queue = queue.Queue(maxsize=8)
        self.error: BaseException | None = None
        self.frames_written = 0

    def submit(self, **job) -> None:
        self.jobs.put(job)

    def close(self) -> None:
        self.jobs.put(None)
        self.join()

    def run(self) -> None:
        from perception.video import VideoWriter

        writer = VideoWriter(self.path, self.fps, resize_mismatched=True)
        try:
            while True:
                job = self.jobs.get()
                if job is None:
                    break
                writer.write(compose(**job))
                self.frames_written += 1
            writer.close()
        except BaseException as error:  # reported by the engine's summary
            self.error = error
            writer.abort()
            while self.jobs.get() is not None:
                pass
