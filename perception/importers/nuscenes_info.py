"""nuScenes through mmdetection3d v1.x "info" files (``.json``, or ``.pkl`` via a restricted unpickler) to drive clips.

Frames: one per ``data_list`` entry (a keyframe). Reference time = the LIDAR_TOP time,
``world_from_ego`` = ``ego2global``.
Per-camera capture times go to ``frames.csv``, and each camera's own ego pose,
``world_from_ego(t_cam) = ego2global @ lidar2ego @ inv(lidar2cam) @ inv(cam2ego)``, goes to the pose stream, so
``DriveClip.camera_from_ego(i, cam)`` reproduces the dataset's ``lidar2cam`` (which carries the ego motion between
the lidar sweep and the exposure). Boxes: ``bbox_3d`` [x, y, z, l, w, h, yaw] in LIDAR_TOP with z the box centre and
yaw the heading of the length axis about lidar +z (mmdet3d >= 1.0); converted to the ego frame with ``lidar2ego``.
Classes: the 10 nuScenes detection classes; boxes labelled -1 (objects outside them, which mmdet3d and the nuScenes
detection benchmark ignore) are dropped, or kept as an 11th class "other" with ``keep_other=True``. 2D boxes:
``cam_instances`` (the dataset's own). Times: seconds (unix).
Consecutive entries more than ``max_gap`` seconds apart start a new clip (info files list many scenes).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from perception.atomic import path_inside
from perception.clip import ClipError
from perception.errors import InputError
from perception.geometry import invert_se3, transform_points, yaw_from_matrix, yaw_matrix
from perception.importers.common import (
    NUSCENES_CLASSES,
    JpegFrame,
    dedupe_poses,
    jpeg_size,
    orthonormalize,
    write_jpeg_clip,
)
from perception.labels import Boxes2D, Boxes3D, ClipLabels, FrameLabels, make_provenance
from perception.rig import Camera, Rig, RigError


class InfoFileError(InputError):
    """An info file is unreadable or lacks a field; the message names the file and the field."""


def load_info_file(path: str | os.PathLike) -> dict:
    """Read an mmdet3d info file: ``.json`` or ``.pkl`` (restricted unpickler: refuses code-running pickles)."""
    path = Path(path)
    if not path.is_file():
        raise InfoFileError(f"{path}: info file not found")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as error:
            raise InfoFileError(f"{path}: expected JSON text, found binary data (byte {error.start})") from None
        except (json.JSONDecodeError, RecursionError) as error:
            raise InfoFileError(f"{path}: not valid JSON ({error})") from None
    elif path.suffix.lower() in (".pkl", ".pickle"):
        import pickle

        from perception.importers.safe_pickle import UnsafePickleError, safe_load

        try:
            data = safe_load(path)
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
            raise InfoFileError(
                f"{path}: expected a pickled mmdet3d info dict, found a damaged pickle ({error})"
            ) from None
    else:
        raise InfoFileError(f"{path}: expected a .json or .pkl info file, found suffix {path.suffix!r}")
    data = _to_plain(data)
    if not isinstance(data, dict) or "data_list" not in data:
        raise InfoFileError(
            f"{path}: field 'data_list': expected an mmdet3d v1.x info dict, found {type(data).__name__}"
            + (f" with keys {sorted(data)[:8]}" if isinstance(data, dict) else "")
        )
    return data


def _to_plain(value: object) -> object:
    """numpy arrays/scalars to lists/floats so JSON and pickle infos look the same."""
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _field(entry: dict, key: str, source: str, where: str) -> object:
    if key not in entry:
        raise InfoFileError(f"{source}: field '{where}.{key}': expected a value, found nothing (keys: {sorted(entry)})")
    return entry[key]


def _matrix(entry: dict, key: str, source: str, where: str, shape: tuple[int, int]) -> np.ndarray:
    value = np.asarray(_field(entry, key, source, where), dtype=np.float64)
    if value.shape != shape:
        raise InfoFileError(
            f"{source}: field '{where}.{key}': expected a {shape[0]}x{shape[1]} matrix, found shape {value.shape}"
        )
    return value


def resolve_image(data_root: Path, camera: str, img_path: str, source: str) -> Path:
    """Find a camera image: ``root/img_path``, ``root/samples/CAM/img_path`` or ``root/samples/CAM/<file name>``."""
    candidates = [
        data_root / img_path,
        data_root / "samples" / camera / img_path,
        data_root / "samples" / camera / Path(img_path).name,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InfoFileError(
        f"{source}: image for {camera} not found; tried {[str(c) for c in candidates]} (pass --data-root)"
    )


OTHER_CLASS = "other"


def classes_of(info: dict, keep_other: bool = False) -> list[str]:
    """Class names ordered by label index from ``metainfo.categories`` (nuScenes's 10 if absent), + "other" if kept."""
    categories = info.get("metainfo", {}).get("categories")
    names = (
        list(NUSCENES_CLASSES)
        if not categories
        else [n for n, _ in sorted(categories.items(), key=lambda item: item[1])]
    )
    return names + [OTHER_CLASS] if keep_other else names


def lidar_boxes_to_ego(bbox_3d: np.ndarray, velocity: np.ndarray, lidar2ego: np.ndarray) -> tuple[np.ndarray, ...]:
    """mmdet3d LiDAR boxes (N,7) [x,y,z(centre),l,w,h,yaw] and velocity (N,2) to ego centre, size, yaw, velocity."""
    bbox_3d = np.asarray(bbox_3d, dtype=np.float64).reshape(-1, 7)
    velocity = np.nan_to_num(np.asarray(velocity, dtype=np.float64).reshape(-1, 2))
    center = transform_points(lidar2ego, bbox_3d[:, :3])
    yaw = np.array([yaw_from_matrix(lidar2ego[:3, :3] @ yaw_matrix(a)) for a in bbox_3d[:, 6]])
    velocity_3d = np.concatenate([velocity, np.zeros((len(velocity), 1))], axis=1) @ lidar2ego[:3, :3].T
    return center, bbox_3d[:, 3:6].copy(), yaw, velocity_3d[:, :2]


def _frame_labels(
    entry: dict,
    cameras: list[str],
    num_classes: int,
    source: str,
    where: str,
    lidar2ego: np.ndarray,
    track_ids: dict[str, int],
    keep_other: bool,
) -> FrameLabels:
    """Labels of one info entry; ``track_ids`` maps instance tokens (when the file has them) to stable ints."""
    other = num_classes - 1 if keep_other else None

    def label(item: dict, key: str) -> int:
        value = int(item.get(key, item.get("bbox_label", -1)))
        return other if value < 0 and other is not None else value

    instances = [i for i in entry.get("instances", []) if 0 <= label(i, "bbox_label_3d") < num_classes]
    if instances:
        bbox = np.array([_field(i, "bbox_3d", source, f"{where}.instances[]") for i in instances], dtype=np.float64)
        velocity = np.array([i.get("velocity", [0.0, 0.0]) for i in instances], dtype=np.float64)
        center, size, yaw, velocity_ego = lidar_boxes_to_ego(bbox, velocity, lidar2ego)
        class_id = np.array([label(i, "bbox_label_3d") for i in instances])
        tokens = [i.get("instance_token") for i in instances]
        track_id = np.array(
            [track_ids.setdefault(t, len(track_ids)) if isinstance(t, str) else -1 for t in tokens], dtype=np.int64
        )
        boxes3d = Boxes3D(center, size, yaw, velocity_ego, class_id, np.ones(len(instances), np.float32), track_id)
    else:
        boxes3d = Boxes3D.empty()
    boxes2d = {}
    for camera in cameras:
        items = [i for i in entry.get("cam_instances", {}).get(camera, []) if 0 <= label(i, "bbox_label") < num_classes]
        xyxy = np.array([i["bbox"] for i in items], dtype=np.float64).reshape(-1, 4)
        boxes2d[camera] = Boxes2D(xyxy, np.array([label(i, "bbox_label") for i in items], dtype=np.int64))
    return FrameLabels(boxes3d, boxes2d)


def _rig(entry: dict, cameras: list[str], data_root: Path, source: str) -> Rig:
    try:
        return _rig_unchecked(entry, cameras, data_root, source)
    except RigError as error:
        raise InfoFileError(f"{source}: field 'data_list[0].images': {error}") from None


def _rig_unchecked(entry: dict, cameras: list[str], data_root: Path, source: str) -> Rig:
    result = []
    for camera in cameras:
        image = entry["images"][camera]
        where = f"data_list[].images.{camera}"
        width, height = jpeg_size(resolve_image(data_root, camera, image["img_path"], source))
        K = _matrix(image, "cam2img", source, where, (3, 3))
        result.append(
            Camera(camera, width, height, K, orthonormalize(_matrix(image, "cam2ego", source, where, (4, 4))))
        )
    return Rig(result)


def split_segments(entries: list[dict], max_gap: float) -> list[list[int]]:
    """Indices of entries grouped into time-contiguous runs (a gap > ``max_gap`` s or going back starts a new run)."""
    segments: list[list[int]] = []
    for index, entry in enumerate(entries):
        t = float(entry["timestamp"])
        if segments and 0 < t - float(entries[segments[-1][-1]]["timestamp"]) <= max_gap:
            segments[-1].append(index)
        else:
            segments.append([index])
    return segments


def import_nuscenes_info(
    info_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    data_root: str | os.PathLike | None = None,
    cameras: list[str] | None = None,
    max_gap: float = 1.0,
    keep_other: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Convert an info file to drive clip(s); one run of consecutive samples -> ``out``, several ->
    ``out/<segment>``."""
    info_path = Path(info_path)
    try:
        return _import_info(
            info_path, out, data_root=data_root, cameras=cameras, max_gap=max_gap, keep_other=keep_other,
            overwrite=overwrite, progress=progress,
        )  # fmt: skip
    except InputError:
        raise
    except (TypeError, KeyError, AttributeError, IndexError, OverflowError, ValueError) as error:  # a field's type
        raise InfoFileError(
            f"{info_path}: expected an mmdet3d v1.x nuScenes info file, found a field of another type or shape "
            f"({type(error).__name__}: {error})"
        ) from None


def _import_info(
    info_path: Path,
    out: str | os.PathLike,
    *,
    data_root: str | os.PathLike | None,
    cameras: list[str] | None,
    max_gap: float,
    keep_other: bool,
    overwrite: bool,
    progress: bool,
) -> list[Path]:
    source = str(info_path)
    info = load_info_file(info_path)
    data_root = Path(data_root) if data_root is not None else info_path.parent
    entries = info["data_list"]
    if not entries:
        raise InfoFileError(f"{source}: field 'data_list': expected at least one sample, found none")
    classes = classes_of(info, keep_other)
    for index, entry in enumerate(entries):
        for key in ("timestamp", "ego2global", "images", "lidar_points"):
            _field(entry, key, source, f"data_list[{index}]")
    cameras = list(cameras or entries[0]["images"].keys())
    segments = split_segments(entries, max_gap)
    written = []
    for number, indices in enumerate(segments):
        first = entries[indices[0]]
        rig = _rig(first, cameras, data_root, source)
        frames, poses, frame_labels = [], [], []
        track_ids: dict[str, int] = {}
        for index in indices:
            entry = entries[index]
            where = f"data_list[{index}]"
            ego2global = orthonormalize(_matrix(entry, "ego2global", source, where, (4, 4)))
            lidar2ego = orthonormalize(
                _matrix(entry["lidar_points"], "lidar2ego", source, f"{where}.lidar_points", (4, 4))
            )
            t_ref = float(entry["timestamp"])
            images, times = {}, {}
            poses.append((t_ref, ego2global))
            for camera in cameras:
                if camera not in entry["images"]:
                    raise InfoFileError(
                        f"{source}: field '{where}.images': camera {camera} missing (found {sorted(entry['images'])})"
                    )
                image = entry["images"][camera]
                cam2ego = orthonormalize(_matrix(image, "cam2ego", source, f"{where}.images.{camera}", (4, 4)))
                if not np.allclose(cam2ego, rig[camera].ego_from_camera, atol=1e-4):
                    raise ClipError(
                        f"{source}: {where}.images.{camera}.cam2ego differs from the first sample's: a clip has one rig"
                    )
                lidar2cam = orthonormalize(_matrix(image, "lidar2cam", source, f"{where}.images.{camera}", (4, 4)))
                images[camera] = resolve_image(data_root, camera, image["img_path"], source)
                times[camera] = float(image.get("timestamp", t_ref))
                poses.append((times[camera], ego2global @ lidar2ego @ invert_se3(lidar2cam) @ invert_se3(cam2ego)))
            frames.append(JpegFrame(images, t_ref, ego2global, times))
            frame_labels.append(
                _frame_labels(entry, cameras, len(classes), source, where, lidar2ego, track_ids, keep_other)
            )
        labels = ClipLabels(
            classes,
            frame_labels,
            make_provenance(
                "ground_truth",
                "perception.importers.nuscenes_info",
                dataset=info.get("metainfo", {}).get("dataset", "nuscenes"),
                info_file=info_path.name,
                sample_tokens=[entries[i].get("token") for i in indices],
            ),
        )
        target = (
            Path(out)
            if len(segments) == 1
            else path_inside(out, f"segment_{number:03d}_{str(first.get('token', number))[:8]}")
        )
        written.append(
            write_jpeg_clip(target, rig, frames, dedupe_poses(poses), labels, overwrite=overwrite, progress=progress)
        )
    return written
