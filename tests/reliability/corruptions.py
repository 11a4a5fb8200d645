"""The catalogue of broken clips: each entry breaks one file of a good clip in one way a user (or a disk) might.

``CLIP_CORRUPTIONS``: name -> (file it breaks, function(clip, workspace)). The file kinds are ``rig``, ``frames``,
``poses``, ``labels``, ``bev``, ``video`` and ``clip`` (the folder itself); commands that do not read a kind are
not expected to fail on it (``autolabel`` ignores a clip's own labels).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml
from workspace import SENTINEL, Workspace

Mutation = Callable[[Path, Workspace], None]

NOT_UTF8 = b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00binary\x80\x81\x82"


# ------------------------------------------------------------------------------------------------ helpers
def _rig(edit: Callable[[dict, Path, Workspace], None]) -> Mutation:
    def mutate(clip: Path, workspace: Workspace) -> None:
        data = yaml.safe_load((clip / "rig.yaml").read_text())
        edit(data, clip, workspace)
        (clip / "rig.yaml").write_text(yaml.safe_dump(data))

    return mutate


def _camera(key: str, value: object, index: int = 0) -> Mutation:
    def edit(data: dict, clip: Path, workspace: Workspace) -> None:
        data["cameras"][index][key] = value

    return _rig(edit)


def _write(relative: str, content: bytes | str) -> Mutation:
    def mutate(clip: Path, workspace: Workspace) -> None:
        path = clip / relative
        if path.is_dir():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return mutate


def _csv(relative: str, edit: Callable[[list[list[str]]], None]) -> Mutation:
    """Edit a CSV table as rows of strings (row 0 is the header)."""

    def mutate(clip: Path, workspace: Workspace) -> None:
        rows = [line.split(",") for line in (clip / relative).read_text().splitlines()]
        edit(rows)
        (clip / relative).write_text("\n".join(",".join(row) for row in rows) + "\n")

    return mutate


def _drop_column(relative: str, column: str) -> Mutation:
    def edit(rows: list[list[str]]) -> None:
        index = rows[0].index(column)
        for row in rows:
            row.pop(index)

    return _csv(relative, edit)


def _cell(relative: str, column: str, value: str, row: int = 2) -> Mutation:
    def edit(rows: list[list[str]]) -> None:
        rows[row][rows[0].index(column)] = value

    return _csv(relative, edit)


def _labels(edit: Callable[[dict], None]) -> Mutation:
    def mutate(clip: Path, workspace: Workspace) -> None:
        document = json.loads((clip / "labels.json").read_text())
        edit(document)
        (clip / "labels.json").write_text(json.dumps(document))

    return mutate


def _box3d(key: str, value: object, frame: int = 1) -> Mutation:
    def edit(document: dict) -> None:
        document["frames"][frame]["boxes3d"][key] = value

    return _labels(edit)


def _npz(edit: Callable[[Path], None]) -> Mutation:
    def mutate(clip: Path, workspace: Workspace) -> None:
        edit(clip / "labels_bev.npz")

    return mutate


def _remove(relative: str) -> Mutation:
    def mutate(clip: Path, workspace: Workspace) -> None:
        path = clip / relative
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return mutate


def _escape(workspace: Workspace, clip: Path) -> str:
    """A relative path from inside the clip to the sentinel file outside the output folder."""
    return "../" * (len(clip.relative_to(workspace.root).parts) + 1) + SENTINEL


def _truncate(relative: str, fraction: float) -> Mutation:
    def mutate(clip: Path, workspace: Workspace) -> None:
        path = clip / relative
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])

    return mutate


def _flip_bytes(relative: str, seed: int, count: int = 16) -> Mutation:
    def mutate(clip: Path, workspace: Workspace) -> None:
        path = clip / relative
        data = bytearray(path.read_bytes())
        rng = np.random.default_rng(seed)
        for offset in rng.integers(0, len(data), count):
            data[offset] = int(rng.integers(0, 256))
        path.write_bytes(bytes(data))

    return mutate


def _first_image(clip: Path) -> Path:
    return sorted((clip / "cameras" / "front").iterdir())[0]


# ------------------------------------------------------------------------------------------------ rig.yaml
def _name_escape(data: dict, clip: Path, workspace: Workspace) -> None:
    data["cameras"][0]["name"] = _escape(workspace, clip)


def _name_absolute(data: dict, clip: Path, workspace: Workspace) -> None:
    data["cameras"][0]["name"] = str(workspace.sentinel.with_suffix(""))


def _rename_camera(data: dict, clip: Path, workspace: Workspace) -> None:
    data["cameras"][1]["name"] = "rear"


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


RIG: dict[str, Mutation] = {
    "rig-empty": _write("rig.yaml", ""),
    "rig-binary": _write("rig.yaml", NOT_UTF8),
    "rig-list": _write("rig.yaml", "- a\n- b\n"),
    "rig-scalar": _write("rig.yaml", "42\n"),
    "rig-bad-yaml": _write("rig.yaml", "cameras: [\n  - {name: front\n"),
    "rig-python-tag": _write("rig.yaml", "!!python/object/apply:os.system ['echo owned']\n"),
    "rig-deep-nesting": _write("rig.yaml", "cameras: " + _nested(1500) + "\n"),
    "rig-K-text": _camera("K", "identity"),
    "rig-K-nan": _camera("K", [[float("nan"), 0, 32], [0, 60, 24], [0, 0, 1]]),
    "rig-K-inf": _camera("K", [[float("inf"), 0, 32], [0, 60, 24], [0, 0, 1]]),
    "rig-K-2x3": _camera("K", [[60, 0, 32], [0, 60, 24]]),
    "rig-K-ragged": _camera("K", [[60, 0], [0, 60, 24], [0, 0, 1]]),
    "rig-K-strings": _camera("K", [["a", 0, 32], [0, 60, 24], [0, 0, 1]]),
    "rig-width-negative": _camera("width", -64),
    "rig-width-zero": _camera("width", 0),
    "rig-width-bool": _camera("width", True),
    "rig-width-float": _camera("width", 64.5),
    "rig-width-text": _camera("width", "64px"),
    "rig-width-huge": _camera("width", 10**12),
    "rig-name-escape": _rig(_name_escape),
    "rig-name-absolute": _rig(_name_absolute),
    "rig-name-comma": _camera("name", "front,left"),
    "rig-name-empty": _camera("name", ""),
    "rig-name-number": _camera("name", 7),
    "rig-name-newline": _camera("name", "front\nx"),
    "rig-name-dot": _camera("name", "."),
    "rig-name-duplicate": _camera("name", "front", index=1),
    "rig-name-no-video": _rig(_rename_camera),
    "rig-cameras-empty": _rig(lambda data, clip, ws: data.update(cameras=[])),
    "rig-cameras-missing": _rig(lambda data, clip, ws: data.pop("cameras")),
    "rig-cameras-mapping": _rig(lambda data, clip, ws: data.update(cameras={"front": 1})),
    "rig-camera-number": _rig(lambda data, clip, ws: data["cameras"].__setitem__(0, 5)),
    "rig-camera-missing-K": _rig(lambda data, clip, ws: data["cameras"][0].pop("K")),
    "rig-schema-2": _rig(lambda data, clip, ws: data.update(schema_version=2)),
    "rig-distortion-model": _camera("distortion", {"model": "kannala", "coefficients": []}),
    "rig-distortion-text": _camera("distortion", "radtan"),
    "rig-distortion-coefficients-text": _camera("distortion", {"model": "radtan", "coefficients": "0.1 0.2"}),
    "rig-distortion-coefficients-count": _camera("distortion", {"model": "radtan", "coefficients": [0.1, 0.2]}),
    "rig-distortion-coefficients-nan": _camera(
        "distortion", {"model": "radtan", "coefficients": [float("nan"), 0, 0, 0, 0]}
    ),
    "rig-distortion-model-list": _camera("distortion", {"model": ["radtan"], "coefficients": []}),
    "rig-extrinsic-text": _camera("ego_from_camera", "identity"),
    "rig-extrinsic-missing": _rig(lambda data, clip, ws: data["cameras"][0].pop("ego_from_camera")),
    "rig-extrinsic-list": _camera("ego_from_camera", [1, 2, 3]),
    "rig-quaternion-zero": _camera("ego_from_camera", {"translation": [1, 0, 1], "rotation_wxyz": [0, 0, 0, 0]}),
    "rig-quaternion-nan": _camera(
        "ego_from_camera", {"translation": [1, 0, 1], "rotation_wxyz": [float("nan"), 0, 0, 0]}
    ),
    "rig-translation-nan": _camera(
        "ego_from_camera", {"translation": [float("nan"), 0, 1], "rotation_wxyz": [1, 0, 0, 0]}
    ),
    "rig-translation-text": _camera("ego_from_camera", {"translation": "here", "rotation_wxyz": [1, 0, 0, 0]}),
    "rig-matrix-3x3": _camera("ego_from_camera", {"matrix": np.eye(3).tolist()}),
    "rig-matrix-scaled": _camera("ego_from_camera", {"matrix": (2 * np.eye(4)).tolist()}),
    "rig-matrix-nan": _camera("ego_from_camera", {"matrix": np.full((4, 4), float("nan")).tolist()}),
    "rig-missing": _remove("rig.yaml"),
    "rig-directory": lambda clip, ws: ((clip / "rig.yaml").unlink(), (clip / "rig.yaml").mkdir()) and None,
    "rig-bitflips": _flip_bytes("rig.yaml", seed=1),
}

# ------------------------------------------------------------------------------------------------ frames.csv


def _swap_rows(rows: list[list[str]]) -> None:
    rows[1][0], rows[2][0] = rows[2][0], rows[1][0]


def _decrease_time(rows: list[list[str]]) -> None:
    column = rows[0].index("timestamp")
    rows[3][column] = "0.0"


def _unit_quaternion_off(rows: list[list[str]]) -> None:
    for name, value in zip(("qw", "qx", "qy", "qz"), ("2.0", "0.0", "0.0", "0.0")):
        rows[2][rows[0].index(name)] = value


def _zero_quaternion(rows: list[list[str]]) -> None:
    for name in ("qw", "qx", "qy", "qz"):
        rows[2][rows[0].index(name)] = "0.0"


FRAMES: dict[str, Mutation] = {
    "frames-empty": _write("frames.csv", ""),
    "frames-header-only": _csv("frames.csv", lambda rows: rows.__delitem__(slice(1, None))),
    "frames-binary": _write("frames.csv", NOT_UTF8),
    "frames-nul": _write("frames.csv", "index,timestamp\x00,x\n0,0\x00,1\n"),
    "frames-missing-column": _drop_column("frames.csv", "t_front"),
    "frames-text-value": _cell("frames.csv", "x", "far"),
    "frames-nan-timestamp": _cell("frames.csv", "timestamp", "nan"),
    "frames-inf-position": _cell("frames.csv", "x", "inf"),
    "frames-nan-quaternion": _cell("frames.csv", "qw", "nan"),
    "frames-zero-quaternion": _csv("frames.csv", _zero_quaternion),
    "frames-long-quaternion": _csv("frames.csv", _unit_quaternion_off),
    "frames-nan-camera-time": _cell("frames.csv", "t_left", "nan"),
    "frames-index-order": _csv("frames.csv", _swap_rows),
    "frames-time-decreasing": _csv("frames.csv", _decrease_time),
    "frames-duplicate-column": _csv("frames.csv", lambda rows: [row.append(row[1]) for row in rows]),
    "frames-ragged-row": _csv("frames.csv", lambda rows: rows[2].pop()),
    "frames-fewer-rows": _csv("frames.csv", lambda rows: rows.pop()),
    "frames-more-rows": _csv("frames.csv", lambda rows: rows.append([str(len(rows) - 1)] + rows[-1][1:])),
    "frames-missing": _remove("frames.csv"),
    "frames-quotes": _write("frames.csv", 'index,"timestamp\n0,1\n'),
    "frames-bitflips": _flip_bytes("frames.csv", seed=2),
    "frames-huge-number": _cell("frames.csv", "x", "1e400"),
}

# ------------------------------------------------------------------------------------------------ poses.csv
POSES: dict[str, Mutation] = {
    "poses-nan": _cell("poses.csv", "x", "nan"),
    "poses-inf": _cell("poses.csv", "qz", "-inf"),
    "poses-duplicate-time": _csv("poses.csv", lambda rows: rows.__setitem__(2, list(rows[1]))),
    "poses-binary": _write("poses.csv", NOT_UTF8),
    "poses-missing-column": _drop_column("poses.csv", "qz"),
    "poses-header-only": _csv("poses.csv", lambda rows: rows.__delitem__(slice(1, None))),
    "poses-empty": _write("poses.csv", ""),
    "poses-zero-quaternion": _csv("poses.csv", _zero_quaternion),
    "poses-text": _cell("poses.csv", "y", "left"),
}

# ------------------------------------------------------------------------------------------------ labels.json


def _class_escape(clip: Path, workspace: Workspace) -> None:
    _labels(lambda d: d.__setitem__("classes", [_escape(workspace, clip), "pedestrian"]))(clip, workspace)


def _bev_escape(clip: Path, workspace: Workspace) -> None:
    _labels(lambda d: d["bev"].__setitem__("file", _escape(workspace, clip)))(clip, workspace)


def _npz_without_data(path: Path) -> None:
    np.savez(path, maps=np.zeros(3))


def _npz_object(path: Path) -> None:
    np.savez(path, data=np.array([{"a": 1}, None], dtype=object))


def _npz_wrong_shape(path: Path) -> None:
    np.savez(path, data=np.zeros((4, 1, 3, 3), np.uint8))


LABELS: dict[str, Mutation] = {
    "labels-binary": _write("labels.json", NOT_UTF8),
    "labels-not-json": _write("labels.json", "{frames: oops"),
    "labels-list": _write("labels.json", "[1, 2, 3]"),
    "labels-empty": _write("labels.json", ""),
    "labels-schema-2": _labels(lambda d: d.update(schema_version=2)),
    "labels-classes-text": _labels(lambda d: d.update(classes="car")),
    "labels-class-escape": _class_escape,
    "labels-class-markup": _labels(lambda d: d.update(classes=["<car>", "pedestrian"])),
    "labels-class-newline": _labels(lambda d: d.update(classes=["car\nnames: [x]", "pedestrian"])),
    "labels-class-duplicate": _labels(lambda d: d.update(classes=["car", "car"])),
    "labels-class-id-range": _box3d("class_id", [7]),
    "labels-class-id-negative": _box3d("class_id", [-1]),
    "labels-class-id-huge": _box3d("class_id", [1e30]),
    "labels-frames-text": _labels(lambda d: d.update(frames="all")),
    "labels-frame-number": _labels(lambda d: d["frames"].__setitem__(1, 5)),
    "labels-center-nan": _box3d("center", [[float("nan"), 0.5, 0.8]]),
    "labels-size-inf": _box3d("size", [[float("inf"), 1.8, 1.6]]),
    "labels-yaw-nan": _box3d("yaw", [float("nan")]),
    "labels-size-zero": _box3d("size", [[4.0, 0.0, 1.6]]),
    "labels-size-negative": _box3d("size", [[-4.0, 1.8, 1.6]]),
    "labels-center-text": _box3d("center", [["a", "b", "c"]]),
    "labels-center-short": _box3d("center", [[8.0, 0.5]]),
    "labels-boxes3d-missing-field": _labels(lambda d: d["frames"][1]["boxes3d"].pop("size")),
    "labels-boxes3d-text": _labels(lambda d: d["frames"][1].update(boxes3d="none")),
    "labels-rows-mismatch": _box3d("yaw", [0.1, 0.2]),
    "labels-boxes2d-nan": _labels(lambda d: d["frames"][1]["boxes2d"]["front"].update(xyxy=[[float("nan"), 1, 2, 3]])),
    "labels-boxes2d-camera": _labels(
        lambda d: d["frames"][1]["boxes2d"].update(rear=d["frames"][1]["boxes2d"]["front"])
    ),
    "labels-boxes2d-camera-escape": _labels(
        lambda d: d["frames"][1]["boxes2d"].update({"../../x": d["frames"][1]["boxes2d"]["front"]})
    ),
    "labels-frame-count": _labels(lambda d: d["frames"].pop()),
    "labels-uncertainty-text": _labels(lambda d: d["frames"][0].update(uncertainty="high")),
    "labels-provenance-list": _labels(lambda d: d.update(provenance=[1])),
    "labels-deep-nesting": _write("labels.json", _nested(50000)),
    "labels-bitflips": _flip_bytes("labels.json", seed=3),
    "bev-escape": _bev_escape,
    "bev-missing": _remove("labels_bev.npz"),
    "bev-truncated": _npz(lambda path: path.write_bytes(path.read_bytes()[:60])),
    "bev-garbage": _npz(lambda path: path.write_bytes(b"PK\x03\x04" + NOT_UTF8 * 10)),
    "bev-empty": _npz(lambda path: path.write_bytes(b"")),
    "bev-no-data": _npz(_npz_without_data),
    "bev-pickle": _npz(_npz_object),
    "bev-wrong-shape": _npz(_npz_wrong_shape),
    "bev-grid-nan": _labels(lambda d: d["bev"]["grid"].update(resolution=float("nan"))),
    "bev-grid-zero": _labels(lambda d: d["bev"]["grid"].update(resolution=0)),
    "bev-grid-text": _labels(lambda d: d["bev"].update(grid="big")),
    "bev-record-text": _labels(lambda d: d.update(bev="maps.npz")),
    "bev-bitflips": _flip_bytes("labels_bev.npz", seed=4, count=40),
}

# ------------------------------------------------------------------------------------------------ camera files


def _wrong_size_image(clip: Path, workspace: Workspace) -> None:
    import cv2

    cv2.imwrite(str(_first_image(clip)), np.zeros((10, 12, 3), np.uint8))


def _garbage_image(clip: Path, workspace: Workspace) -> None:
    _first_image(clip).write_bytes(b"\x89PNG\r\n\x1a\n" + NOT_UTF8 * 20)


def _last_image_garbage(clip: Path, workspace: Workspace) -> None:
    sorted((clip / "cameras" / "left").iterdir())[-1].write_bytes(b"not a png")


def _extra_image(clip: Path, workspace: Workspace) -> None:
    images = sorted((clip / "cameras" / "front").iterdir())
    shutil.copy(images[-1], images[-1].with_name("999999.png"))


def _cameras_file(clip: Path, workspace: Workspace) -> None:
    shutil.rmtree(clip / "cameras")
    (clip / "cameras").write_text("no folder")


IMAGES: dict[str, Mutation] = {
    "images-folder-missing": _remove("cameras/front"),
    "images-folder-empty": lambda clip, ws: [p.unlink() for p in (clip / "cameras" / "front").iterdir()] and None,
    "images-first-garbage": _garbage_image,
    "images-last-garbage": _last_image_garbage,
    "images-wrong-size": _wrong_size_image,
    "images-truncated-png": lambda clip, ws: _truncate(str(_first_image(clip).relative_to(clip)), 0.6)(clip, ws),
    "images-one-missing": lambda clip, ws: _first_image(clip).unlink(),
    "images-one-extra": _extra_image,
    "images-cameras-is-file": _cameras_file,
}

VIDEOS: dict[str, Mutation] = {
    "video-missing": _remove("cameras/front.mp4"),
    "video-empty": _write("cameras/front.mp4", b""),
    "video-garbage": _write("cameras/front.mp4", NOT_UTF8 * 100),
    "video-truncated-half": _truncate("cameras/front.mp4", 0.5),
    "video-truncated-end": _truncate("cameras/front.mp4", 0.97),
    "video-header-only": _truncate("cameras/front.mp4", 0.02),
    "video-bitflips": _flip_bytes("cameras/left.mp4", seed=5, count=200),
}

CLIP: dict[str, Mutation] = {
    "clip-empty-folder": lambda clip, ws: [_remove(p.name)(clip, ws) for p in list(clip.iterdir())] and None,
    "clip-is-file": lambda clip, ws: (shutil.rmtree(clip), clip.write_text("not a clip")) and None,
}

# (file kind, image storage, mutation) for every corruption; image-folder cases use the PNG clip, video cases MP4
CLIP_CORRUPTIONS: dict[str, tuple[str, str, Mutation]] = {
    **{name: ("rig", "png", m) for name, m in RIG.items()},
    **{name: ("frames", "png", m) for name, m in FRAMES.items()},
    **{name: ("poses", "png", m) for name, m in POSES.items()},
    **{name: ("labels", "png", m) for name, m in LABELS.items()},
    **{name: ("video", "png", m) for name, m in IMAGES.items()},
    **{name: ("video", "mp4", m) for name, m in VIDEOS.items()},
    **{name: ("clip", "png", m) for name, m in CLIP.items()},
}

# the file a message must name, per kind
NAMED_FILE = {
    "rig": "rig.yaml",
    "frames": "frames.csv",
    "poses": "poses.csv",
    "labels": "labels",
    "video": "cameras",
    "clip": "clip",
}
