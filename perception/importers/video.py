"""Plain videos (or image folders) to one-camera drive clips.

Timing: each frame's presentation time from the container (PyAV; right for the variable frame rate of phones and dash
cams; frame 0 at 0 s), an image folder's ``frames.csv`` ``timestamp`` column, else i / 10 s for image folders;
``--fps`` forces frame i to i / fps seconds.
Poses: identity (no odometry), so ``world_from_ego`` is the same every frame. Intrinsics: from a camera YAML (a
rig.yaml or a ``perception calibrate`` output; the first camera, or ``camera_name``, is used, rescaled if its size
differs by the same factor on both axes), else a nominal pinhole (fx = fy = image width, about 53 degrees
horizontal field of view, principal point at the centre) that is documented as a guess, not a calibration.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from perception.clip import ClipError, ClipWriter, DriveClip
from perception.rig import Camera, Rig


def load_camera_yaml(path: str | os.PathLike, width: int, height: int, camera_name: str | None = None) -> Camera:
    """A camera entry from a rig.yaml-style file, scaled to ``width`` x ``height`` (same aspect ratio required)."""
    camera_rig = Rig.load(path)
    camera = camera_rig[camera_name] if camera_name else camera_rig.cameras[0]
    if (camera.width, camera.height) != (width, height):
        if abs(camera.width / camera.height - width / height) > 0.01:
            raise ClipError(
                f"{path}: camera {camera.name!r} is {camera.width}x{camera.height}, the video is {width}x{height}: "
                f"expected the same aspect ratio to rescale the intrinsics"
            )
        camera = camera.resized(width, height)
    return camera


def import_video(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    fps: float | None = None,
    camera_yaml: str | os.PathLike | None = None,
    camera_name: str = "camera",
    max_frames: int | None = None,
    image_format: str = "mp4",
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a one-camera clip from a video file or image folder (see the module docstring for timing and K)."""
    from tqdm import tqdm

    view = DriveClip.from_video(source, fps=fps, camera_name=camera_name)
    camera = view.rig.cameras[0]
    if camera_yaml is not None:
        calibrated = load_camera_yaml(camera_yaml, camera.width, camera.height)
        camera = Camera(
            camera_name,
            camera.width,
            camera.height,
            calibrated.K,
            calibrated.ego_from_camera,
            calibrated.distortion_model,
            calibrated.distortion,
        )
    rig = Rig([camera])
    count = view.num_frames if max_frames is None else min(view.num_frames, max_frames)
    identity = np.eye(4)
    with ClipWriter(
        out,
        rig,
        fps=1.0 / np.median(np.diff(view.timestamps)) if count > 1 else 10.0,
        image_format=image_format,
        overwrite=overwrite,
    ) as writer:
        for frame in tqdm(
            view.frames(stop=count),
            total=count,
            desc=f"importing {Path(source).name}",
            unit="frame",
            disable=not progress,
        ):
            writer.add_frame({camera_name: frame.images[camera_name]}, float(view.timestamps[frame.index]), identity)
    return Path(out)


__all__ = ["import_video", "load_camera_yaml"]
