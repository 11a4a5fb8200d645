"""Drive clips: one folder per clip with a rig, per-camera videos, per-frame timing and poses, optional labels.

Layout (documented in README.md, "The drive-clip format")::

    clip/
      rig.yaml               cameras (rig.py)
      cameras/<name>.mp4     or cameras/<name>/000000.jpg ...
      frames.csv             index,timestamp,x,y,z,qw,qx,qy,qz,t_<camera>...  (pose = world_from_ego at timestamp)
      poses.csv              optional denser ego-pose stream: timestamp,x,y,z,qw,qx,qy,qz
      labels.json            optional (labels.py), 3D boxes in the ego frame at each frame's timestamp
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from perception.atomic import atomic_write_text, make_staging_dir, path_inside, replace_directory
from perception.errors import InputError
from perception.geometry import interpolate_pose, invert_se3, matrix_to_quat, quat_to_matrix, se3
from perception.labels import ClipLabels, LabelsError
from perception.rig import Camera, Rig, RigError
from perception.video import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    VideoError,
    VideoReader,
    VideoWriter,
    presentation_times,
)

POSE_COLUMNS = ["x", "y", "z", "qw", "qx", "qy", "qz"]


class ClipError(InputError):
    """A clip folder is malformed or inconsistent; the message names the file and what is wrong."""


@dataclass
class Frame:
    """One synchronised set of camera images (BGR uint8) with its timing and ego pose."""

    index: int
    images: dict[str, np.ndarray]
    camera_timestamps: dict[str, float]
    timestamp: float
    world_from_ego: np.ndarray = field(repr=False)


def _pose_row(world_from_ego: np.ndarray) -> list[float]:
    return [*world_from_ego[:3, 3].tolist(), *matrix_to_quat(world_from_ego[:3, :3]).tolist()]


def _pose_from_row(row: Sequence[float]) -> np.ndarray:
    return se3(quat_to_matrix(np.asarray(row[3:7])), np.asarray(row[:3]))


def _read_table(path: Path, required: list[str], rig_path: Path | None = None) -> tuple[list[str], np.ndarray]:
    """Header and rows (float64) of a CSV table; ``ClipError`` naming the file, the line and the column when it is
    not UTF-8 text, misses a column, has a row of another length, or holds a value that is not a finite number."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as error:
        raise ClipError(f"{path}: file not found") from error
    except UnicodeDecodeError as error:
        raise ClipError(f"{path}: expected CSV text, found binary data (byte {error.start} is not UTF-8)") from None
    except OSError as error:
        raise ClipError(f"{path}: cannot read ({error.strerror})") from None
    reader = csv.reader(io.StringIO(text))
    line_number = 1
    try:
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration as error:
            raise ClipError(f"{path}: empty file (expected a header row {required + ['...']})") from error
        missing = [c for c in required if c not in header]
        if missing:
            cameras = [c for c in missing if c.startswith("t_")]
            note = f"; the cameras of {rig_path} need t_<camera> columns" if cameras and rig_path else ""
            raise ClipError(f"{path}: missing columns {missing} (found {header[:20]}){note}")
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise ClipError(f"{path}: header: expected unique column names, found duplicates {duplicates}")
        rows = []
        for line_number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ClipError(f"{path}: line {line_number}: expected {len(header)} values, found {len(row)}")
            try:
                values = [float(v) for v in row]
            except ValueError as error:
                raise ClipError(f"{path}: line {line_number}: expected numbers, found {row[:12]}") from error
            bad = [header[i] for i, v in enumerate(values) if not np.isfinite(v)]
            if bad:
                raise ClipError(
                    f"{path}: line {line_number}: column {bad[0]!r}: expected a finite number, found "
                    f"{row[header.index(bad[0])]!r}"
                )
            rows.append(values)
    except csv.Error as error:
        raise ClipError(f"{path}: line {line_number + 1}: not a CSV row ({error})") from None
    return header, np.asarray(rows, dtype=np.float64).reshape(-1, len(header))


def _poses_from_table(path: Path, header: list[str], table: np.ndarray) -> np.ndarray:
    """(N, 4, 4) world_from_ego from the pose columns; ``ClipError`` naming the line for a quaternion that is not
    of unit length."""
    column = {name: i for i, name in enumerate(header)}
    rows = table[:, [column[c] for c in POSE_COLUMNS]]
    norms = np.linalg.norm(rows[:, 3:7], axis=1)
    bad = np.flatnonzero(np.abs(norms - 1.0) > 1e-3)
    if len(bad):
        raise ClipError(
            f"{path}: line {int(bad[0]) + 2}: columns qw,qx,qy,qz: expected a unit quaternion, found "
            f"{rows[bad[0], 3:7].tolist()} (length {norms[bad[0]]:.4g})"
        )
    return np.stack([_pose_from_row(row) for row in rows]) if len(rows) else np.zeros((0, 4, 4))


