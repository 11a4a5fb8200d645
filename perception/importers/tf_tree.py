"""A tf tree read from a robot log: static and time-varying ``parent_from_child`` edges, composed along chains.

tf2 semantics: every frame has at most one parent; a transform between two frames is the chain through their
closest common ancestor (``base_link -> camera_link -> camera_optical_frame`` is composed, never assumed to be one
hop). Time-varying edges (``/tf``) are interpolated (slerp + lerp) at the asked time and held constant outside
their samples; static edges (``/tf_static``) hold at all times. Frame names lose a leading ``/`` (ROS 1 style).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perception.errors import InputError
from perception.geometry import interpolate_pose, invert_se3, quat_to_matrix, se3

# REP 103: a camera's optical frame (x right, y down, z forward) expressed in its body frame (x forward, y left, z up)
BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


class TransformError(InputError):
    """No chain of transforms connects two frames; the message names the missing edge and the frames there are."""


def frame_name(name: str) -> str:
    """A tf frame id without the leading slash ROS 1 allowed."""
    return name.lstrip("/")


def transform_from_msg(transform: object) -> np.ndarray:
    """4x4 ``parent_from_child`` from a ``geometry_msgs/Transform`` (translation + quaternion x, y, z, w)."""
    t, q = transform.translation, transform.rotation  # type: ignore[attr-defined]
    return se3(quat_to_matrix(np.array([q.w, q.x, q.y, q.z])), [t.x, t.y, t.z])


def pose_from_msg(pose: object) -> np.ndarray:
    """4x4 from a ``geometry_msgs/Pose`` (position + orientation x, y, z, w)."""
    p, q = pose.position, pose.orientation  # type: ignore[attr-defined]
    return se3(quat_to_matrix(np.array([q.w, q.x, q.y, q.z])), [p.x, p.y, p.z])


@dataclass
class _Edge:
    parent: str
    static: np.ndarray | None = None
    times: list[int] = field(default_factory=list)  # ns
    poses: list[np.ndarray] = field(default_factory=list)

    def at(self, t_ns: int | None) -> np.ndarray:
        if self.static is not None:
            return self.static
        if t_ns is None or len(self.times) == 1:
            return self.poses[0]
        times = self.times
        i = int(np.searchsorted(times, t_ns))
        if i <= 0:
            return self.poses[0]
        if i >= len(times):
            return self.poses[-1]
        alpha = (t_ns - times[i - 1]) / (times[i] - times[i - 1])
        return interpolate_pose(self.poses[i - 1], self.poses[i], float(alpha))


class TfTree:
    """Edges keyed by child frame; ``lookup(target, source, t)`` gives ``target_from_source``."""

    def __init__(self) -> None:
        self.edges: dict[str, _Edge] = {}
        self._sorted = True

    def add(self, parent: str, child: str, parent_from_child: np.ndarray, t_ns: int | None = None) -> None:
        """Add an edge: static when ``t_ns`` is None, else one sample of a time-varying edge."""
        parent, child = frame_name(parent), frame_name(child)
        if not parent or not child or parent == child:
            return
        edge = self.edges.get(child)
        if edge is None or edge.parent != parent:
            edge = self.edges[child] = _Edge(parent)
        if t_ns is None:
            edge.static = np.asarray(parent_from_child, dtype=np.float64)
        else:
            edge.times.append(int(t_ns))
            edge.poses.append(np.asarray(parent_from_child, dtype=np.float64))
            self._sorted = False

    def add_tf_message(self, message: object, static: bool) -> None:
        """Add every ``TransformStamped`` of a ``tf2_msgs/TFMessage`` (stamps from their headers)."""
        for item in message.transforms:  # type: ignore[attr-defined]
            stamp = item.header.stamp
            self.add(
                item.header.frame_id,
                item.child_frame_id,
                transform_from_msg(item.transform),
                None if static else stamp.sec * 1_000_000_000 + stamp.nanosec,
            )

    def _sort(self) -> None:
        if self._sorted:
            return
        for edge in self.edges.values():
            if edge.times:
                order = np.argsort(edge.times, kind="stable")
                edge.times = [edge.times[i] for i in order]
                edge.poses = [edge.poses[i] for i in order]
        self._sorted = True

    @property
    def frames(self) -> list[str]:
        return sorted({*self.edges, *(edge.parent for edge in self.edges.values())})

    def __contains__(self, frame: str) -> bool:
        frame = frame_name(frame)
        return frame in self.edges or any(edge.parent == frame for edge in self.edges.values())

    def _ancestors(self, frame: str) -> list[str]:
        chain, seen = [frame], {frame}
        while chain[-1] in self.edges:
            parent = self.edges[chain[-1]].parent
            if parent in seen:  # a loop is malformed tf; stop rather than spin
                break
            chain.append(parent)
            seen.add(parent)
        return chain

    def path(self, target: str, source: str) -> tuple[list[str], list[str]]:
        """Frames from ``source`` up to the common ancestor, and from ``target`` up to it (each excluding it)."""
        target, source = frame_name(target), frame_name(source)
        up_source, up_target = self._ancestors(source), self._ancestors(target)
        common = next((f for f in up_source if f in set(up_target)), None)
        if common is None:
            raise TransformError(self._missing(target, source, up_target, up_source))
        return up_source[: up_source.index(common)], up_target[: up_target.index(common)]

    def _missing(self, target: str, source: str, up_target: list[str], up_source: list[str]) -> str:
        frames = self.frames
        listed = ", ".join(frames[:40]) + (f", ... {len(frames) - 40} more" if len(frames) > 40 else "")
        if not frames:
            return f"no transform from '{target}' to '{source}': the bag has no tf frames at all"
        if target not in self:
            return f"frame '{target}' is not in the bag's tf tree (frames: {listed})"
        if source not in self:
            return f"frame '{source}' is not in the bag's tf tree (frames: {listed})"
        chain = " -> ".join(reversed(up_source))
        return (
            f"no chain of transforms from '{target}' to '{source}': the chain {chain} ends at '{up_source[-1]}', "
            f"which has no parent in the tree of '{target}' (root '{up_target[-1]}'); missing edge: "
            f"'{target}' -> '{up_source[-1]}' (or from another frame of that tree) (frames: {listed})"
        )

    def lookup(self, target: str, source: str, t_ns: int | None = None) -> np.ndarray:
        """``target_from_source`` (4x4) at time ``t_ns`` (None: static edges, first sample of moving ones)."""
        self._sort()
        up_source, up_target = self.path(target, source)
        common_from_source = np.eye(4)
        for frame in up_source:  # child -> parent, composing on the left
            common_from_source = self.edges[frame].at(t_ns) @ common_from_source
        common_from_target = np.eye(4)
        for frame in up_target:
            common_from_target = self.edges[frame].at(t_ns) @ common_from_target
        return invert_se3(common_from_target) @ common_from_source

    def moving_edges(self, target: str, source: str) -> list[str]:
        """Child frames of the time-varying edges on the chain between two frames."""
        up_source, up_target = self.path(target, source)
        return [f for f in [*up_source, *up_target] if self.edges[f].static is None]

    def sample_times(self, target: str, source: str) -> list[int]:
        """Sorted union of the stamps (ns) of the time-varying edges on the chain (empty when it is all static)."""
        self._sort()
        times: set[int] = set()
        for frame in self.moving_edges(target, source):
            times.update(self.edges[frame].times)
        return sorted(times)


__all__ = [
    "BODY_FROM_OPTICAL",
    "TfTree",
    "TransformError",
    "frame_name",
    "pose_from_msg",
    "transform_from_msg",
]
