"""Typed label containers (3D boxes, per-camera 2D boxes, BEV maps) and their versioned JSON files."""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from perception.atomic import PathEscapeError, atomic_write_bytes, atomic_write_text, path_inside
from perception.errors import InputError
from perception.geometry import BevGrid, box3d_corners
from perception.rig import CAMERA_NAME_RULE, is_camera_name

SCHEMA_VERSION = 1
DRIVING_CLASSES = ("car", "truck", "bus", "pedestrian", "cyclist", "traffic_cone")


# A class name appears in file names and markup of exporters (YOLO data.yaml, CVAT XML, COCO JSON): letters,
# digits, blanks and _ . + - ( ), starting with a letter or digit, at most 64 characters.
CLASS_NAME_RULE = "letters, digits, ' ', '_', '.', '+', '-', '(', ')' (starting with a letter or digit, at most 64)"
_CLASS_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 _.+()\-]{0,62}[A-Za-z0-9_.+()\-])?")


class LabelsError(InputError):
    """A labels file is malformed or inconsistent with its clip."""


def is_class_name(name: object) -> bool:
    """True when ``name`` may name a class (see ``CLASS_NAME_RULE``)."""
    return isinstance(name, str) and _CLASS_NAME.fullmatch(name) is not None


def check_class_names(classes: object, source: str = "<labels>") -> list[str]:
    """``classes`` as a list after checking it is a list of unique valid class names (``LabelsError`` naming
    ``source`` otherwise)."""
    if not isinstance(classes, list | tuple):
        raise LabelsError(f"{source}: field 'classes': expected a list of class names, found {classes!r}")
    bad = [name for name in classes if not is_class_name(name)]
    if bad:
        raise LabelsError(f"{source}: field 'classes': expected names of {CLASS_NAME_RULE}, found {bad[:3]!r}")
    duplicates = sorted({name for name in classes if classes.count(name) > 1})
    if duplicates:
        raise LabelsError(f"{source}: field 'classes': expected unique names, found duplicates {duplicates}")
    return list(classes)


