"""Typed label containers (3D boxes, per-camera 2D boxes, BEV maps) and their versioned JSON files."""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perception.atomic import atomic_write_bytes, atomic_write_text
from perception.geometry import BevGrid, box3d_corners

SCHEMA_VERSION = 1
DRIVING_CLASSES = ("car", "truck", "bus", "pedestrian", "cyclist", "traffic_cone")


class LabelsError(ValueError):
    """A labels file is malformed or inconsistent with its clip."""


def _as_array(value: Any, dtype: Any, shape_tail: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(value, dtype=dtype)
    if array.size == 0:
        array = array.reshape((0, *shape_tail))
    return array


class _BoxTable:
    """Parallel arrays of equal length, indexable by a mask or indices (supervision-style)."""

    _shapes: dict[str, tuple[tuple[int, ...], Any]] = {}

    def _validate(self) -> None:
        n = None
        for name, (tail, dtype) in self._shapes.items():
            array = _as_array(getattr(self, name), dtype, tail)
            if array.shape[1:] != tail:
                raise LabelsError(
                    f"{type(self).__name__}.{name}: expected shape (N, {', '.join(map(str, tail))}), found {array.shape}"
                )
            if n is None:
                n = len(array)
            elif len(array) != n:
                raise LabelsError(
                    f"{type(self).__name__}.{name}: expected {n} rows like the first field, found {len(array)}"
                )
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return len(getattr(self, next(iter(self._shapes))))

    def __getitem__(self, index: Any):
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return type(self)(**{name: getattr(self, name)[index] for name in self._shapes})

    @classmethod
    def empty(cls):
        return cls(**{name: np.zeros((0, *tail), dtype=dtype) for name, (tail, dtype) in cls._shapes.items()})

    @classmethod
    def concat(cls, tables: Sequence[Any]):
        if not tables:
            return cls.empty()
        return cls(**{name: np.concatenate([getattr(t, name) for t in tables]) for name in cls._shapes})

    def to_dict(self) -> dict:
        out = {}
        for name, (_, dtype) in self._shapes.items():
            array = getattr(self, name)
            out[name] = array.round(5).tolist() if np.issubdtype(dtype, np.floating) else array.tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>"):
        missing = [name for name in cls._shapes if name not in data]
        if missing:
            raise LabelsError(f"{source}: {cls.__name__} is missing fields {missing}")
        return cls(**{name: data[name] for name in cls._shapes})


@dataclass
class Boxes3D(_BoxTable):
    """3D boxes in the ego frame: centre (N,3) m, size (N,3) [l, w, h] m, yaw (N,) rad, velocity (N,2) m/s."""

    center: np.ndarray
    size: np.ndarray
    yaw: np.ndarray
    velocity: np.ndarray | None = None
    class_id: np.ndarray | None = None
    score: np.ndarray | None = None
    track_id: np.ndarray | None = None

    _shapes = {
        "center": ((3,), np.float64),
        "size": ((3,), np.float64),
        "yaw": ((), np.float64),
        "velocity": ((2,), np.float64),
        "class_id": ((), np.int64),
        "score": ((), np.float32),
        "track_id": ((), np.int64),
    }

    def __post_init__(self) -> None:
        n = len(np.asarray(self.center).reshape(-1, 3))
        if self.velocity is None:
            self.velocity = np.zeros((n, 2))
        if self.class_id is None:
            self.class_id = np.zeros(n, dtype=np.int64)
        if self.score is None:
            self.score = np.ones(n, dtype=np.float32)
        if self.track_id is None:
            self.track_id = np.full(n, -1, dtype=np.int64)
        self._validate()

    def corners(self) -> np.ndarray:
        """Box corners (N, 8, 3) in the ego frame (order in ``geometry.box3d_corners``)."""
        return box3d_corners(self.center, self.size, self.yaw)


@dataclass
class Boxes2D(_BoxTable):
    """2D boxes in one camera's image: xyxy (N,4) pixels, visibility/truncation in [0, 1] (nan unknown)."""

    xyxy: np.ndarray
    class_id: np.ndarray | None = None
    score: np.ndarray | None = None
    track_id: np.ndarray | None = None
    visibility: np.ndarray | None = None
    truncation: np.ndarray | None = None

    _shapes = {
        "xyxy": ((4,), np.float64),
        "class_id": ((), np.int64),
        "score": ((), np.float32),
        "track_id": ((), np.int64),
        "visibility": ((), np.float32),
        "truncation": ((), np.float32),
    }

    def __post_init__(self) -> None:
        n = len(np.asarray(self.xyxy).reshape(-1, 4))
        if self.class_id is None:
            self.class_id = np.zeros(n, dtype=np.int64)
        if self.score is None:
            self.score = np.ones(n, dtype=np.float32)
        if self.track_id is None:
            self.track_id = np.full(n, -1, dtype=np.int64)
        if self.visibility is None:
            self.visibility = np.full(n, np.nan, dtype=np.float32)
        if self.truncation is None:
            self.truncation = np.full(n, np.nan, dtype=np.float32)
        self._validate()

    def to_dict(self) -> dict:
        out = super().to_dict()
        for name in ("visibility", "truncation"):  # JSON has no NaN: unknown is null
            out[name] = [None if v != v else v for v in out[name]]
        return out

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>"):
        data = dict(data)
        for name in ("visibility", "truncation"):
            if name in data:
                data[name] = [np.nan if v is None else v for v in data[name]]
        return super().from_dict(data, source)


@dataclass
class FrameLabels:
    """Labels of one frame: 3D boxes (ego frame at the frame's reference time) and 2D boxes per camera."""

    boxes3d: Boxes3D = field(default_factory=Boxes3D.empty)
    boxes2d: dict[str, Boxes2D] = field(default_factory=dict)
    uncertainty: float | None = None


@dataclass
class BevMaps:
    """Per-frame BEV rasters: ``data`` uint8 (F, C, H, W) on ``grid`` with named channels (e.g. drivable, lane)."""

    grid: BevGrid
    channels: list[str]
    data: np.ndarray

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, dtype=np.uint8)
        expected = (len(self.channels), *self.grid.shape)
        if self.data.ndim != 4 or self.data.shape[1:] != expected:
            raise LabelsError(
                f"BevMaps.data: expected shape (F, {expected[0]}, {expected[1]}, {expected[2]}), found {self.data.shape}"
            )