def camera_source(clip_path: Path, name: str) -> Path | None:
    """The video file or image folder of camera ``name`` inside a clip, or None."""
    for extension in VIDEO_EXTENSIONS:
        candidate = clip_path / "cameras" / f"{name}{extension}"
        if candidate.is_file():
            return candidate
    folder = clip_path / "cameras" / name
    return folder if folder.is_dir() else None


class DriveClip:
    """A drive clip opened for reading; frames stream lazily with constant memory."""

    def __init__(
        self,
        path: Path,
        rig: Rig,
        sources: dict[str, Path],
        timestamps: np.ndarray,
        world_from_ego: np.ndarray,
        camera_timestamps: dict[str, np.ndarray],
        pose_times: np.ndarray,
        pose_stream: np.ndarray,
        labels_path: Path | None = None,
        missing: dict[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.rig = rig
        self.sources = sources
        self.timestamps = timestamps
        self.world_from_ego = world_from_ego
        self.camera_timestamps = camera_timestamps
        self._pose_times = pose_times
        self._pose_stream = pose_stream
        self._labels_path = labels_path
        self._labels: ClipLabels | None = None
        self.missing: dict[str, str] = dict(missing or {})  # lenient clips: camera -> why it has no usable video

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls, path: str | os.PathLike, labels_path: str | os.PathLike | None = None, *, lenient: bool = False
    ) -> DriveClip:
        """Open and check a clip folder (rig, timing table, camera files, frame counts).

        ``labels_path`` reads labels from another file (e.g. pseudo-labels written by ``autolabel`` elsewhere)
        instead of the clip's own ``labels.json``.

        ``lenient=True`` (the in-vehicle runtime, which must keep going on the cameras it has): a camera whose video
        is absent, unreadable or of another size than rig.yaml says is left out of ``sources`` and reported with the
        reason in ``missing`` instead of failing; a video holding fewer frames than frames.csv is kept (``frames``
        and readers report where it ends); a camera without a ``t_<camera>`` column in frames.csv is taken to be
        captured at the frame's reference time. Rig, timing table and poses are checked as strictly as ever.
        """
        path = Path(path)
        if not path.is_dir():
            raise ClipError(f"{path}: not a clip folder (expected a directory with rig.yaml and frames.csv)")
        try:
            rig = Rig.load(path / "rig.yaml")
        except RigError as error:
            raise ClipError(str(error)) from error
        camera_columns = [] if lenient else [f"t_{name}" for name in rig.names]
        header, table = _read_table(
            path / "frames.csv", ["index", "timestamp", *POSE_COLUMNS, *camera_columns], rig_path=path / "rig.yaml"
        )
        column = {name: i for i, name in enumerate(header)}
        if len(table) == 0:
            raise ClipError(f"{path / 'frames.csv'}: no frames")
        if not np.array_equal(table[:, column["index"]], np.arange(len(table))):
            raise ClipError(f"{path / 'frames.csv'}: column 'index': expected 0..{len(table) - 1} in order")
        timestamps = table[:, column["timestamp"]]
        camera_timestamps = {
            name: table[:, column[f"t_{name}"]] if f"t_{name}" in column else timestamps for name in rig.names
        }
        for name, values in [("timestamp", timestamps), *[(f"t_{n}", v) for n, v in camera_timestamps.items()]]:
            bad = np.nonzero(np.diff(values) <= 0)[0]
            if len(bad):
                i = int(bad[0])
                raise ClipError(
                    f"{path / 'frames.csv'}: column '{name}': timestamps must increase, "
                    f"found {values[i]:.6f} at frame {i} then {values[i + 1]:.6f} at frame {i + 1}"
                )
        world_from_ego = _poses_from_table(path / "frames.csv", header, table)
        pose_times, pose_stream = timestamps, world_from_ego
        if (path / "poses.csv").is_file():
            pose_header, pose_table = _read_table(path / "poses.csv", ["timestamp", *POSE_COLUMNS])
            if len(pose_table) == 0:
                raise ClipError(f"{path / 'poses.csv'}: expected pose rows after the header, found none")
            pc = {name: i for i, name in enumerate(pose_header)}
            poses = _poses_from_table(path / "poses.csv", pose_header, pose_table)
            order = np.argsort(pose_table[:, pc["timestamp"]], kind="stable")
            pose_times = pose_table[order, pc["timestamp"]]
            if np.any(np.diff(pose_times) <= 0):
                raise ClipError(f"{path / 'poses.csv'}: column 'timestamp': expected distinct times, found duplicates")
            pose_stream = poses[order]
        sources, missing = {}, {}
        for name in rig.names:
            source = camera_source(path, name)
            if source is None:
                problem = (
                    f"{path}: camera {name!r} of rig.yaml has no video: expected cameras/{name}.mp4 "
                    f"(or {'/'.join(VIDEO_EXTENSIONS)}) or an image folder cameras/{name}/"
                )
                if not lenient:
                    raise ClipError(problem)
                missing[name] = problem
            else:
                sources[name] = source
        if labels_path is not None:
            labels_path = Path(labels_path)
            if not labels_path.is_file():
                raise ClipError(f"{labels_path}: labels file for clip {path} not found")
        else:
            labels_path = path / "labels.json" if (path / "labels.json").is_file() else None
        clip = cls(
            path,
            rig,
            sources,
            timestamps,
            world_from_ego,
            camera_timestamps,
            pose_times,
            pose_stream,
            labels_path,
            missing,
        )
        if not lenient:
            clip.validate(deep=False)
            return clip
        for name in list(clip.sources):
            try:
                clip._check_source(name, deep=False, frame_count=False)
            except ClipError as error:
                clip.missing[name] = str(error)
                del clip.sources[name]
        return clip

    @classmethod
    def from_video(
        cls, path: str | os.PathLike, K: np.ndarray | None = None, fps: float | None = None, camera_name: str = "camera"
    ) -> DriveClip:
        """A one-camera clip view of a plain video file or image folder (identity poses; nominal K if none given).

        Frame times: the container's presentation times (``perception.video.presentation_times``; an image
        folder's frames.csv ``timestamp`` column), or ``i / fps`` when ``fps`` is given."""
        path = Path(path)
        try:
            reader = VideoReader(path, fps=fps)
        except VideoError as error:
            raise ClipError(str(error)) from error
        with reader:
            width, height, count, rate = reader.width, reader.height, reader.frame_count, reader.fps
            if count <= 0:
                count = reader.count_decodable()
        if count <= 0:
            raise ClipError(f"{path}: video holds no decodable frames")
        if K is None:  # nominal pinhole: ~53 degrees horizontal field of view, centred principal point
            K = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], dtype=np.float64)
        rig = Rig([Camera(camera_name, width, height, K)])
        try:  # the container's presentation times (variable frame rates) unless fps is forced
            times = np.arange(count) / rate if fps is not None else presentation_times(path, count, rate)
        except VideoError as error:
            raise ClipError(str(error)) from error
        poses = np.repeat(np.eye(4)[None], count, axis=0)
        return cls(path, rig, {camera_name: path}, times, poses, {camera_name: times}, times, poses)

    # ------------------------------------------------------------------ properties
    @property
    def name(self) -> str:
        return self.path.stem if self.path.is_file() else self.path.name

    @property
    def num_frames(self) -> int:
        return len(self.timestamps)

    @property
    def labels(self) -> ClipLabels | None:
        """The clip's labels (loaded on first access), or None when the clip has none."""
        if self._labels is None and self._labels_path is not None:
            try:
                labels = ClipLabels.load(self._labels_path, camera_names=self.rig.names)
            except LabelsError as error:
                raise ClipError(str(error)) from error
            if len(labels.frames) != self.num_frames:
                raise ClipError(
                    f"{self._labels_path}: expected labels for {self.num_frames} frames (frames.csv), found "
                    f"{len(labels.frames)}"
                )
            self._labels = labels
        return self._labels

    def pose_at(self, t: float) -> np.ndarray:
        """world_from_ego at time ``t`` (s), interpolated in the pose stream (constant-velocity extrapolation
        outside)."""
        times, poses = self._pose_times, self._pose_stream
        if len(times) == 1:
            return poses[0].copy()
        i = int(np.clip(np.searchsorted(times, t) - 1, 0, len(times) - 2))
        alpha = (t - times[i]) / (times[i + 1] - times[i])
        return interpolate_pose(poses[i], poses[i + 1], float(alpha))

    @property
    def frame_period_s(self) -> float:
        """Median interval between frame reference times (s); 0.05 for a one-frame clip."""
        return float(np.median(np.diff(self.timestamps))) if self.num_frames > 1 else 0.05

    def camera_from_ego(self, frame_index: int, camera: str, capture_time: float | None = None) -> np.ndarray:
        """Maps ego-frame points at the frame's reference time into ``camera`` at its own capture time
        (frames.csv's ``t_<camera>``, or ``capture_time`` in s when given, e.g. a late frame of another index)."""
        t_camera = float(self.camera_timestamps[camera][frame_index] if capture_time is None else capture_time)
        ego_at_camera_from_world = invert_se3(self.pose_at(t_camera))
        return self.rig[camera].camera_from_ego @ ego_at_camera_from_world @ self.world_from_ego[frame_index]

    # ------------------------------------------------------------------ frames
    def frames(self, cameras: Sequence[str] | None = None, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
        """Stream frames ``start``..``stop`` of the given cameras (all with video by default), decoding in order."""
        cameras = list(cameras or self.sources)
        self._require_sources(cameras)
        stop = self.num_frames if stop is None else min(stop, self.num_frames)
        readers = [VideoReader(self.sources[name]) for name in cameras]
        iterators = [iter(reader) for reader in readers]
        try:
            for index in range(stop):
                images = {}
                for name, iterator in zip(cameras, iterators):
                    try:
                        images[name] = next(iterator)
                    except StopIteration:
                        raise ClipError(
                            f"{self.sources[name]}: ends after {index} frames but frames.csv lists {self.num_frames} "
                            f"(last good frame: {index - 1})"
                        ) from None
                    except VideoError as error:
                        raise ClipError(str(error)) from error
                if index >= start:
                    yield self._frame(index, images)
        finally:
            for reader in readers:
                reader.close()

    def read_frame(self, index: int, cameras: Sequence[str] | None = None) -> Frame:
        """Random access to one frame (seeks in every camera's video)."""
        if not 0 <= index < self.num_frames:
            raise IndexError(f"{self.path}: frame {index} out of range 0..{self.num_frames - 1}")
        cameras = list(cameras or self.sources)
        self._require_sources(cameras)
        images = {}
        for name in cameras:
            with VideoReader(self.sources[name]) as reader:
                try:
                    images[name] = reader.read(index)
                except VideoError as error:
                    raise ClipError(str(error)) from error
        return self._frame(index, images)

    def _require_sources(self, cameras: Sequence[str]) -> None:
        """``ClipError`` naming the reason when a requested camera has no usable video (lenient clips)."""
        for name in cameras:
            if name not in self.sources:
                reason = self.missing.get(name, f"not a camera of rig.yaml (cameras: {self.rig.names})")
                raise ClipError(f"{self.path}: camera {name!r} cannot be read: {reason}")

    def _frame(self, index: int, images: dict[str, np.ndarray]) -> Frame:
        return Frame(
            index,
            images,
            {name: float(self.camera_timestamps[name][index]) for name in images},
            float(self.timestamps[index]),
            self.world_from_ego[index],
        )

    # ------------------------------------------------------------------ checks
    def validate(self, deep: bool = False) -> None:
        """Check camera files against frames.csv; ``deep`` decodes every frame to find truncation."""
        for name in self.sources:
            self._check_source(name, deep=deep)
        if deep:
            _ = self.labels

    def _check_source(self, name: str, *, deep: bool, frame_count: bool = True) -> None:
        """``ClipError`` unless camera ``name``'s video opens, has the rig's frame size and (``frame_count``) holds
        as many frames as frames.csv lists (by its header; ``deep``: by decoding every frame)."""
        source, camera = self.sources[name], self.rig[name]
        try:
            with VideoReader(source) as reader:
                if (reader.width, reader.height) != (camera.width, camera.height):
                    raise ClipError(
                        f"{source}: frame size {reader.width}x{reader.height} differs from rig.yaml camera "
                        f"{name!r} ({camera.width}x{camera.height})"
                    )
                declared = reader.frame_count
                if frame_count and declared > 0 and declared != self.num_frames:
                    raise ClipError(f"{source}: holds {declared} frames but frames.csv lists {self.num_frames}")
                if deep:
                    decoded = 0
                    try:
                        for _ in reader:
                            decoded += 1
                    except VideoError as error:
                        raise ClipError(str(error)) from error
                    if frame_count and decoded != self.num_frames:
                        raise ClipError(
                            f"{source}: decoded {decoded} frames but frames.csv lists {self.num_frames} "
                            f"(last good frame: {decoded - 1})"
                        )
        except VideoError as error:
            raise ClipError(str(error)) from error


def find_clips(root: str | os.PathLike) -> list[Path]:
    """Clip folders (holding rig.yaml and frames.csv) under ``root``, sorted."""
    root = Path(root)
    return sorted(p.parent for p in root.rglob("rig.yaml") if (p.parent / "frames.csv").is_file())


class ClipWriter:
    """Writes a clip into a temporary folder beside ``path`` and renames it into place on success."""

    def __init__(
        self, path: str | os.PathLike, rig: Rig, fps: float = 10.0, image_format: str = "mp4", overwrite: bool = False
    ) -> None:
        if image_format not in ("mp4", "avi", "jpg", "png"):
            raise ValueError(f"image_format: expected one of mp4, avi, jpg, png, found {image_format!r}")
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise ClipError(f"{self.path}: already exists (pass overwrite=True to replace it)")
        self.rig, self.fps, self.image_format, self.overwrite = rig, fps, image_format, overwrite
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._temporary = make_staging_dir(self.path)
        (self._temporary / "cameras").mkdir()
        self._writers: dict[str, VideoWriter] = {}
        self._rows: list[list[float]] = []
        self._poses: list[list[float]] = []
        self._labels: ClipLabels | None = None

    def add_frame(
        self,
        images: dict[str, np.ndarray],
        timestamp: float,
        world_from_ego: np.ndarray,
        camera_timestamps: dict[str, float] | None = None,
    ) -> None:
        """Append one frame: a BGR image per rig camera, the reference time (s) and world_from_ego at it."""
        missing = [n for n in self.rig.names if n not in images]
        if missing:
            raise ClipError(f"{self.path}: frame {len(self._rows)}: images missing for cameras {missing}")
        index = len(self._rows)
        for name in self.rig.names:
            image = images[name]
            camera = self.rig[name]
            if image.shape[:2] != (camera.height, camera.width):
                raise ClipError(
                    f"{self.path}: camera {name!r} image is {image.shape[1]}x{image.shape[0]}, rig says "
                    f"{camera.width}x{camera.height}"
                )
            if self.image_format in ("jpg", "png"):
                import cv2

                folder = path_inside(self._temporary, "cameras", name)
                folder.mkdir(exist_ok=True)
                cv2.imwrite(str(folder / f"{index:06d}.{self.image_format}"), image)
            else:
                if name not in self._writers:
                    self._writers[name] = VideoWriter(
                        path_inside(self._temporary, "cameras", f"{name}.{self.image_format}"),
                        self.fps,
                        (camera.width, camera.height),
                        odd_size="exact",  # a clip's video keeps the rig's size (4:4:4 H.264 when it is odd)
                        faststart=False,  # written once, read from disk: no second pass to move the index
                    )
                self._writers[name].write(image)
        times = camera_timestamps or {}
        self._rows.append(
            [index, timestamp, *_pose_row(world_from_ego), *[times.get(n, timestamp) for n in self.rig.names]]
        )

    def add_pose(self, t: float, world_from_ego: np.ndarray) -> None:
        """Add a sample to the dense ego-pose stream (poses.csv)."""
        self._poses.append([t, *_pose_row(world_from_ego)])

    def set_labels(self, labels: ClipLabels) -> None:
        self._labels = labels

    def close(self) -> Path:
        """Finish every file and move the clip into place."""
        for writer in self._writers.values():
            writer.close()
        self.rig.save(self._temporary / "rig.yaml")
        header = ["index", "timestamp", *POSE_COLUMNS, *[f"t_{n}" for n in self.rig.names]]
        atomic_write_text(self._temporary / "frames.csv", _csv(header, self._rows, integer_columns=1))
        if self._poses:
            rows = sorted({row[0]: row for row in self._poses}.values())  # one sample per time
            atomic_write_text(self._temporary / "poses.csv", _csv(["timestamp", *POSE_COLUMNS], rows))
        if self._labels is not None:
            if len(self._labels.frames) != len(self._rows):
                raise ClipError(
                    f"{self.path}: labels hold {len(self._labels.frames)} frames, clip has {len(self._rows)}"
                )
            self._labels.save(self._temporary / "labels.json")
        return replace_directory(self._temporary, self.path)

    def abort(self) -> None:
        for writer in self._writers.values():
            writer.abort()
        shutil.rmtree(self._temporary, ignore_errors=True)

    def __enter__(self) -> ClipWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _csv(header: list[str], rows: list[list[float]], integer_columns: int = 0) -> str:
    lines = [",".join(header)]
    for row in rows:
        values = [str(int(v)) for v in row[:integer_columns]] + [repr(float(v)) for v in row[integer_columns:]]
        lines.append(",".join(values))
    return "\n".join(lines) + "\n"


__all__ = ["IMAGE_EXTENSIONS", "ClipError", "ClipWriter", "DriveClip", "Frame", "camera_source", "find_clips"]
