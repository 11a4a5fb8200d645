"""A lenient clip reader for the runtime: rig, timing and poses from a clip folder, tolerating missing cameras.

``DriveClip.open`` refuses a clip whose camera video is missing or short (right for training); a vehicle runtime
must keep running on the cameras it has, so this reader reports those cameras instead of failing.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from perception.clip import ClipError, camera_source
from perception.geometry import interpolate_pose, invert_se3, quat_to_matrix, se3
from perception.rig import Rig, RigError

POSE_COLUMNS = ("x", "y", "z", "qw", "qx", "qy", "qz")


def _read_csv(path: Path, required: list[str]) -> dict[str, np.ndarray]:
    """Columns of a numeric CSV file with a header; ``ClipError`` naming file, line and column on problems."""
    if not path.is_file():
        raise ClipError(f"{path}: file not found")
    rows = list(csv.reader(io.StringIO(path.read_text())))
    if not rows:
        raise ClipError(f"{path}: empty file (expected a header {required})")
    header = [name.strip() for name in rows[0]]
    missing = [name for name in required if name not in header]
    if missing:
        raise ClipError(f"{path}: missing columns {missing} (found {header})")
    values = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            values.append([float(v) for v in row])
        except ValueError as error:
            raise ClipError(f"{path}: line {line}: expected numbers, found {row}") from error
    table = np.asarray(values, dtype=np.float64).reshape(-1, len(header))
    return {name: table[:, i] for i, name in enumerate(header)}


def _poses(columns: dict[str, np.ndarray]) -> np.ndarray:
    """(F, 4, 4) world_from_ego from x, y, z, qw, qx, qy, qz columns."""
    count = len(columns["x"])
    out = np.zeros((count, 4, 4))
    for i in range(count):
        q = np.array([columns[c][i] for c in ("qw", "qx", "qy", "qz")])
        out[i] = se3(quat_to_matrix(q), np.array([columns[c][i] for c in ("x", "y", "z")]))
    return out


@dataclass
class ReplayClip:
    """Rig, frame timing (s), poses (world_from_ego) and per-camera sources of a clip folder; missing cameras listed."""

    path: Path
    rig: Rig
    timestamps: np.ndarray
    camera_timestamps: dict[str, np.ndarray]
    world_from_ego: np.ndarray
    sources: dict[str, Path]
    missing: dict[str, str] = field(default_factory=dict)
    pose_times: np.ndarray | None = None
    pose_stream: np.ndarray | None = None

    @classmethod
    def open(cls, path: str | Path) -> ReplayClip:
        """Read rig.yaml, frames.csv (and poses.csv); cameras without a video are recorded in ``missing``."""
        path = Path(path)
        if not path.is_dir():
            raise ClipError(f"{path}: not a clip folder (expected a directory with rig.yaml and frames.csv)")
        try:
            rig = Rig.load(path / "rig.yaml")
        except RigError as error:
            raise ClipError(str(error)) from error
        frames = _read_csv(path / "frames.csv", ["index", "timestamp", *POSE_COLUMNS])
        if len(frames["timestamp"]) == 0:
            raise ClipError(f"{path / 'frames.csv'}: no frames")
        timestamps = frames["timestamp"]
        camera_timestamps = {name: frames.get(f"t_{name}", timestamps) for name in rig.names}
        world_from_ego = _poses(frames)
        pose_times, pose_stream = timestamps, world_from_ego
        if (path / "poses.csv").is_file():
            poses = _read_csv(path / "poses.csv", ["timestamp", *POSE_COLUMNS])
            order = np.argsort(poses["timestamp"], kind="stable")
            pose_times = poses["timestamp"][order]
            pose_stream = _poses({k: v[order] for k, v in poses.items()})
        sources, missing = {}, {}
        for name in rig.names:
            source = camera_source(path, name)
            if source is None:
                missing[name] = f"{path / 'cameras'}: no video or image folder for camera {name!r}"
            else:
                sources[name] = source
        return cls(path, rig, timestamps, camera_timestamps, world_from_ego, sources, missing, pose_times, pose_stream)

    @property
    def num_frames(self) -> int:
        return len(self.timestamps)

    @property
    def frame_period_s(self) -> float:
        """Median interval between frame reference times (s); 0.05 for a one-frame clip."""
        return float(np.median(np.diff(self.timestamps))) if self.num_frames > 1 else 0.05

    def capture_spread_s(self, cameras: list[str]) -> float:
        """Median over frames of (latest - earliest) capture time of ``cameras`` (s): the rig's rolling timing."""
        if len(cameras) < 2:
            return 0.0
        times = np.stack([self.camera_timestamps[name] for name in cameras])
        return float(np.median(times.max(axis=0) - times.min(axis=0)))

    def pose_at(self, t: float) -> np.ndarray:
        """world_from_ego at time ``t`` (s), interpolated in the pose stream (linear extrapolation outside)."""
        times, poses = self.pose_times, self.pose_stream
        assert times is not None and poses is not None
        if len(times) == 1:
            return poses[0].copy()
        i = int(np.clip(np.searchsorted(times, t) - 1, 0, len(times) - 2))
        alpha = (t - times[i]) / (times[i + 1] - times[i])
        return interpolate_pose(poses[i], poses[i + 1], float(alpha))

    def camera_from_ego(self, frame_index: int, camera: str, capture_time: float | None = None) -> np.ndarray:
        """Ego points at the frame's reference time -> ``camera`` at its capture time (as ``DriveClip``)."""
        t_camera = float(self.camera_timestamps[camera][frame_index] if capture_time is None else capture_time)
        ego_at_camera_from_world = invert_se3(self.pose_at(t_camera))
        return self.rig[camera].camera_from_ego @ ego_at_camera_from_world @ self.world_from_ego[frame_index]
