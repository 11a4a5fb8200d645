"""Raw nuScenes (``<root>/v1.0-*/`` JSON tables + ``samples/`` and ``sweeps/`` JPEGs) to drive clips, one per scene.

Frames: one per reference-camera (``CAM_FRONT`` by default) image between the scene's first and last keyframe,
sweeps included (~12 Hz). At a keyframe the frame uses the sample's keyframe image of every camera and the
reference time is the sample time (the LIDAR_TOP sweep) with the LIDAR_TOP ego pose, exactly as mmdet3d info files
(and ``nuscenes_info``) do. Between keyframes the reference time is the reference camera's timestamp with its ego
pose, and every other camera contributes its image nearest in time. Every image's own ego pose goes to the pose
stream, so ``DriveClip.camera_from_ego`` honours each camera's capture time.

Labels: ``sample_annotation`` boxes (global frame) are moved into the ego frame at each frame's reference time.
Between keyframes they are interpolated per instance (centre and size linearly, rotation by slerp, velocity
linearly); an instance is present only between two of its annotated keyframes (like the devkit's tracking
interpolation). Velocity follows the devkit's ``box_velocity``: finite difference of the neighbouring annotations
(global frame, up to 1.5 s apart; 0 when unknown, as mmdet3d does). Track ids: instance tokens, numbered per scene.
Categories map to the 10 detection classes (devkit mapping); others are dropped, or kept as "other".
Raw nuScenes has no 2D boxes, so ``boxes2d`` stays empty. Times are seconds (unix).
"""

from __future__ import annotations

import json
import os
from bisect import bisect_left
from collections import defaultdict
from pathlib import Path

import numpy as np

from perception.atomic import path_inside
from perception.clip import ClipError
from perception.errors import InputError
from perception.geometry import invert_se3, quat_to_matrix, se3, slerp, yaw_from_matrix
from perception.importers.common import NUSCENES_CLASSES, JpegFrame, dedupe_poses, write_jpeg_clip
from perception.labels import Boxes3D, ClipLabels, FrameLabels, make_provenance
from perception.rig import Camera, Rig

TABLES = (
    "scene",
    "sample",
    "sample_data",
    "calibrated_sensor",
    "ego_pose",
    "sample_annotation",
    "instance",
    "category",
    "sensor",
    "log",
)
CATEGORY_TO_CLASS = {
    "vehicle.car": "car",
    "vehicle.truck": "truck",
    "vehicle.trailer": "trailer",
    "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus",
    "vehicle.construction": "construction_vehicle",
    "vehicle.bicycle": "bicycle",
    "vehicle.motorcycle": "motorcycle",
    "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.police_officer": "pedestrian",
    "movable_object.trafficcone": "traffic_cone",
    "movable_object.barrier": "barrier",
}
MAX_VELOCITY_GAP_S = 1.5


