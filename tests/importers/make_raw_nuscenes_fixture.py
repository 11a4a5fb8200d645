"""Write a small raw-nuScenes fixture (``v1.0-fixture/*.json`` tables + linked JPEGs) derived from the mmdet3d info
file of the shared sample, so the raw importer can be tested against the info-file importer.

How it is derived (everything at keyframe 0 is the real sample; the rest is extrapolated, not recorded):
- one log, one scene, ``num_keyframes`` samples 0.5 s apart. Sample 0 is the real keyframe (LIDAR_TOP time and
  ``ego2global``); later samples shift every time by 0.5 s.
- sensors: six cameras (``calibrated_sensor`` from ``cam2ego`` and ``cam2img``) and LIDAR_TOP (``lidar2ego``).
- ego poses: at keyframe 0 each camera's pose is the exact one the info file implies,
  ``ego2global @ lidar2ego @ inv(lidar2cam) @ inv(cam2ego)``; every other pose moves the vehicle at the constant
  velocity fitted (least squares) to those seven real poses, with keyframe 0's orientation.
- camera sweeps: ``sweeps_per_interval`` images between keyframes at 12 Hz spacing, each a symlink to the camera's
  one real JPEG (pixels repeat; timing and poses do not). Keyframe images live in ``samples/CAM/``.
- annotations: every info instance (``bbox_3d`` lidar frame, z centre) moved to the global frame; at keyframe k the
  centre moves by ``velocity * 0.5 k`` (so the devkit-style finite-difference velocity equals the info velocity);
  class index -> a nuScenes category (label -1 -> ``movable_object.pushable_pullable``, outside the 10 classes).

Run ``python tests/importers/make_raw_nuscenes_fixture.py OUT_DIR`` to write one by hand.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
from pathlib import Path

import numpy as np

from perception.geometry import invert_se3, matrix_to_quat, yaw_matrix
from perception.importers.nuscenes_info import load_info_file

VERSION = "v1.0-fixture"
CLASS_TO_CATEGORY = {
    "car": "vehicle.car",
    "truck": "vehicle.truck",
    "trailer": "vehicle.trailer",
    "bus": "vehicle.bus.rigid",
    "construction_vehicle": "vehicle.construction",
    "bicycle": "vehicle.bicycle",
    "motorcycle": "vehicle.motorcycle",
    "pedestrian": "human.pedestrian.adult",
    "traffic_cone": "movable_object.trafficcone",
    "barrier": "movable_object.barrier",
}
OTHER_CATEGORY = "movable_object.pushable_pullable"
KEYFRAME_INTERVAL_S = 0.5


def _token(*parts: object) -> str:
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()


def _us(seconds: float) -> int:
    return int(round(seconds * 1e6))


def _pose_row(token: str, t: float, world_from_ego: np.ndarray) -> dict:
    return {
        "token": token,
        "timestamp": _us(t),
        "translation": world_from_ego[:3, 3].tolist(),
        "rotation": matrix_to_quat(world_from_ego[:3, :3]).tolist(),
    }


def write_raw_fixture(
    info_path: str | os.PathLike, out_root: str | os.PathLike, *, num_keyframes: int = 2, sweeps_per_interval: int = 5
) -> Path:
    """Write the fixture under ``out_root`` (tables in ``out_root/v1.0-fixture``); returns ``out_root``."""
    info_path, out_root = Path(info_path), Path(out_root)
    info = load_info_file(info_path)
    entry = info["data_list"][0]
    classes = [n for n, _ in sorted(info["metainfo"]["categories"].items(), key=lambda item: item[1])]
    ego2global = np.asarray(entry["ego2global"])
    lidar2ego = np.asarray(entry["lidar_points"]["lidar2ego"])
    t_lidar = float(entry["timestamp"])
    cameras = list(entry["images"])
    real_pose = {
        cam: ego2global @ lidar2ego @ invert_se3(np.asarray(img["lidar2cam"])) @ invert_se3(np.asarray(img["cam2ego"]))
        for cam, img in entry["images"].items()
    }
    times = np.array([t_lidar, *[entry["images"][c]["timestamp"] for c in cameras]])
    positions = np.array([ego2global[:3, 3], *[real_pose[c][:3, 3] for c in cameras]])
    design = np.stack([np.ones_like(times), times - t_lidar], axis=1)
    fit = np.linalg.lstsq(design, positions, rcond=None)[0]
    ego_velocity = fit[1]

    def extrapolated(t: float) -> np.ndarray:
        pose = ego2global.copy()
        pose[:3, 3] = ego2global[:3, 3] + ego_velocity * (t - t_lidar)
        return pose

    tables: dict[str, list[dict]] = {
        name: []
        for name in (
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
    }
    log_token = _token("log")
    tables["log"].append(
        {
            "token": log_token,
            "logfile": Path(entry["lidar_points"]["lidar_path"]).name.split("__")[0],
            "vehicle": "n015",
            "date_captured": "2018-07-24",
            "location": "singapore-onenorth",
        }
    )
    categories = {name: _token("category", name) for name in [*CLASS_TO_CATEGORY.values(), OTHER_CATEGORY]}
    tables["category"] = [{"token": token, "name": name, "description": ""} for name, token in categories.items()]
    calibrated = {}
    for channel in [*cameras, "LIDAR_TOP"]:
        sensor_token = _token("sensor", channel)
        tables["sensor"].append(
            {"token": sensor_token, "channel": channel, "modality": "lidar" if channel == "LIDAR_TOP" else "camera"}
        )
        ego_from_sensor = lidar2ego if channel == "LIDAR_TOP" else np.asarray(entry["images"][channel]["cam2ego"])
        calibrated[channel] = _token("calibrated_sensor", channel)
        tables["calibrated_sensor"].append(
            {
                "token": calibrated[channel],
                "sensor_token": sensor_token,
                "translation": ego_from_sensor[:3, 3].tolist(),
                "rotation": matrix_to_quat(ego_from_sensor[:3, :3]).tolist(),
                "camera_intrinsic": [] if channel == "LIDAR_TOP" else entry["images"][channel]["cam2img"],
            }
        )

    sample_tokens = [_token("sample", k) for k in range(num_keyframes)]
    scene_token = _token("scene")
    for k, token in enumerate(sample_tokens):
        tables["sample"].append(
            {
                "token": token,
                "timestamp": _us(t_lidar + KEYFRAME_INTERVAL_S * k),
                "scene_token": scene_token,
                "prev": sample_tokens[k - 1] if k else "",
                "next": sample_tokens[k + 1] if k + 1 < num_keyframes else "",
            }
        )
    tables["scene"].append(
        {
            "token": scene_token,
            "log_token": log_token,
            "nbr_samples": num_keyframes,
            "name": "scene-fixture",
            "description": "derived from the mmdet3d nuScenes demo sample",
            "first_sample_token": sample_tokens[0],
            "last_sample_token": sample_tokens[-1],
        }
    )

    def add_sample_data(
        channel: str,
        t: float,
        pose: np.ndarray,
        sample_k: int,
        key: bool,
        source: Path,
        folder: str,
        size: tuple[int, int],
    ) -> dict:
        token = _token("sample_data", channel, _us(t))
        pose_token = _token("ego_pose", channel, _us(t))
        tables["ego_pose"].append(_pose_row(pose_token, t, pose))
        name = f"{tables['log'][0]['logfile']}__{channel}__{_us(t)}{''.join(source.suffixes)}"
        link = out_root / folder / channel / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.symlink(source.resolve(), link)
        row = {
            "token": token,
            "sample_token": sample_tokens[sample_k],
            "ego_pose_token": pose_token,
            "calibrated_sensor_token": calibrated[channel],
            "timestamp": _us(t),
            "fileformat": source.suffix.lstrip("."),
            "is_key_frame": key,
            "height": size[1],
            "width": size[0],
            "filename": f"{folder}/{channel}/{name}",
            "prev": "",
            "next": "",
        }
        tables["sample_data"].append(row)
        return row

    for channel in cameras:
        t_camera = float(entry["images"][channel]["timestamp"])
        source = info_path.parent / entry["images"][channel]["img_path"]
        chain = []
        for k in range(num_keyframes):
            steps = [0] if k == num_keyframes - 1 else range(sweeps_per_interval + 1)
            for j in steps:
                t = t_camera + KEYFRAME_INTERVAL_S * (k + j / (sweeps_per_interval + 1))
                pose = real_pose[channel] if (k, j) == (0, 0) else extrapolated(t)
                key = j == 0
                # sweeps belong to the next keyframe's sample, like nuScenes
                chain.append(
                    add_sample_data(
                        channel, t, pose, k if key else k + 1, key, source, "samples" if key else "sweeps", (1600, 900)
                    )
                )
        for a, b in itertools.pairwise(chain):
            a["next"], b["prev"] = b["token"], a["token"]
    lidar_source = info_path.parent / entry["lidar_points"]["lidar_path"]
    lidar_chain = [
        add_sample_data(
            "LIDAR_TOP",
            t_lidar + KEYFRAME_INTERVAL_S * k,
            ego2global if k == 0 else extrapolated(t_lidar + KEYFRAME_INTERVAL_S * k),
            k,
            True,
            lidar_source,
            "samples",
            (0, 0),
        )
        for k in range(num_keyframes)
    ]
    for a, b in itertools.pairwise(lidar_chain):
        a["next"], b["prev"] = b["token"], a["token"]

    world_from_lidar = ego2global @ lidar2ego
    for index, instance in enumerate(entry["instances"]):
        label = int(instance["bbox_label_3d"])
        category = CLASS_TO_CATEGORY[classes[label]] if label >= 0 else OTHER_CATEGORY
        x, y, z, l, w, h, yaw = instance["bbox_3d"]
        centre = world_from_lidar[:3, :3] @ np.array([x, y, z]) + world_from_lidar[:3, 3]
        rotation = matrix_to_quat(world_from_lidar[:3, :3] @ yaw_matrix(yaw)).tolist()
        velocity = world_from_lidar[:3, :3] @ np.array([*np.nan_to_num(instance["velocity"]), 0.0])
        instance_token = _token("instance", index)
        tokens = [_token("annotation", index, k) for k in range(num_keyframes)]
        for k, token in enumerate(tokens):
            tables["sample_annotation"].append(
                {
                    "token": token,
                    "sample_token": sample_tokens[k],
                    "instance_token": instance_token,
                    "visibility_token": "4",
                    "attribute_tokens": [],
                    "translation": (centre + velocity * KEYFRAME_INTERVAL_S * k).tolist(),
                    "size": [w, l, h],
                    "rotation": rotation,
                    "prev": tokens[k - 1] if k else "",
                    "next": tokens[k + 1] if k + 1 < num_keyframes else "",
                    "num_lidar_pts": instance.get("num_lidar_pts", 0),
                    "num_radar_pts": instance.get("num_radar_pts", 0),
                }
            )
        tables["instance"].append(
            {
                "token": instance_token,
                "category_token": categories[category],
                "nbr_annotations": num_keyframes,
                "first_annotation_token": tokens[0],
                "last_annotation_token": tokens[-1],
            }
        )
    folder = out_root / VERSION
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        (folder / f"{name}.json").write_text(json.dumps(rows, indent=1))
    return out_root


if __name__ == "__main__":
    default_info = (
        Path(__file__).resolve().parents[2] / "../shared/data/nuscenes_sample/n015-2018-07-24-11-22-45+0800.json"
    )
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {Path(__file__).name} OUT_DIR   (reads {default_info})")
    print(write_raw_fixture(default_info, sys.argv[1]))