@dataclass
class ClipLabels:
    """All labels of one clip, with the class list and the provenance (who produced them)."""

    classes: list[str]
    frames: list[FrameLabels]
    provenance: dict = field(default_factory=dict)
    bev: BevMaps | None = None

    def save(self, path: str | os.PathLike) -> None:
        """Write ``labels.json`` (and ``bev_maps.npz`` beside it when BEV maps exist), atomically."""
        path = Path(path)
        document = {
            "schema_version": SCHEMA_VERSION,
            "classes": list(self.classes),
            "provenance": self.provenance,
            "frames": [
                {
                    "boxes3d": frame.boxes3d.to_dict(),
                    "boxes2d": {camera: boxes.to_dict() for camera, boxes in frame.boxes2d.items()},
                    **({"uncertainty": round(float(frame.uncertainty), 6)} if frame.uncertainty is not None else {}),
                }
                for frame in self.frames
            ],
        }
        if self.bev is not None:
            sidecar = path.with_name(path.stem + "_bev.npz")
            buffer = io.BytesIO()
            np.savez_compressed(buffer, data=self.bev.data)
            atomic_write_bytes(sidecar, buffer.getvalue())
            document["bev"] = {
                "file": sidecar.name,
                "grid": self.bev.grid.to_dict(),
                "channels": list(self.bev.channels),
            }
        atomic_write_text(path, json.dumps(document, separators=(",", ":")))

    @classmethod
    def load(cls, path: str | os.PathLike, camera_names: Sequence[str] | None = None) -> ClipLabels:
        """Read and validate a labels file; ``camera_names`` (the clip's rig) catches unknown cameras."""
        path = Path(path)
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError as error:
            raise LabelsError(f"{path}: file not found") from error
        except json.JSONDecodeError as error:
            raise LabelsError(f"{path}: not valid JSON ({error})") from error
        version = document.get("schema_version")
        if version != SCHEMA_VERSION:
            raise LabelsError(f"{path}: field 'schema_version': expected {SCHEMA_VERSION}, found {version!r}")
        classes = document.get("classes")
        if not isinstance(classes, list):
            raise LabelsError(f"{path}: field 'classes': expected a list of class names, found {classes!r}")
        frames = []
        for index, item in enumerate(document.get("frames", [])):
            where = f"{path}: frames[{index}]"
            boxes3d = Boxes3D.from_dict(item.get("boxes3d", Boxes3D.empty().to_dict()), where + ".boxes3d")
            boxes2d = {}
            for camera, boxes in item.get("boxes2d", {}).items():
                if camera_names is not None and camera not in camera_names:
                    raise LabelsError(
                        f"{where}.boxes2d: camera {camera!r} is not in the clip's rig (cameras: {list(camera_names)})"
                    )
                boxes2d[camera] = Boxes2D.from_dict(boxes, f"{where}.boxes2d.{camera}")
            for name, table in [("boxes3d", boxes3d), *[(f"boxes2d.{c}", b) for c, b in boxes2d.items()]]:
                if len(table) and (table.class_id.min() < 0 or table.class_id.max() >= len(classes)):
                    raise LabelsError(
                        f"{where}.{name}.class_id: expected 0..{len(classes) - 1}, found {table.class_id.tolist()}"
                    )
            frames.append(FrameLabels(boxes3d, boxes2d, item.get("uncertainty")))
        bev = None
        if "bev" in document:
            meta = document["bev"]
            sidecar = path.with_name(meta["file"])
            if not sidecar.is_file():
                raise LabelsError(f"{path}: field 'bev.file': expected {sidecar} to exist, found nothing")
            with np.load(sidecar) as archive:
                bev = BevMaps(BevGrid.from_dict(meta["grid"]), list(meta["channels"]), archive["data"])
        return cls(classes, frames, document.get("provenance", {}), bev)


def make_provenance(source: str, producer: str, **extra: Any) -> dict:
    """Provenance record: source ('ground_truth' | 'model' | 'autolabel'), producer, package version, time."""
    from perception import __version__

    reserved = {"source", "producer", "version", "created"} & set(extra)
    if reserved:
        raise ValueError(
            f"make_provenance: {sorted(reserved)} are set by fleetvision; pass other keys (e.g. model_version)"
        )
    return {
        "source": source,
        "producer": producer,
        "version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


__all__ = [
    "DRIVING_CLASSES",
    "SCHEMA_VERSION",
    "BevMaps",
    "Boxes2D",
    "Boxes3D",
    "ClipLabels",
    "FrameLabels",
    "LabelsError",
    "make_provenance",
]