class NuScenesTables:
    """The raw nuScenes tables of one version folder, indexed by token."""

    def __init__(self, root: str | os.PathLike, version: str) -> None:
        self.root = Path(root)
        self.folder = self.root / version
        if not self.folder.is_dir():
            found = sorted(p.name for p in self.root.glob("v1.0-*")) if self.root.is_dir() else []
            raise ClipError(f"{self.folder}: nuScenes table folder not found (versions under {self.root}: {found})")
        self.tables: dict[str, dict[str, dict]] = {}
        for name in TABLES:
            path = self.folder / f"{name}.json"
            try:
                rows = json.loads(path.read_bytes().decode("utf-8"))
            except FileNotFoundError as error:
                raise ClipError(
                    f"{path}: table missing (a raw nuScenes version folder holds {', '.join(TABLES)})"
                ) from error
            except UnicodeDecodeError as error:
                raise ClipError(f"{path}: expected JSON text, found binary data (byte {error.start})") from None
            except (json.JSONDecodeError, RecursionError) as error:
                raise ClipError(f"{path}: not valid JSON ({error})") from error
            if not isinstance(rows, list) or not all(isinstance(row, dict) and "token" in row for row in rows):
                raise ClipError(f"{path}: expected a list of records with a 'token', found {str(rows)[:80]}")
            self.tables[name] = {row["token"]: row for row in rows}
        self.keyframe_data: dict[tuple[str, str], dict] = {}  # (sample token, channel) -> keyframe sample_data
        for row in self.tables["sample_data"].values():
            if row.get("is_key_frame"):
                self.keyframe_data[(row["sample_token"], self.channel(row))] = row
        self.annotations_by_sample: dict[str, list[dict]] = defaultdict(list)
        for row in self.tables["sample_annotation"].values():
            self.annotations_by_sample[row["sample_token"]].append(row)

    def get(self, table: str, token: str) -> dict:
        try:
            return self.tables[table][token]
        except KeyError as error:
            raise ClipError(f"{self.folder / (table + '.json')}: token {token!r} not found") from error

    def channel(self, sample_data: dict) -> str:
        sensor = self.get("calibrated_sensor", sample_data["calibrated_sensor_token"])["sensor_token"]
        return self.get("sensor", sensor)["channel"]

    def pose(self, sample_data: dict) -> np.ndarray:
        """world_from_ego at this sample_data's capture time."""
        ego = self.get("ego_pose", sample_data["ego_pose_token"])
        return se3(quat_to_matrix(ego["rotation"]), ego["translation"])

    def camera_channels(self) -> list[str]:
        return [s["channel"] for s in self.tables["sensor"].values() if s.get("modality") == "camera"]

    def scene_samples(self, scene: dict) -> list[dict]:
        samples, token = [], scene["first_sample_token"]
        while token:
            sample = self.get("sample", token)
            samples.append(sample)
            token = sample["next"] if token != scene["last_sample_token"] else ""
        return samples

    def channel_chain(self, first: dict, last: dict) -> list[dict]:
        """sample_data from ``first`` to ``last`` (inclusive) following ``next`` (keyframes and sweeps)."""
        chain, row = [first], first
        while row["token"] != last["token"]:
            if not row.get("next"):
                raise ClipError(f"{self.folder}: sample_data chain from {first['token']} ends before {last['token']}")
            row = self.get("sample_data", row["next"])
            chain.append(row)
        return chain


def _seconds(microseconds: int | float) -> float:
    return float(microseconds) * 1e-6


def _annotation_velocity(tables: NuScenesTables, annotation: dict) -> np.ndarray:
    """Global-frame velocity (3,) m/s from the neighbouring annotations (devkit ``box_velocity``); zeros if unknown."""
    neighbours = [tables.get("sample_annotation", t) for t in (annotation.get("prev"), annotation.get("next")) if t]
    if not neighbours:
        return np.zeros(3)
    first = neighbours[0] if annotation.get("prev") else annotation
    last = neighbours[-1] if annotation.get("next") else annotation
    t_first = _seconds(tables.get("sample", first["sample_token"])["timestamp"])
    t_last = _seconds(tables.get("sample", last["sample_token"])["timestamp"])
    gap = t_last - t_first
    if gap <= 0 or gap > MAX_VELOCITY_GAP_S * (2 if len(neighbours) == 2 else 1):
        return np.zeros(3)
    return (np.asarray(last["translation"]) - np.asarray(first["translation"])) / gap


