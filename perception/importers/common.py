"""Helpers shared by the importers: orthonormal poses, JPEG sizes, and clip writing that keeps original JPEG bytes."""

from __future__ import annotations

import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception.atomic import atomic_directory, path_inside
from perception.clip import ClipError, ClipWriter
from perception.labels import ClipLabels
from perception.rig import Rig

NUSCENES_CLASSES = (
    "car",
    "truck",
    "trailer",
    "bus",
    "construction_vehicle",
    "bicycle",
    "motorcycle",
    "pedestrian",
    "traffic_cone",
    "barrier",
)
NUSCENES_CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")


def orthonormalize(transform: np.ndarray) -> np.ndarray:
    """Nearest rigid transform (SVD on the rotation block): cleans float32 matrices from info files."""
    transform = np.array(transform, dtype=np.float64)
    u, _, vt = np.linalg.svd(transform[:3, :3])
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        u[:, -1] *= -1
        rotation = u @ vt
    transform[:3, :3] = rotation
    transform[3] = [0, 0, 0, 1]
    return transform


def jpeg_size(path: Path) -> tuple[int, int]:
    """(width, height) of a JPEG from its SOF header, without decoding the pixels."""
    with open(path, "rb") as stream:
        if stream.read(2) != b"\xff\xd8":
            raise ClipError(f"{path}: not a JPEG file (no SOI marker)")
        while True:
            marker = stream.read(2)
            if len(marker) < 2 or marker[0] != 0xFF:
                raise ClipError(f"{path}: JPEG header ends before a frame header (truncated file?)")
            code = marker[1]
            if code in (0xD8, 0x01) or 0xD0 <= code <= 0xD7:
                continue
            (length,) = struct.unpack(">H", stream.read(2))
            if code in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                height, width = struct.unpack(">xHH", stream.read(5))
                return int(width), int(height)
            stream.seek(length - 2, os.SEEK_CUR)


@dataclass
class JpegFrame:
    """One clip frame whose images are existing JPEG files (copied byte for byte)."""

    images: dict[str, Path]
    timestamp: float
    world_from_ego: np.ndarray
    camera_timestamps: dict[str, float]


def write_jpeg_clip(
    out: Path,
    rig: Rig,
    frames: list[JpegFrame],
    poses: list[tuple[float, np.ndarray]],
    labels: ClipLabels | None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a clip whose cameras are image folders holding the original JPEG bytes (full resolution, no re-encode).

    ClipWriter writes the tables into a staging folder beside ``out`` (with placeholder images); the original
    files then replace the placeholders and the staging folder is renamed into place.
    """
    from tqdm import tqdm

    out = Path(out)
    if out.exists() and not overwrite:
        raise ClipError(f"{out}: already exists (pass --overwrite to replace it)")
    placeholders = {camera.name: np.zeros((camera.height, camera.width, 3), np.uint8) for camera in rig}
    for frame in frames:
        for name, image_path in frame.images.items():
            size = jpeg_size(image_path)
            if size != (rig[name].width, rig[name].height):
                raise ClipError(
                    f"{image_path}: image is {size[0]}x{size[1]}, "
                    f"camera {name!r} is {rig[name].width}x{rig[name].height}"
                )
    with atomic_directory(out, tag="import") as staging:
        with ClipWriter(staging, rig, image_format="jpg", overwrite=True) as writer:
            for frame in tqdm(frames, desc=f"writing {out.name}", unit="frame", disable=not progress):
                writer.add_frame(placeholders, frame.timestamp, frame.world_from_ego, frame.camera_timestamps)
            for t, pose in poses:
                writer.add_pose(t, pose)
            if labels is not None:
                writer.set_labels(labels)
        for index, frame in enumerate(frames):
            for name, image_path in frame.images.items():
                shutil.copyfile(image_path, path_inside(staging, "cameras", name, f"{index:06d}.jpg"))
        check_written_clip(staging, out)
    return out


def check_written_clip(staging: Path, out: Path) -> None:
    """``perception check`` (every frame decoded) on a finished staging folder before it replaces ``out``: an
    importer never writes, or replaces a good clip with, a clip the check rejects."""
    from perception.check import check_clip

    report = check_clip(staging, deep=True)
    if not report.ok:
        problems = "; ".join(" ".join(error.replace(str(staging), str(out)).split()) for error in report.errors[:3])
        raise ClipError(f"{out}: the imported clip fails 'perception check', so nothing was written: {problems}")


def dedupe_poses(poses: list[tuple[float, np.ndarray]], min_gap: float = 1e-6) -> list[tuple[float, np.ndarray]]:
    """Sort a pose stream by time and drop samples closer than ``min_gap`` seconds to the previous one."""
    kept: list[tuple[float, np.ndarray]] = []
    for t, pose in sorted(poses, key=lambda item: item[0]):
        if not kept or t - kept[-1][0] > min_gap:
            kept.append((t, pose))
    return kept
