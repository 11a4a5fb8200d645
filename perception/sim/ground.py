"""World-frame ground texture: terrain, sidewalks, kerbs, asphalt with patches, lane markings; lit and noisy."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from perception.sim.look import Look
from perception.sim.road import Road

_SHIFT = 3  # fixed-point bits for sub-texel drawing


@dataclass
class GroundTexture:
    """A BGR raster over a rectangle of the ground, axis-aligned with the road at its middle (tight for straights).

    texel (u, v) = ((R(-angle) @ (x, y) - (u0, v0)) / resolution, with world (x, y) in metres.
    """

    image: np.ndarray  # (H, W, 3) uint8
    angle: float  # radians: the raster's u axis direction in the world
    u0: float  # metres, in the rotated frame
    v0: float
    resolution: float  # metres per texel
    border: tuple[float, float, float]  # colour outside the raster

    def texel_from_world(self) -> np.ndarray:
        """(3, 3) affine map from world (x, y, 1) to texel (u, v, 1)."""
        c, s, r = np.cos(self.angle), np.sin(self.angle), self.resolution
        return np.array([[c / r, s / r, -self.u0 / r], [-s / r, c / r, -self.v0 / r], [0, 0, 1.0]])


def _noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    """Smooth noise (H, W) float32 in about [-1, 1] with features ~``cell`` texels."""
    small = rng.standard_normal((shape[0] // cell + 2, shape[1] // cell + 2)).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def build_ground_texture(
    road: Road,
    look: Look,
    rng: np.random.Generator,
    *,
    s_min: float,
    s_max: float,
    margin: float = 30.0,
    resolution: float = 0.1,
) -> GroundTexture:
    """Paint the ground between road positions ``s_min`` and ``s_max`` (metres), ``margin`` beyond the sidewalks."""
    d_out_right = road.sidewalk_right[1] - margin
    d_out_left = road.sidewalk_left[1] + margin
    corners = np.concatenate([road.polyline(d, s_min, s_max, 2.0) for d in (d_out_right, 0.0, d_out_left)])
    angle = float(np.interp((s_min + s_max) / 2, road.s, road.heading))
    c, s = np.cos(angle), np.sin(angle)
    rotated = corners @ np.array([[c, -s], [s, c]])  # world -> road-aligned frame
    u0, v0 = rotated.min(0)
    u1, v1 = rotated.max(0)
    width, height = int(np.ceil((u1 - u0) / resolution)) + 1, int(np.ceil((v1 - v0) / resolution)) + 1
    texel_from_world = GroundTexture(
        np.zeros((1, 1, 3), np.uint8), angle, float(u0), float(v0), resolution, (0.0, 0.0, 0.0)
    ).texel_from_world()
    terrain = np.array(
        [(70, 120, 80), (95, 140, 150), (140, 145, 150), (60, 100, 110)][rng.integers(4)], dtype=np.float64
    )
    terrain = terrain * rng.uniform(0.85, 1.15)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = terrain.astype(np.uint8)

    def to_texel(points: np.ndarray) -> np.ndarray:
        texels = points @ texel_from_world[:2, :2].T + texel_from_world[:2, 2]
        return np.round(texels * (1 << _SHIFT)).astype(np.int32)

    def band(d0: float, d1: float, colour) -> None:
        cv2.fillPoly(image, [to_texel(road.band(d0, d1, s_min, s_max, 1.0))], colour, cv2.LINE_8, _SHIFT)

    sidewalk = tuple(float(c) for c in np.array([175, 180, 185]) * rng.uniform(0.8, 1.1))
    kerb = (205.0, 205.0, 205.0)
    asphalt_level = float(rng.uniform(65, 100))
    asphalt = (asphalt_level, asphalt_level * 1.01, asphalt_level * 1.03)
    band(road.sidewalk_right[0], road.sidewalk_right[1], sidewalk)
    band(road.sidewalk_left[0], road.sidewalk_left[1], sidewalk)
    band(road.right_edge - road.kerb_width, road.right_edge, kerb)
    band(road.left_edge, road.left_edge + road.kerb_width, kerb)
    band(road.right_edge, road.left_edge, asphalt)

    seams = []  # sidewalk slab joints every ~2 m
    for inner, outer in (road.sidewalk_right, road.sidewalk_left):
        s = np.arange(s_min, s_max, 2.0)
        xa, ya, _ = road.pose(s, np.full_like(s, inner))
        xb, yb, _ = road.pose(s, np.full_like(s, outer))
        seams += [to_texel(np.array([[a, b], [c, e]])) for a, b, c, e in zip(xa, ya, xb, yb)]
    cv2.polylines(image, seams, False, tuple(c * 0.8 for c in sidewalk), 1, cv2.LINE_8, _SHIFT)

    for _ in range(int((s_max - s_min) / 6)):  # asphalt patches and repairs
        s = float(rng.uniform(s_min, s_max))
        d = float(rng.uniform(road.right_edge + 0.5, road.left_edge - 0.5))
        x, y, heading = road.pose(np.array([s]), np.array([d]))
        axes = (int(rng.uniform(0.5, 3.0) / resolution), int(rng.uniform(0.3, 1.5) / resolution))
        level = asphalt_level * float(rng.uniform(0.75, 1.2))
        centre = tuple(int(v) for v in to_texel(np.array([[x[0], y[0]]]))[0] >> _SHIFT)
        cv2.ellipse(image, centre, axes, float(np.degrees(heading[0] - angle)), 0, 360, (level, level, level), -1)

    for marking in road.markings:
        thickness = max(1, int(round(marking.width / resolution)))
        offsets = [marking.d - 0.12, marking.d + 0.12] if marking.style == "double" else [marking.d]
        for d in offsets:
            if marking.style == "dashed":
                dash, gap = 3.0, 6.0
                starts = np.arange(np.floor(s_min / (dash + gap)) * (dash + gap), s_max, dash + gap)
                lines = [to_texel(road.polyline(d, a, a + dash, 0.5)) for a in starts]
            else:
                lines = [to_texel(road.polyline(d, s_min, s_max, 0.5))]
            cv2.polylines(image, lines, False, marking.colour, thickness, cv2.LINE_AA, _SHIFT)

    light = (look.ambient + look.diffuse * max(look.sun[2], 0.0)) * look.exposure
    gain = light * look.tint
    tile = rng.normal(0.0, 6.0 * light, size=(256, 256)).astype(np.float32)  # fine grain, tiled every 25.6 m
    grain = np.tile(tile, (height // 256 + 1, width // 256 + 1))[:height, :width]
    grain += _noise(rng, (height, width), 40) * (10.0 * light)  # large blotches
    lit = cv2.transform(image, np.diag(gain).astype(np.float32))
    lit = cv2.GaussianBlur(lit, (3, 3), 0.6)
    lit = lit.astype(np.int16) + grain.astype(np.int16)[..., None]
    border = tuple(float(c) for c in terrain * gain)
    return GroundTexture(np.clip(lit, 0, 255).astype(np.uint8), angle, float(u0), float(v0), resolution, border)