class _Track:
    """One instance's keyframe annotations (global frame), interpolated at any time between them."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.centers: list[np.ndarray] = []
        self.sizes: list[np.ndarray] = []
        self.rotations: list[np.ndarray] = []
        self.velocities: list[np.ndarray] = []

    def add(
        self, t: float, center: np.ndarray, size_lwh: np.ndarray, rotation_wxyz: np.ndarray, velocity: np.ndarray
    ) -> None:
        self.times.append(t)
        self.centers.append(center)
        self.sizes.append(size_lwh)
        self.rotations.append(rotation_wxyz)
        self.velocities.append(velocity)

    def at(self, t: float, interpolate: bool, tolerance: float = 1e-4):
        """(centre, size, rotation matrix, velocity) in the global frame at ``t``, or None when not present."""
        i = bisect_left(self.times, t - tolerance)
        if i < len(self.times) and abs(self.times[i] - t) <= tolerance:
            return self.centers[i], self.sizes[i], quat_to_matrix(self.rotations[i]), self.velocities[i]
        if not interpolate or i == 0 or i == len(self.times):
            return None
        t0, t1 = self.times[i - 1], self.times[i]
        if t1 - t0 > MAX_VELOCITY_GAP_S:
            return None  # the instance was not annotated in between (occluded): do not invent a path
        a = (t - t0) / (t1 - t0)
        lerp = lambda values: (1 - a) * values[i - 1] + a * values[i]  # noqa: E731
        rotation = quat_to_matrix(slerp(self.rotations[i - 1], self.rotations[i], a))
        return lerp(self.centers), lerp(self.sizes), rotation, lerp(self.velocities)


def _tracks(
    tables: NuScenesTables, samples: list[dict], classes: list[str], keep_other: bool
) -> tuple[dict[str, _Track], dict[str, int], dict[str, int]]:
    tracks: dict[str, _Track] = {}
    class_of: dict[str, int] = {}
    track_ids: dict[str, int] = {}
    for sample in samples:
        t = _seconds(sample["timestamp"])
        for annotation in tables.annotations_by_sample.get(sample["token"], []):
            instance = tables.get("instance", annotation["instance_token"])
            category = tables.get("category", instance["category_token"])["name"]
            name = CATEGORY_TO_CLASS.get(category, "other" if keep_other else None)
            if name is None:
                continue
            token = annotation["instance_token"]
            class_of[token] = classes.index(name)
            track_ids.setdefault(token, len(track_ids))
            w, l, h = annotation["size"]
            tracks.setdefault(token, _Track()).add(
                t,
                np.asarray(annotation["translation"], dtype=np.float64),
                np.array([l, w, h], dtype=np.float64),
                np.asarray(annotation["rotation"], dtype=np.float64),
                _annotation_velocity(tables, annotation),
            )
    return tracks, class_of, track_ids


def _boxes_at(
    t: float,
    world_from_ego: np.ndarray,
    tracks: dict[str, _Track],
    class_of: dict[str, int],
    track_ids: dict[str, int],
    interpolate: bool,
) -> Boxes3D:
    ego_from_world = invert_se3(world_from_ego)
    rows = []
    for token, track in tracks.items():
        state = track.at(t, interpolate)
        if state is None:
            continue
        center, size, rotation, velocity = state
        center_ego = ego_from_world[:3, :3] @ center + ego_from_world[:3, 3]
        yaw = yaw_from_matrix(ego_from_world[:3, :3] @ rotation)
        velocity_ego = (ego_from_world[:3, :3] @ velocity)[:2]
        rows.append((center_ego, size, yaw, velocity_ego, class_of[token], track_ids[token]))
    if not rows:
        return Boxes3D.empty()
    center, size, yaw, velocity, class_id, track_id = (np.array(column) for column in zip(*rows))
    return Boxes3D(
        center,
        size,
        yaw,
        velocity,
        class_id.astype(np.int64),
        np.ones(len(rows), np.float32),
        track_id.astype(np.int64),
    )


def _rig(tables: NuScenesTables, keyframes: dict[str, dict], cameras: list[str]) -> Rig:
    result = []
    for channel in cameras:
        data = keyframes[channel]
        sensor = tables.get("calibrated_sensor", data["calibrated_sensor_token"])
        K = np.asarray(sensor.get("camera_intrinsic") or [], dtype=np.float64)
        if K.shape != (3, 3):
            raise ClipError(
                f"{tables.folder / 'calibrated_sensor.json'}: token {sensor['token']}: field 'camera_intrinsic': "
                f"expected 3x3, found {K.tolist()}"
            )
        ego_from_camera = se3(quat_to_matrix(sensor["rotation"]), sensor["translation"])
        result.append(Camera(channel, int(data["width"]), int(data["height"]), K, ego_from_camera))
    return Rig(result)


def import_scene(
    tables: NuScenesTables,
    scene: dict,
    out: str | os.PathLike,
    *,
    cameras: list[str] | None = None,
    reference_camera: str = "CAM_FRONT",
    interpolate: bool = True,
    keep_other: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write one scene as a drive clip (see the module docstring for frames, timing and labels)."""
    samples = tables.scene_samples(scene)
    cameras = list(
        cameras
        or [
            c
            for c in ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
            if c in tables.camera_channels()
        ]
        or sorted(tables.camera_channels())
    )
    if reference_camera not in cameras:
        raise ClipError(f"reference camera {reference_camera!r} is not among the cameras {cameras}")
    keyframes = []
    for sample in samples:
        row = {}
        for channel in [*cameras, "LIDAR_TOP"]:
            data = tables.keyframe_data.get((sample["token"], channel))
            if data is None and channel != "LIDAR_TOP":
                raise ClipError(f"{tables.folder}: sample {sample['token']} has no keyframe image for {channel}")
            row[channel] = data
        keyframes.append(row)
    chains = {c: tables.channel_chain(keyframes[0][c], keyframes[-1][c]) for c in cameras}
    chain_times = {c: [_seconds(d["timestamp"]) for d in chains[c]] for c in cameras}
    keyframe_tokens = {keyframes[k][reference_camera]["token"]: k for k in range(len(samples))}
    rig = _rig(tables, keyframes[0], cameras)
    classes = list(NUSCENES_CLASSES) + (["other"] if keep_other else [])
    tracks, class_of, track_ids = _tracks(tables, samples, classes, keep_other)

    frames, frame_labels, poses, skipped = [], [], [], 0
    previous: dict[str, str] = {}
    for data in chains[reference_camera]:
        k = keyframe_tokens.get(data["token"])
        if k is not None:
            chosen = {c: keyframes[k][c] for c in cameras}
            lidar = keyframes[k]["LIDAR_TOP"]
            t_ref = _seconds(samples[k]["timestamp"])
            world_from_ego = tables.pose(lidar) if lidar is not None else tables.pose(data)
        else:
            t_ref = _seconds(data["timestamp"])
            world_from_ego = tables.pose(data)
            chosen = {}
            for c in cameras:
                times = chain_times[c]
                j = int(np.argmin(np.abs(np.asarray(times) - t_ref)))
                chosen[c] = chains[c][j]
        if frames and (t_ref <= frames[-1].timestamp or any(previous.get(c) == chosen[c]["token"] for c in cameras)):
            skipped += 1  # a camera dropped a frame: keep every camera's time strictly increasing
            continue
        previous = {c: chosen[c]["token"] for c in cameras}
        images = {c: tables.root / chosen[c]["filename"] for c in cameras}
        for c in cameras:
            if not images[c].is_file():
                raise ClipError(f"{images[c]}: image of {c} listed in sample_data {chosen[c]['token']} not found")
            poses.append((_seconds(chosen[c]["timestamp"]), tables.pose(chosen[c])))
        poses.append((t_ref, world_from_ego))
        frames.append(JpegFrame(images, t_ref, world_from_ego, {c: _seconds(chosen[c]["timestamp"]) for c in cameras}))
        frame_labels.append(FrameLabels(_boxes_at(t_ref, world_from_ego, tracks, class_of, track_ids, interpolate), {}))
    log = tables.get("log", scene["log_token"]) if scene.get("log_token") in tables.tables["log"] else {}
    labels = ClipLabels(
        classes,
        frame_labels,
        make_provenance(
            "ground_truth",
            "perception.importers.nuscenes_raw",
            dataset="nuscenes",
            nuscenes_version=tables.folder.name,
            scene=scene.get("name"),
            scene_token=scene["token"],
            log=log.get("logfile"),
            interpolated=interpolate,
            reference_camera=reference_camera,
            keyframe_indices=[i for i, f in enumerate(frames) if _is_keyframe(f, samples)],
            skipped_frames=skipped,
        ),
    )
    return write_jpeg_clip(Path(out), rig, frames, dedupe_poses(poses), labels, overwrite=overwrite, progress=progress)