def _as_array(value: Any, dtype: Any, shape_tail: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(value, dtype=dtype)
    if array.size == 0:
        array = array.reshape((0, *shape_tail))
    return array


def _rows(value: Any, width: int, where: str) -> int:
    """Number of rows of ``value`` seen as (N, width) numbers; ``LabelsError`` when it is not."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise LabelsError(f"{where}: expected numbers of shape (N, {width}), found {str(value)[:80]}") from None
    if array.size % width or (array.ndim > 1 and array.shape[-1] != width):
        raise LabelsError(f"{where}: expected shape (N, {width}), found {array.shape}")
    return array.size // width


class _BoxTable:
    """Parallel arrays of equal length, indexable by a mask or indices (supervision-style).

    ``_shapes``: every per-box column (trailing shape, dtype); ``_saved``: the columns a labels file stores
    (default all of them).
    """

    _shapes: dict[str, tuple[tuple[int, ...], Any]] = {}
    _saved: tuple[str, ...] | None = None

    def _validate(self) -> None:
        n = None
        for name, (tail, dtype) in self._shapes.items():
            try:
                array = _as_array(getattr(self, name), dtype, tail)
            except (TypeError, ValueError, OverflowError) as error:
                raise LabelsError(
                    f"{type(self).__name__}.{name}: expected numbers of shape (N{''.join(', ' + str(t) for t in tail)})"
                    f", found {str(getattr(self, name))[:80]} ({error})"
                ) from None
            if array.shape[1:] != tail:
                raise LabelsError(
                    f"{type(self).__name__}.{name}: expected shape (N, {', '.join(map(str, tail))}), found "
                    f"{array.shape}"
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

    @classmethod
    def _saved_fields(cls) -> tuple[str, ...]:
        return tuple(cls._shapes) if cls._saved is None else cls._saved

    def to_dict(self) -> dict:
        out = {}
        for name in self._saved_fields():
            array, dtype = getattr(self, name), self._shapes[name][1]
            out[name] = array.round(5).tolist() if np.issubdtype(dtype, np.floating) else array.tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>"):
        if not isinstance(data, dict):
            raise LabelsError(f"{source}: expected a mapping of {list(cls._saved_fields())}, found {data!r:.80}")
        missing = [name for name in cls._saved_fields() if name not in data]
        if missing:
            raise LabelsError(f"{source}: {cls.__name__} is missing fields {missing}")
        try:
            return cls(**{name: data[name] for name in cls._saved_fields()})
        except LabelsError as error:
            raise LabelsError(f"{source}: {error}") from None
        except (TypeError, ValueError, OverflowError) as error:  # a column of other values than numbers
            raise LabelsError(f"{source}: expected columns of numbers, found {type(error).__name__}: {error}") from None


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
        n = _rows(self.center, 3, "Boxes3D.center")
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


@dataclass(eq=False)
class Boxes2D(_BoxTable):
    """N 2D boxes in one camera's image as parallel arrays (the one 2D box container: labels, teachers, tracks).

    xyxy (N,4) float64 pixels x1, y1, x2, y2 in the image as stored (finite); class_id (N,) int64 (default 0);
    score (N,) float32 in [0, 1] (default 1); track_id (N,) int64, -1 = none; visibility / truncation (N,) float32
    in [0, 1], nan = unknown; frame (N,) int64 0-based frame index, -1 = unknown; uncertainty (N,) float32 in [0, 1]
    (0 = certain), nan = unknown; embedding (N, D) float32 appearance descriptors or None; image_size
    (width, height) pixels of the image the boxes belong to, or None.

    Filter with a boolean mask or an index array (``boxes[boxes.score > 0.5]``); a labels file stores xyxy,
    class_id, score, track_id, visibility and truncation (frame, uncertainty and embedding are working fields).
    """

    xyxy: np.ndarray
    class_id: np.ndarray | None = None
    score: np.ndarray | None = None
    track_id: np.ndarray | None = None
    visibility: np.ndarray | None = None
    truncation: np.ndarray | None = None
    frame: np.ndarray | None = None
    uncertainty: np.ndarray | None = None
    embedding: np.ndarray | None = None
    image_size: tuple[int, int] | None = None

    _shapes = {
        "xyxy": ((4,), np.float64),
        "class_id": ((), np.int64),
        "score": ((), np.float32),
        "track_id": ((), np.int64),
        "visibility": ((), np.float32),
        "truncation": ((), np.float32),
        "frame": ((), np.int64),
        "uncertainty": ((), np.float32),
    }
    _saved = ("xyxy", "class_id", "score", "track_id", "visibility", "truncation")
    _defaults = {
        "class_id": 0,
        "score": 1.0,
        "track_id": -1,
        "visibility": np.nan,
        "truncation": np.nan,
        "frame": -1,
        "uncertainty": np.nan,
    }

    def __post_init__(self) -> None:
        n = _rows(self.xyxy, 4, "Boxes2D.xyxy")
        for name, fill in self._defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, np.full(n, fill, dtype=self._shapes[name][1]))
            else:  # (N,) columns may come as any 1-D sequence, also (N, 1)
                setattr(self, name, np.asarray(getattr(self, name), dtype=self._shapes[name][1]).reshape(-1))
        self._validate()
        if not np.all(np.isfinite(self.xyxy)):
            bad = np.flatnonzero(~np.isfinite(self.xyxy).all(axis=1))
            raise LabelsError(f"Boxes2D.xyxy: expected finite pixel coordinates, found nan/inf in rows {bad.tolist()}")
        if self.embedding is not None:
            self.embedding = np.asarray(self.embedding, dtype=np.float32)
            if self.embedding.ndim != 2 or len(self.embedding) != n:
                raise LabelsError(f"Boxes2D.embedding: expected shape ({n}, D), found {self.embedding.shape}")
        if self.image_size is not None:
            width, height = (int(v) for v in self.image_size)
            if width <= 0 or height <= 0:
                raise LabelsError(f"Boxes2D.image_size: expected (width, height) > 0 pixels, found {self.image_size}")
            self.image_size = (width, height)

    def __getitem__(self, index: Any) -> Boxes2D:
        """Boxes selected by a boolean mask, an index array, a slice or one index (always a Boxes2D)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Boxes2D(
            **{name: getattr(self, name)[index] for name in self._shapes},
            embedding=None if self.embedding is None else self.embedding[index],
            image_size=self.image_size,
        )

    @classmethod
    def empty(cls, image_size: tuple[int, int] | None = None) -> Boxes2D:
        """Zero boxes."""
        return cls(np.zeros((0, 4)), image_size=image_size)

    @classmethod
    def concat(cls, parts: Sequence[Boxes2D]) -> Boxes2D:
        """All boxes of ``parts`` in order; embeddings are kept when every non-empty part has them with one
        dimension, the image size when all parts agree."""
        parts = [p for p in parts if p is not None]
        if not parts:
            return cls.empty()
        filled = [p.embedding for p in parts if len(p)]
        embedding = None
        if filled and all(e is not None for e in filled) and len({e.shape[1] for e in filled}) == 1:
            dim = filled[0].shape[1]
            embedding = np.concatenate([p.embedding if len(p) else np.zeros((0, dim), np.float32) for p in parts])
        sizes = {p.image_size for p in parts}
        return cls(
            **{name: np.concatenate([getattr(p, name) for p in parts]) for name in cls._shapes},
            embedding=embedding,
            image_size=sizes.pop() if len(sizes) == 1 else None,
        )

    def with_fields(self, **changes: Any) -> Boxes2D:
        """A copy with some fields replaced, validated again (``boxes.with_fields(frame=np.full(len(boxes), 3))``)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"Boxes2D.with_fields: unknown fields {unknown}, expected some of {sorted(known)}")
        return replace(self, **changes)

    def clipped(self, min_size: float = 0.0) -> Boxes2D:
        """Boxes clipped to the image (``image_size`` must be known); boxes narrower or lower than ``min_size``
        pixels after clipping are dropped."""
        if self.image_size is None:
            raise LabelsError("Boxes2D.clipped: image_size is unknown (None); set it to (width, height) pixels")
        width, height = self.image_size
        xyxy = self.xyxy.copy()
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
        keep = (xyxy[:, 2] - xyxy[:, 0] >= min_size) & (xyxy[:, 3] - xyxy[:, 1] >= min_size)
        return self.with_fields(xyxy=xyxy)[keep]

    def split_by_frame(self, num_frames: int) -> list[Boxes2D]:
        """Per-frame boxes (a list of length ``num_frames``) from the ``frame`` column; other frames are dropped."""
        order = np.argsort(self.frame, kind="stable")
        bounds = np.searchsorted(self.frame[order], np.arange(num_frames + 1))
        return [self[order[bounds[i] : bounds[i + 1]]] for i in range(num_frames)]

    def to_dict(self) -> dict:
        out = super().to_dict()
        for name in ("visibility", "truncation"):  # JSON has no NaN: unknown is null
            out[name] = [None if v != v else v for v in out[name]]
        return out

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>"):
        if not isinstance(data, dict):
            raise LabelsError(f"{source}: expected a mapping of {list(cls._saved_fields())}, found {data!r:.80}")
        data = dict(data)
        for name in ("visibility", "truncation"):
            if isinstance(data.get(name), list):
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
                f"BevMaps.data: expected shape (F, {expected[0]}, {expected[1]}, {expected[2]}), found "
                f"{self.data.shape}"
            )


@dataclass
class ClipLabels:
    """All labels of one clip, with the class list and the provenance (who produced them)."""

    classes: list[str]
    frames: list[FrameLabels]
    provenance: dict = field(default_factory=dict)
    bev: BevMaps | None = None

    def __post_init__(self) -> None:
        self.classes = check_class_names(self.classes, "ClipLabels")

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
        """Read and validate a labels file; ``camera_names`` (the clip's rig) catches unknown cameras.

        Every problem is a ``LabelsError`` naming the file and the field: not JSON, wrong types, unknown cameras or
        class ids, non-finite 3D boxes, a missing or corrupt BEV sidecar."""
        path = Path(path)
        try:
            document = json.loads(path.read_bytes().decode("utf-8"))
        except FileNotFoundError as error:
            raise LabelsError(f"{path}: file not found") from error
        except UnicodeDecodeError as error:
            raise LabelsError(f"{path}: expected a labels JSON file, found binary data (byte {error.start})") from None
        except (json.JSONDecodeError, RecursionError) as error:
            raise LabelsError(f"{path}: not valid JSON ({error})") from None
        except OSError as error:
            raise LabelsError(f"{path}: cannot read ({error.strerror})") from None
        if not isinstance(document, dict):
            raise LabelsError(
                f"{path}: expected a JSON object with schema_version, classes, frames, found {type(document).__name__}"
            )
        version = document.get("schema_version")
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise LabelsError(f"{path}: field 'schema_version': expected {SCHEMA_VERSION}, found {version!r}")
        classes = check_class_names(document.get("classes"), str(path))
        items = document.get("frames", [])
        if not isinstance(items, list):
            raise LabelsError(f"{path}: field 'frames': expected a list, found {type(items).__name__}")
        provenance = document.get("provenance", {})
        if not isinstance(provenance, dict):
            raise LabelsError(f"{path}: field 'provenance': expected a mapping, found {type(provenance).__name__}")
        frames = [
            cls._frame_from_dict(item, f"{path}: frames[{index}]", classes, camera_names)
            for index, item in enumerate(items)
        ]
        bev = cls._load_bev(path, document["bev"]) if "bev" in document else None
        if bev is not None and len(bev.data) != len(frames):
            raise LabelsError(f"{path}: field 'bev': expected maps for {len(frames)} frames, found {len(bev.data)}")
        return cls(classes, frames, provenance, bev)

    @staticmethod
    def _frame_from_dict(
        item: object, where: str, classes: list[str], camera_names: Sequence[str] | None
    ) -> FrameLabels:
        if not isinstance(item, dict):
            raise LabelsError(f"{where}: expected a mapping with boxes3d and boxes2d, found {item!r:.80}")
        boxes3d = Boxes3D.from_dict(item.get("boxes3d", Boxes3D.empty().to_dict()), where + ".boxes3d")
        finite = np.isfinite(boxes3d.center).all(axis=1) & np.isfinite(boxes3d.size).all(axis=1)
        finite &= np.isfinite(boxes3d.yaw)
        if not finite.all():
            raise LabelsError(
                f"{where}.boxes3d: expected finite center, size and yaw, found nan/inf in rows "
                f"{np.flatnonzero(~finite).tolist()[:10]}"
            )
        flat = ~(boxes3d.size > 0).all(axis=1)
        if flat.any():
            raise LabelsError(
                f"{where}.boxes3d.size: expected positive l, w, h (metres), found "
                f"{boxes3d.size[flat].tolist()[:3]} in rows {np.flatnonzero(flat).tolist()[:10]}"
            )
        cameras = item.get("boxes2d", {})
        if not isinstance(cameras, dict):
            raise LabelsError(f"{where}.boxes2d: expected a mapping camera -> boxes, found {cameras!r:.80}")
        boxes2d = {}
        for camera, boxes in cameras.items():
            if camera_names is not None and camera not in camera_names:
                raise LabelsError(
                    f"{where}.boxes2d: camera {camera!r} is not in the clip's rig (cameras: {list(camera_names)})"
                )
            if not is_camera_name(camera):
                raise LabelsError(f"{where}.boxes2d: camera name: expected {CAMERA_NAME_RULE}, found {camera!r}")
            boxes2d[camera] = Boxes2D.from_dict(boxes, f"{where}.boxes2d.{camera}")
        for name, table in [("boxes3d", boxes3d), *[(f"boxes2d.{c}", b) for c, b in boxes2d.items()]]:
            if len(table) and (table.class_id.min() < 0 or table.class_id.max() >= len(classes)):
                raise LabelsError(
                    f"{where}.{name}.class_id: expected 0..{len(classes) - 1}, found {table.class_id.tolist()[:20]}"
                )
        uncertainty = item.get("uncertainty")
        if uncertainty is not None and (
            not isinstance(uncertainty, int | float) or isinstance(uncertainty, bool) or not np.isfinite(uncertainty)
        ):
            raise LabelsError(f"{where}.uncertainty: expected a finite number or nothing, found {uncertainty!r}")
        return FrameLabels(boxes3d, boxes2d, uncertainty)

    @staticmethod
    def _load_bev(path: Path, meta: object) -> BevMaps:
        """The BEV maps named by the document's ``bev`` record (a sidecar ``.npz`` beside ``path``)."""
        if not isinstance(meta, dict) or not all(key in meta for key in ("file", "grid", "channels")):
            raise LabelsError(f"{path}: field 'bev': expected a mapping with file, grid, channels, found {meta!r:.80}")
        if not isinstance(meta["file"], str) or "/" in meta["file"] or "\\" in meta["file"]:
            raise LabelsError(f"{path}: field 'bev.file': expected a file name beside it, found {meta['file']!r}")
        try:
            sidecar = path_inside(path.parent, meta["file"])
        except PathEscapeError:
            raise LabelsError(
                f"{path}: field 'bev.file': expected a file name beside it, found {meta['file']!r}"
            ) from None
        if not sidecar.is_file():
            raise LabelsError(f"{path}: field 'bev.file': expected {sidecar} to exist, found nothing")
        channels = meta["channels"]
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise LabelsError(f"{path}: field 'bev.channels': expected a list of names, found {channels!r:.80}")
        try:
            grid = BevGrid.from_dict(meta["grid"])
        except (TypeError, ValueError, KeyError, AttributeError) as error:
            raise LabelsError(
                f"{path}: field 'bev.grid': expected x_min, x_max, y_min, y_max, resolution: {error}"
            ) from None
        try:
            with np.load(sidecar, allow_pickle=False) as archive:
                data = archive["data"]
        except KeyError:
            raise LabelsError(f"{sidecar}: expected an array 'data' (BEV maps), found {'none'}") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as error:
            raise LabelsError(f"{sidecar}: expected a numpy .npz of BEV maps, found a corrupt file ({error})") from None
        try:
            return BevMaps(grid, list(channels), data)
        except (LabelsError, ValueError) as error:
            raise LabelsError(f"{sidecar}: {error}") from None


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
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **extra,
    }


__all__ = [
    "CLASS_NAME_RULE",
    "DRIVING_CLASSES",
    "SCHEMA_VERSION",
    "BevMaps",
    "Boxes2D",
    "Boxes3D",
    "ClipLabels",
    "FrameLabels",
    "LabelsError",
    "check_class_names",
    "is_class_name",
    "make_provenance",
]
