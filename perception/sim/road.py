"""Procedural road: a centreline of straight and curved segments, lanes, markings, kerbs and sidewalks.

Road coordinates are Frenet-like: ``s`` metres along the centreline, ``d`` metres to its left. The centreline
separates the two directions of travel; forward lanes (``direction=+1``, travel towards +s) lie at d < 0
(right-hand traffic), oncoming lanes at d > 0. World frame: x, y on the ground plane (z = 0), metres.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

SAMPLE_SPACING = 0.5  # metres between centreline samples


@dataclass(frozen=True)
class Lane:
    """One travel lane: lateral centre ``d`` (metres, + left), ``width`` (m), ``direction`` +1 along s or -1."""

    d: float
    width: float
    direction: int


@dataclass(frozen=True)
class Marking:
    """A painted line parallel to the centreline at lateral offset ``d`` (m)."""

    d: float
    style: str  # "solid" | "dashed" | "double"
    colour: tuple[int, int, int]  # BGR before lighting
    width: float = 0.15


@dataclass
class Road:
    """A sampled centreline plus its cross-section (lanes, shoulders, kerbs, sidewalks), world frame metres."""

    s: np.ndarray  # (N,) arclength samples
    xy: np.ndarray  # (N, 2) centreline points
    heading: np.ndarray  # (N,) unwrapped heading (rad)
    lanes: list[Lane]
    right_edge: float  # d of the right road edge (kerb face), < 0
    left_edge: float  # d of the left road edge, > 0
    right_shoulder: float  # width of the parking shoulder inside the right edge (0 = none)
    left_shoulder: float
    sidewalk_width: float
    kerb_width: float
    markings: list[Marking] = field(default_factory=list)

    def pose(self, s: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World (x, y, road heading) of Frenet points (s, d); arrays broadcast."""
        s = np.asarray(s, dtype=np.float64)
        d = np.asarray(d, dtype=np.float64)
        heading = np.interp(s, self.s, self.heading)
        x = np.interp(s, self.s, self.xy[:, 0]) - np.sin(heading) * d
        y = np.interp(s, self.s, self.xy[:, 1]) + np.cos(heading) * d
        return x, y, heading

    def polyline(self, d: float, s0: float, s1: float, step: float = 1.0) -> np.ndarray:
        """World points (M, 2) of the parallel curve at offset ``d`` between s0 and s1."""
        s = np.arange(s0, s1 + 1e-9, step)
        x, y, _ = self.pose(s, np.full_like(s, d))
        return np.stack([x, y], -1)

    def band(self, d0: float, d1: float, s0: float, s1: float, step: float = 1.0) -> np.ndarray:
        """World polygon (M, 2) of the strip between offsets d0 and d1 over [s0, s1]."""
        return np.concatenate([self.polyline(d0, s0, s1, step), self.polyline(d1, s0, s1, step)[::-1]])

    @property
    def sidewalk_right(self) -> tuple[float, float]:
        """(inner, outer) d of the right sidewalk (beyond the kerb)."""
        inner = self.right_edge - self.kerb_width
        return inner, inner - self.sidewalk_width

    @property
    def sidewalk_left(self) -> tuple[float, float]:
        inner = self.left_edge + self.kerb_width
        return inner, inner + self.sidewalk_width

    def lanes_in_direction(self, direction: int) -> list[Lane]:
        return [lane for lane in self.lanes if lane.direction == direction]


def sample_road(rng: np.random.Generator, *, s_min: float, s_max: float) -> Road:
    """Random road over [s_min, s_max]: 2-4 lanes, straights and arcs (radius 80-400 m), markings, sidewalks."""
    segments_s, curvature = [s_min], []
    while segments_s[-1] < s_max:
        length = float(rng.uniform(40.0, 140.0))
        if rng.random() < 0.45:
            curvature.append(0.0)
        else:
            curvature.append(float(rng.choice([-1.0, 1.0]) / rng.uniform(80.0, 400.0)))
        segments_s.append(segments_s[-1] + length)
    s = np.arange(s_min, s_max + SAMPLE_SPACING, SAMPLE_SPACING)
    kappa = np.zeros_like(s)
    for k, (a, b) in enumerate(itertools.pairwise(segments_s)):
        kappa[(s >= a) & (s < b)] = curvature[k]
    kappa = np.convolve(kappa, np.ones(21) / 21, mode="same")  # ~10 m clothoid-like transitions
    heading = float(rng.uniform(-np.pi, np.pi)) + np.concatenate([[0.0], np.cumsum(kappa[:-1] * SAMPLE_SPACING)])
    heading -= np.interp(0.0, s, heading) - heading[0]  # keep the random heading at s = 0
    steps = np.stack([np.cos(heading), np.sin(heading)], -1) * SAMPLE_SPACING
    xy = np.concatenate([[[0.0, 0.0]], np.cumsum(steps[:-1], axis=0)])
    xy -= np.array([np.interp(0.0, s, xy[:, 0]), np.interp(0.0, s, xy[:, 1])])

    n_lanes = int(rng.choice([2, 3, 4], p=[0.4, 0.3, 0.3]))
    one_way = n_lanes >= 3 and rng.random() < 0.2
    n_forward = n_lanes if one_way else (n_lanes + 1) // 2 if n_lanes != 3 else int(rng.choice([1, 2]))
    n_back = n_lanes - n_forward
    width = float(rng.uniform(3.0, 3.7))
    lanes = [Lane(-(i + 0.5) * width, width, +1) for i in range(n_forward)]
    lanes += [Lane((i + 0.5) * width, width, -1) for i in range(n_back)]
    if one_way:  # centre the one-way carriageway on the centreline
        shift = n_forward * width / 2
        lanes = [Lane(lane.d + shift, lane.width, lane.direction) for lane in lanes]
    right_lanes_edge = min(lane.d for lane in lanes) - width / 2
    left_lanes_edge = max(lane.d for lane in lanes) + width / 2
    right_shoulder = float(rng.uniform(2.2, 2.8)) if rng.random() < 0.65 else 0.0
    left_shoulder = float(rng.uniform(2.2, 2.8)) if (n_back > 0 and rng.random() < 0.35) else 0.0
    white = (235, 235, 235)
    yellow = (40, 200, 235)
    markings = []
    boundaries = sorted(
        {round(lane.d - lane.width / 2, 6) for lane in lanes} | {round(lane.d + lane.width / 2, 6) for lane in lanes}
    )
    for d in boundaries[1:-1]:
        right_dir = [lane.direction for lane in lanes if abs(lane.d + lane.width / 2 - d) < 1e-3]
        left_dir = [lane.direction for lane in lanes if abs(lane.d - lane.width / 2 - d) < 1e-3]
        if right_dir and left_dir and right_dir[0] != left_dir[0]:
            markings.append(
                Marking(d, "double" if rng.random() < 0.6 else "solid", yellow if rng.random() < 0.5 else white)
            )
        else:
            markings.append(Marking(d, "dashed", white))
    markings.append(Marking(right_lanes_edge, "solid", white))
    markings.append(Marking(left_lanes_edge, "solid", white))
    return Road(
        s=s,
        xy=xy,
        heading=heading,
        lanes=lanes,
        right_edge=right_lanes_edge - right_shoulder,
        left_edge=left_lanes_edge + left_shoulder,
        right_shoulder=right_shoulder,
        left_shoulder=left_shoulder,
        sidewalk_width=float(rng.uniform(2.0, 4.0)),
        kerb_width=0.3,
        markings=markings,
    )