def _is_keyframe(frame: JpegFrame, samples: list[dict]) -> bool:
    return any(abs(frame.timestamp - _seconds(s["timestamp"])) < 1e-6 for s in samples)


def import_nuscenes_raw(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    version: str = "v1.0-mini",
    scenes: list[str] | None = None,
    **options: object,
) -> list[Path]:
    """Import scenes (all, or those named/tokened in ``scenes``) of a raw nuScenes folder to ``out/<scene name>``."""
    try:
        return _import_raw(root, out, version=version, scenes=scenes, **options)
    except InputError:
        raise
    except (TypeError, KeyError, AttributeError, IndexError, ValueError, OverflowError) as error:  # a field's type
        raise ClipError(
            f"{Path(root) / version}: expected nuScenes tables, found a record of another type or shape "
            f"({type(error).__name__}: {error})"
        ) from None


def _import_raw(
    root: str | os.PathLike, out: str | os.PathLike, *, version: str, scenes: list[str] | None, **options: object
) -> list[Path]:
    tables = NuScenesTables(root, version)
    selected = [s for s in tables.tables["scene"].values() if not scenes or s["name"] in scenes or s["token"] in scenes]
    if not selected:
        known = sorted(s["name"] for s in tables.tables["scene"].values())
        raise ClipError(f"{tables.folder / 'scene.json'}: no scene matches {scenes} (scenes: {known[:20]})")
    return [
        import_scene(tables, scene, path_inside(out, str(scene["name"])), **options)  # a scene name stays in out
        for scene in sorted(selected, key=lambda s: s["name"])
    ]


__all__ = ["CATEGORY_TO_CLASS", "NuScenesTables", "import_nuscenes_raw", "import_scene"]
