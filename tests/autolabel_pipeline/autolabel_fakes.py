"""Test fixtures for the autolabel job: synthetic blob videos / image folders / clips and a weight-free teacher."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from autolabel.teachers.base import Teacher
from perception.clip import ClipWriter
from perception.geometry import se3
from perception.labels import Boxes2D
from perception.rig import Camera, Rig
from perception.video import VideoWriter

BLOB_TEACHER = "class_path:autolabel_fakes.BlobTeacher"  # --teacher spec (this folder must be on sys.path)
WIDTH, HEIGHT = 192, 128
RED, BLUE = (30, 30, 230), (230, 60, 30)  # BGR: red -> car, blue -> pedestrian


def blob_frame(index: int, *, width: int = WIDTH, height: int = HEIGHT, offset: int = 0) -> np.ndarray:
    """Grey background with a red box moving right and a blue box moving down (deterministic)."""
    image = np.full((height, width, 3), 110, np.uint8)
    x = 10 + 3 * index + offset
    cv2.rectangle(image, (x, 40), (x + 30, 70), RED, -1)
    y = 10 + 2 * index
    cv2.rectangle(image, (130, y), (145, y + 35), BLUE, -1)
    return image


def write_blob_video(path: Path, frames: int = 24, offset: int = 0) -> Path:
    with VideoWriter(path, 10.0, (WIDTH, HEIGHT)) as writer:
        for i in range(frames):
            writer.write(blob_frame(i, offset=offset))
    return path


def write_blob_images(folder: Path, frames: int = 12) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        cv2.imwrite(str(folder / f"{i:06d}.png"), blob_frame(i))
    return folder


def write_blob_clip(path: Path, frames: int = 12) -> Path:
    """A two-camera drive clip (front, rear) whose images hold blobs."""
    K = np.array([[100.0, 0, WIDTH / 2], [0, 100.0, HEIGHT / 2], [0, 0, 1]])
    front = se3(np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]]), [1.5, 0, 1.5])
    rear = se3(np.array([[0.0, 0, -1], [1, 0, 0], [0, -1, 0]]), [-0.5, 0, 1.5])
    rig = Rig([Camera("front", WIDTH, HEIGHT, K, front), Camera("rear", WIDTH, HEIGHT, K, rear)])
    with ClipWriter(path, rig, fps=10.0, image_format="png") as writer:
        for i in range(frames):
            writer.add_frame(
                {"front": blob_frame(i), "rear": blob_frame(i, offset=20)}, 0.1 * i, se3(np.eye(3), [0.5 * i, 0, 0])
            )
    return path


class BlobTeacher(Teacher):
    """Finds saturated red / blue blobs: red -> 'car', blue -> 'pedestrian' (score 0.9); optional delay per call."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.class_names = ["car", "pedestrian"]
        self.delay_s = delay_s

    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Boxes2D]:
        if self.delay_s:
            time.sleep(self.delay_s)
        out = []
        for frame in frames:
            boxes, classes = [], []
            for class_id, channel in ((0, 2), (1, 0)):
                others = [c for c in range(3) if c != channel]
                mask = ((frame[..., channel] > 170) & (frame[..., others].max(axis=2) < 100)).astype(np.uint8)
                _count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
                for x, y, w, h, area in stats[1:]:
                    if area >= 40 and w >= 4 and h >= 4:
                        boxes.append([x, y, x + w, y + h])
                        classes.append(class_id)
            out.append(
                Boxes2D(
                    xyxy=np.array(boxes, float).reshape(-1, 4),
                    score=np.full(len(boxes), 0.9, np.float32),
                    class_id=np.array(classes, np.int64),
                )
            )
        return out


class WeightsBlobTeacher(BlobTeacher):
    """BlobTeacher that names a weights file (read for its bytes only), to test the config hash of weights."""

    weights_argument = "weights_path"

    def __init__(self, weights_path: str, delay_s: float = 0.0) -> None:
        super().__init__(delay_s)
        Path(weights_path).read_bytes()
        self.name = f"blob:{Path(weights_path).name}"
