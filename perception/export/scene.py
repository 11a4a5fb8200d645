"""What the viewer exports share: a clip's frames as timed camera views, and the label sets drawn on them.

Geometry follows DESIGN.md: 3D boxes live in the ego frame at the frame's reference time; each camera image is
placed at its own capture time, ``world_from_camera = pose_at(t_camera) @ ego_from_camera`` (optical axes:
x right, y down, z forward). Times are the clip's seconds (Unix seconds for imported robot logs).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception.clip import ClipError, DriveClip
from perception.labels import Boxes2D, Boxes3D, ClipLabels, FrameLabels, LabelsError
from perception.video import image_files


@dataclass
class LabelSource:
    """One set of labels to show: a name (entity/topic part), the labels, and whether they are predictions."""

    name: str
    labels: ClipLabels
    predicted: bool


@dataclass
class CameraView:
    """One camera's image of a frame: capture time (s), pose in the world frame, encoded image bytes."""

    name: str
    t: float
    world_from_camera: np.ndarray
    image: bytes | None
    media_type: str


@dataclass
class SceneFrame:
    """One clip frame: reference time (s), ``world_from_ego`` at it, and its camera views."""

    index: int
    t: float
    world_from_ego: np.ndarray
    cameras: dict[str, CameraView]


def labels_from_detections(
    path: str | os.PathLike, num_frames: int, classes: Sequence[str], camera_names: Sequence[str]
) -> ClipLabels:
    """``deploy run``'s ``detections.jsonl`` (one record per processed frame) as labels; dropped frames are empty."""
    path = Path(path)
    frames = [FrameLabels() for _ in range(num_frames)]
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError as error:
        raise ClipError(f"{path}: file not found (expected deploy run's detections.jsonl)") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            index = int(record["index"])
            boxes3d = Boxes3D.from_dict(record.get("boxes3d") or Boxes3D.empty().to_dict(), f"{path}:{number}")
            boxes2d = {
                camera: Boxes2D.from_dict(boxes, f"{path}:{number}.boxes2d.{camera}")
                for camera, boxes in (record.get("boxes2d") or {}).items()
                if camera in camera_names
            }
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, LabelsError) as error:
            raise ClipError(
                f"{path}: line {number}: expected a deploy run record with 'index' and 'boxes3d', found {error}"
            ) from error
        if not 0 <= index < num_frames:
            raise ClipError(f"{path}: line {number}: field 'index': expected 0..{num_frames - 1}, found {index}")
        frames[index] = FrameLabels(boxes3d, boxes2d)
    return ClipLabels(list(classes), frames, {"source": "model", "producer": "deploy run", "file": str(path)})


def load_sources(
    clip: DriveClip,
    *,
    labels: Sequence[str | os.PathLike] = (),
    detections: str | os.PathLike | None = None,
    classes: Sequence[str] | None = None,
    include_gt: bool = True,
) -> list[LabelSource]:
    """The clip's own labels (as ``ground_truth``), other label files (named by their provenance), detections."""
    sources: list[LabelSource] = []
    used: set[str] = set()

    def unique(name: str) -> str:
        base, k = name, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        return name

    own = clip.labels if include_gt else None
    if own is not None:
        source = str(own.provenance.get("source", "ground_truth"))
        sources.append(LabelSource(unique(source), own, source != "ground_truth"))
    for path in labels:
        try:
            loaded = ClipLabels.load(path, camera_names=clip.rig.names)
        except LabelsError as error:
            raise ClipError(str(error)) from error
        if len(loaded.frames) != clip.num_frames:
            raise ClipError(f"{path}: holds {len(loaded.frames)} frames, clip {clip.path} has {clip.num_frames}")
        name = str(loaded.provenance.get("source") or Path(path).stem)
        sources.append(LabelSource(unique(name), loaded, name != "ground_truth"))
    if detections is not None:
        names = list(classes or (own.classes if own is not None else []))
        if not names:
            found = [s.labels.classes for s in sources]
            names = list(found[0]) if found else []
        run = labels_from_detections(detections, clip.num_frames, names, clip.rig.names)
        top = max((int(b.boxes3d.class_id.max()) for b in run.frames if len(b.boxes3d)), default=-1)
        if top >= len(run.classes):  # no names given or known: number them
            run.classes = [*run.classes, *[f"class_{k}" for k in range(len(run.classes), top + 1)]]
        sources.append(LabelSource(unique("deploy_run"), run, True))
    return sources


