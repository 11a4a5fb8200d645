"""A synthetic replay clip (``perception.rig.ring_rig`` cameras, ego driving forward, boxes painted where they
project) for the deploy tests. Not a training-quality world: use ``perception synth`` for that."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from perception.clip import ClipWriter
from perception.geometry import box3d_corners, se3, yaw_matrix
from perception.labels import DRIVING_CLASSES, Boxes3D, ClipLabels, FrameLabels, make_provenance
from perception.rig import Rig, ring_rig


def write_synthetic_clip(
    path: str | Path,
    *,
    rig: Rig | None = None,
    frames: int = 40,
    fps: float = 20.0,
    speed_mps: float = 8.0,
    num_boxes: int = 8,
    seed: int = 0,
    camera_offset_s: float = 0.0,
    overwrite: bool = True,
) -> Path:
    """Write a clip: textured ground/sky, static 3D boxes drawn as filled footprints + outlines, GT labels.

    ``camera_offset_s`` delays camera i's capture by ``i * camera_offset_s`` (rolling rig timing)."""
    import cv2

    rig = rig or ring_rig()
    rng = np.random.default_rng(seed)
    angles = rng.uniform(-math.pi, math.pi, num_boxes)
    ranges = rng.uniform(6.0, 22.0, num_boxes)
    classes = rng.integers(0, 3, num_boxes)
    sizes = np.array([[4.4, 1.9, 1.6], [8.0, 2.5, 3.0], [11.0, 2.6, 3.2]])[classes]
    world_center = np.stack([ranges * np.cos(angles), ranges * np.sin(angles), sizes[:, 2] / 2], axis=1)
    world_yaw = rng.uniform(-math.pi, math.pi, num_boxes)
    colors = rng.integers(40, 255, (num_boxes, 3))
    labels = []
    with ClipWriter(path, rig, fps=fps, overwrite=overwrite) as writer:
        for index in range(frames):
            t = index / fps
            world_from_ego = se3(yaw_matrix(0.0), np.array([speed_mps * t, 0.0, 0.0]))
            ego_center = world_center - world_from_ego[:3, 3]
            boxes = Boxes3D(
                center=ego_center,
                size=sizes,
                yaw=world_yaw,
                velocity=np.zeros((num_boxes, 2)),
                class_id=classes.astype(np.int64),
                track_id=np.arange(num_boxes),
            )
            corners = box3d_corners(boxes.center, boxes.size, boxes.yaw)
            images, times = {}, {}
            for n, camera in enumerate(rig):
                image = np.zeros((camera.height, camera.width, 3), np.uint8)
                image[: camera.height // 2] = (150, 120, 90)
                image[camera.height // 2 :] = (70, 75, 80)
                noise = rng.integers(0, 24, (camera.height, camera.width, 1), dtype=np.uint8)
                image = cv2.add(image, np.repeat(noise, 3, axis=2))
                for b in range(num_boxes):
                    uv, depth = camera.project_ego(corners[b])
                    if np.all(depth > 0.5) and np.all(np.isfinite(uv)):
                        hull = cv2.convexHull(np.round(uv).astype(np.int32))
                        cv2.fillConvexPoly(image, hull, tuple(int(c) for c in colors[b]))
                images[camera.name] = image
                times[camera.name] = t + n * camera_offset_s
            writer.add_frame(images, t, world_from_ego, camera_timestamps=times)
            labels.append(FrameLabels(boxes3d=boxes, boxes2d={}))
        writer.set_labels(
            ClipLabels(list(DRIVING_CLASSES), labels, make_provenance("ground_truth", "tests.deploy.synthetic_clip"))
        )
    return Path(path)