def box_label(boxes: Boxes3D | Boxes2D, i: int, classes: Sequence[str], predicted: bool) -> str:
    """``car #12`` (class and track id), with the score for predictions: ``car #12 0.87``."""
    class_id = int(boxes.class_id[i])
    text = classes[class_id] if 0 <= class_id < len(classes) else str(class_id)
    if boxes.track_id[i] >= 0:
        text += f" #{int(boxes.track_id[i])}"
    if predicted:
        text += f" {float(boxes.score[i]):.2f}"
    return text


def class_rgb(class_id: int) -> tuple[int, int, int]:
    """The class colour of ``perception viz`` as RGB."""
    from perception.viz import color_for

    b, g, r = color_for(int(class_id))
    return int(r), int(g), int(b)


def yaw_quaternion_xyzw(yaw: np.ndarray) -> np.ndarray:
    """Rotations about +z as quaternions (N, 4) in x, y, z, w order."""
    yaw = np.asarray(yaw, dtype=np.float64).reshape(-1)
    return np.stack([np.zeros_like(yaw), np.zeros_like(yaw), np.sin(yaw / 2), np.cos(yaw / 2)], axis=1)


def scene_frames(
    clip: DriveClip, *, max_frames: int | None = None, images: bool = True, jpeg_quality: int = 85
) -> Iterator[SceneFrame]:
    """Frames of ``clip`` with each camera's capture-time pose and image bytes (image folders: their own files'
    bytes; videos: decoded and JPEG-encoded at ``jpeg_quality``)."""
    import cv2

    stop = clip.num_frames if max_frames is None else min(clip.num_frames, int(max_frames))
    folders = {n: image_files(s) for n, s in clip.sources.items() if Path(s).is_dir()}
    videos = [n for n in clip.rig.names if n not in folders] if images else []
    decoded = clip.frames(videos, 0, stop) if videos else None
    try:
        for index in range(stop):
            frame_images = next(decoded).images if decoded is not None else {}
            views = {}
            for camera in clip.rig:
                t = float(clip.camera_timestamps[camera.name][index])
                data, media_type = None, "image/jpeg"
                if images and camera.name in folders:
                    data, media_type = _file_bytes(folders[camera.name][index], jpeg_quality)
                elif images:
                    image = frame_images[camera.name]
                    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                    if not ok:
                        raise ClipError(f"{clip.sources[camera.name]}: frame {index}: OpenCV could not JPEG-encode it")
                    data = encoded.tobytes()
                world_from_camera = clip.pose_at(t) @ camera.ego_from_camera
                views[camera.name] = CameraView(camera.name, t, world_from_camera, data, media_type)
            yield SceneFrame(index, float(clip.timestamps[index]), clip.world_from_ego[index], views)
    finally:
        if decoded is not None:
            decoded.close()


def _file_bytes(path: Path, jpeg_quality: int) -> tuple[bytes, str]:
    """An image file's own bytes when viewers read its format (JPEG, PNG), else re-encoded as JPEG."""
    import cv2

    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg", ".png"):
        from perception.video import image_file_problem

        problem = image_file_problem(path)  # copied as is, a viewer would show a broken picture: say which file
        if problem is not None:
            raise ClipError(problem)
        return path.read_bytes(), "image/png" if suffix == ".png" else "image/jpeg"
    image = cv2.imread(str(path))
    if image is None:
        raise ClipError(f"{path}: cannot decode the image")
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise ClipError(f"{path}: OpenCV could not re-encode it as JPEG")
    return encoded.tobytes(), "image/jpeg"


__all__ = [
    "CameraView",
    "LabelSource",
    "SceneFrame",
    "box_label",
    "class_rgb",
    "labels_from_detections",
    "load_sources",
    "scene_frames",
    "yaw_quaternion_xyzw",
]
