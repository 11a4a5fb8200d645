"""Low-poly meshes of actors and roadside objects: convex parts (boxes, frusta) plus flat decals (lights, windows).

A mesh lives in its object frame: x forward, y left, z up, origin on the ground under the box centre (metres).
Faces are rings of vertex indices; with ``subdivision`` > 1 every edge carries extra points so that lens
distortion bends projected edges correctly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Colour = tuple[float, float, float]  # BGR 0..255 before lighting

_BOX_FACES = [(0, 1, 2, 3), (4, 7, 6, 5), (0, 4, 5, 1), (1, 5, 6, 2), (2, 6, 7, 3), (3, 7, 4, 0)]
# corner order: bottom (+x+y, +x-y, -x-y, -x+y), top the same; faces: bottom, top, front, right, back, left


@dataclass
class Mesh:
    """Faces of an object (object frame), grouped into convex parts for depth sorting."""

    vertices: np.ndarray  # (V, 3)
    rings: np.ndarray  # (F, R) per face: vertex indices in order around the face (every face is a quad)
    normal: np.ndarray  # (F, 3) outward unit normals
    anchor: np.ndarray  # (F, 3) a point on each face
    colour: np.ndarray  # (F, 3) BGR 0..255
    emissive: np.ndarray  # (F,) bool: lights keep their colour at night
    part: np.ndarray  # (F,) part index
    part_min: np.ndarray  # (P, 3) part bounds (object frame)
    part_max: np.ndarray  # (P, 3)
    part_flat: np.ndarray  # (P,) bool: ground decals (shadows), drawn before everything and not in the id buffer


class MeshBuilder:
    """Collects parts and decals, then ``build(subdivision)`` produces a ``Mesh``."""

    def __init__(self) -> None:
        self._faces: list[tuple[np.ndarray, Colour, bool, int]] = []
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []
        self._flat: list[bool] = []

    def box(
        self,
        center_xy: tuple[float, float],
        z0: float,
        size: tuple[float, float, float],
        colour: Colour,
        top: Colour | None = None,
        sides: Colour | None = None,
    ) -> int:
        """Add an axis-aligned box part (length along x, width along y, height) standing at height ``z0``."""
        l, w, h = size
        cx, cy = center_xy
        signs = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=np.float64)
        bottom = np.column_stack([cx + signs[:, 0] * l / 2, cy + signs[:, 1] * w / 2, np.full(4, z0)])
        corners = np.concatenate([bottom, bottom + [0, 0, h]])
        part = self._new_part(corners)
        colours = [colour, top or colour, colour, sides or colour, colour, sides or colour]
        for ring, face_colour in zip(_BOX_FACES, colours):
            self._faces.append((corners[list(ring)], face_colour, False, part))
        return part

    def frustum(
        self, center_xy: tuple[float, float], z0: float, base: float, top: float, height: float, colour: Colour
    ) -> int:
        """Add a square frustum (a cone's stand-in): base/top side lengths (m), height (m)."""
        cx, cy = center_xy
        signs = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=np.float64)
        bottom = np.column_stack([cx + signs[:, 0] * base / 2, cy + signs[:, 1] * base / 2, np.full(4, z0)])
        upper = np.column_stack([cx + signs[:, 0] * top / 2, cy + signs[:, 1] * top / 2, np.full(4, z0 + height)])
        corners = np.concatenate([bottom, upper])
        part = self._new_part(corners)
        for ring in _BOX_FACES:
            self._faces.append((corners[list(ring)], colour, False, part))
        return part

    def decal(self, part: int, corners: np.ndarray, colour: Colour, emissive: bool = False) -> None:
        """Add a flat quad drawn on top of ``part`` (corners (4,3) just outside the part's surface)."""
        self._faces.append((np.asarray(corners, dtype=np.float64), colour, emissive, part))

    def shadow(self, length: float, width: float, colour: Colour = (28.0, 28.0, 30.0)) -> None:
        """Add a dark contact-shadow quad on the ground under the object (drawn before every solid part)."""
        corners = np.array(
            [
                [length / 2, width / 2, 0.02],
                [-length / 2, width / 2, 0.02],
                [-length / 2, -width / 2, 0.02],
                [length / 2, -width / 2, 0.02],
            ]
        )
        part = self._new_part(corners, flat=True)
        self._faces.append((corners, colour, False, part))

    def _new_part(self, corners: np.ndarray, flat: bool = False) -> int:
        self._parts.append((corners.min(0), corners.max(0)))
        self._flat.append(flat)
        return len(self._parts) - 1

    def build(self, subdivision: int = 1) -> Mesh:
        vertices, rings, normals, anchors, colours, emissive, parts = [], [], [], [], [], [], []
        count = 0
        part_centre = np.array([(lo + hi) / 2 for lo, hi in self._parts])
        for corners, colour, is_emissive, part in self._faces:
            n = len(corners)
            steps = np.arange(subdivision) / subdivision
            edges = corners[:, None, :] + (np.roll(corners, -1, axis=0) - corners)[:, None, :] * steps[None, :, None]
            ring_points = edges.reshape(-1, 3)
            normal = np.zeros(3)
            for i in range(n):  # Newell's method
                a, b = corners[i], corners[(i + 1) % n]
                normal += [(a[1] - b[1]) * (a[2] + b[2]), (a[2] - b[2]) * (a[0] + b[0]), (a[0] - b[0]) * (a[1] + b[1])]
            normal /= max(np.linalg.norm(normal), 1e-12)
            anchor = corners.mean(0)
            if self._flat[part]:
                normal = np.array([0.0, 0.0, 1.0])
            elif np.dot(normal, anchor - part_centre[part]) < 0:
                normal = -normal
            vertices.append(ring_points)
            if n != 4:
                raise ValueError(f"MeshBuilder: faces must be quads, found {n} corners")
            rings.append(np.arange(count, count + len(ring_points)))
            count += len(ring_points)
            normals.append(normal)
            anchors.append(anchor)
            colours.append(colour)
            emissive.append(is_emissive)
            parts.append(part)
        return Mesh(
            vertices=np.concatenate(vertices),
            rings=np.array(rings, dtype=np.int64),
            normal=np.array(normals),
            anchor=np.array(anchors),
            colour=np.array(colours, dtype=np.float64),
            emissive=np.array(emissive, dtype=bool),
            part=np.array(parts, dtype=np.int64),
            part_min=np.array([lo for lo, _ in self._parts]),
            part_max=np.array([hi for _, hi in self._parts]),
            part_flat=np.array(self._flat, dtype=bool),
        )


def _jitter(rng: np.random.Generator, colour: Colour, amount: float = 12.0) -> Colour:
    return tuple(float(np.clip(c + rng.normal(0, amount), 0, 255)) for c in colour)  # type: ignore[return-value]


CAR_PAINTS: list[Colour] = [
    (235, 235, 235),
    (30, 30, 30),
    (170, 170, 165),
    (110, 110, 110),
    (40, 40, 170),
    (140, 70, 30),
    (50, 80, 40),
    (150, 190, 200),
    (40, 160, 215),
    (90, 40, 100),
    (20, 40, 90),
]
GLASS: Colour = (55, 45, 40)
TYRE: Colour = (25, 25, 25)
HEADLIGHT: Colour = (220, 240, 250)
TAILLIGHT: Colour = (30, 30, 200)


def _lights(builder: MeshBuilder, part: int, l: float, w: float, z0: float, z1: float) -> None:
    for side in (1, -1):
        y0, y1 = side * (w / 2 - 0.08), side * (w / 2 - 0.38)
        x = l / 2 + 0.01
        builder.decal(part, np.array([[x, y0, z0], [x, y1, z0], [x, y1, z1], [x, y0, z1]]), HEADLIGHT, True)
        builder.decal(part, np.array([[-x, y0, z0], [-x, y1, z0], [-x, y1, z1], [-x, y0, z1]]), TAILLIGHT, True)


def car_mesh(rng: np.random.Generator, size: np.ndarray) -> MeshBuilder:
    """Car: dark chassis (wheels), painted body with lights, glass cabin with a painted roof."""
    l, w, h = size
    paint = _jitter(rng, CAR_PAINTS[rng.integers(len(CAR_PAINTS))])
    b = MeshBuilder()
    b.shadow(l + 0.3, w + 0.3)
    b.box((0, 0), 0.0, (l * 0.86, w * 0.94, 0.42), TYRE)
    body_top = 0.36 + (h - 0.36) * 0.48
    body = b.box((0, 0), 0.36, (l, w, body_top - 0.36), paint)
    _lights(b, body, l, w, body_top - 0.22, body_top - 0.08)
    cabin_l = l * float(rng.uniform(0.45, 0.6))
    b.box((-l * 0.06, 0), body_top, (cabin_l, w * 0.86, h - body_top), GLASS, top=paint)
    return b


def truck_mesh(rng: np.random.Generator, size: np.ndarray) -> MeshBuilder:
    """Truck: chassis, cab with windscreen, cargo box."""
    l, w, h = size
    cab_l = 2.2
    paint = _jitter(rng, CAR_PAINTS[rng.integers(len(CAR_PAINTS))])
    cargo = _jitter(rng, [(225, 225, 225), (160, 160, 160), (60, 110, 170), (40, 120, 60)][rng.integers(4)])
    b = MeshBuilder()
    b.shadow(l + 0.3, w + 0.3)
    b.box((0, 0), 0.0, (l * 0.92, w * 0.92, 0.6), TYRE)
    cab = b.box((l / 2 - cab_l / 2, 0), 0.5, (cab_l, w, h * 0.78 - 0.5), paint)
    x = l / 2 + 0.01
    zc = h * 0.78
    b.decal(
        cab,
        np.array(
            [
                [x, w / 2 - 0.1, zc - 0.9],
                [x, -w / 2 + 0.1, zc - 0.9],
                [x, -w / 2 + 0.1, zc - 0.15],
                [x, w / 2 - 0.1, zc - 0.15],
            ]
        ),
        GLASS,
    )
    _lights(b, cab, l, w, 0.7, 0.9)
    b.box((-cab_l / 2 - 0.1, 0), 0.6, (l - cab_l - 0.2, w, h - 0.6), cargo)
    return b


def bus_mesh(rng: np.random.Generator, size: np.ndarray) -> MeshBuilder:
    """Bus: chassis, one long body with a window band on both sides and the front."""
    l, w, h = size
    paint = _jitter(
        rng, [(40, 140, 230), (200, 200, 200), (40, 40, 180), (150, 90, 30), (60, 150, 60)][rng.integers(5)]
    )
    b = MeshBuilder()
    b.shadow(l + 0.3, w + 0.3)
    b.box((0, 0), 0.0, (l * 0.9, w * 0.94, 0.45), TYRE)
    body = b.box((0, 0), 0.35, (l, w, h - 0.35), paint)
    z0, z1 = h * 0.5, h * 0.85
    for side in (1, -1):
        y = side * (w / 2 + 0.01)
        b.decal(
            body,
            np.array([[l / 2 - 0.3, y, z0], [-l / 2 + 0.5, y, z0], [-l / 2 + 0.5, y, z1], [l / 2 - 0.3, y, z1]]),
            GLASS,
        )
    x = l / 2 + 0.01
    b.decal(
        body,
        np.array(
            [[x, w / 2 - 0.1, z0 - 0.3], [x, -w / 2 + 0.1, z0 - 0.3], [x, -w / 2 + 0.1, z1], [x, w / 2 - 0.1, z1]]
        ),
        GLASS,
    )
    _lights(b, body, l, w, 0.6, 0.85)
    return b


SKIN: list[Colour] = [(150, 180, 220), (110, 140, 190), (70, 100, 140), (50, 70, 100)]
CLOTHES: list[Colour] = [
    (40, 40, 40),
    (180, 60, 30),
    (60, 60, 170),
    (200, 200, 200),
    (40, 130, 40),
    (30, 150, 200),
    (120, 120, 120),
    (90, 50, 110),
    (150, 110, 70),
]


def pedestrian_mesh(rng: np.random.Generator, size: np.ndarray) -> MeshBuilder:
    """Pedestrian: legs, torso, head (slimmer than the labelled box, which includes the arm swing)."""
    l, w, h = size
    b = MeshBuilder()
    b.shadow(0.6, 0.6)
    legs = _jitter(rng, [(60, 40, 30), (40, 40, 40), (110, 130, 150), (90, 70, 50)][rng.integers(4)])
    b.box((0, 0), 0.0, (l * 0.45, w * 0.55, h * 0.47), legs)
    b.box((0, 0), h * 0.47, (l * 0.5, w * 0.75, h * 0.37), _jitter(rng, CLOTHES[rng.integers(len(CLOTHES))]))
    head = min(0.24, h * 0.15)
    b.box((0, 0), h - head, (head * 0.9, head * 0.85, head), _jitter(rng, SKIN[rng.integers(len(SKIN))], 6))
    return b


def cyclist_mesh(rng: np.random.Generator, size: np.ndarray) -> MeshBuilder:
    """Cyclist: a thin bicycle and a rider leaning forward."""
    l, w, h = size
    b = MeshBuilder()
    b.shadow(l, 0.5)
    bike = _jitter(rng, [(30, 30, 30), (40, 40, 160), (150, 90, 30), (180, 180, 180)][rng.integers(4)])
    b.box((0, 0), 0.0, (l, 0.12, 0.95), bike)
    b.box(
        (-l * 0.08, 0), 0.75, (l * 0.35, w * 0.55, h * 0.3), _jitter(rng, [(60, 40, 30), (40, 40, 40)][rng.integers(2)])
    )
    b.box(
        (-l * 0.05, 0),
        0.75 + h * 0.3 - 0.05,
        (l * 0.3, w * 0.7, h - 0.75 - h * 0.3 - 0.2),
        _jitter(rng, CLOTHES[rng.integers(len(CLOTHES))]),
    )
    b.box(
        (l * 0.02, 0),
        h - 0.25,
        (0.25, 0.22, 0.25),
        _jitter(rng, [(40, 40, 40), (30, 30, 200), (220, 220, 220)][rng.integers(3)]),
    )
    return b


def cone_mesh(rng: np.random.Generator, size: np.ndarray) -> MeshBuilder:
    """Traffic cone: a dark base plate and an orange frustum with a white band."""
    l, w, h = size
    b = MeshBuilder()
    b.box((0, 0), 0.0, (l, w, 0.04), (30, 30, 30))
    body = b.frustum((0, 0), 0.04, w * 0.7, w * 0.12, h - 0.04, _jitter(rng, (20, 110, 245), 8))
    del body
    return b


def building_mesh(rng: np.random.Generator, size: np.ndarray) -> MeshBuilder:
    """Building: a box facade with a darker roof and a band of windows on the street side (+y)."""
    l, w, h = size
    wall = _jitter(
        rng, [(170, 190, 210), (120, 130, 150), (90, 110, 160), (200, 200, 200), (110, 110, 100)][rng.integers(5)], 20
    )
    b = MeshBuilder()
    part = b.box((0, 0), 0.0, (l, w, h), wall, top=(80, 80, 85))
    y = w / 2 + 0.02
    for z0 in np.arange(1.2, h - 1.0, 3.2):
        b.decal(
            part,
            np.array(
                [[l / 2 - 0.8, y, z0], [-l / 2 + 0.8, y, z0], [-l / 2 + 0.8, y, z0 + 1.4], [l / 2 - 0.8, y, z0 + 1.4]]
            ),
            (95, 80, 70),
        )
    return b


def pole_mesh(rng: np.random.Generator, height: float) -> MeshBuilder:
    """Street-lamp pole."""
    b = MeshBuilder()
    b.box((0, 0), 0.0, (0.18, 0.18, height), _jitter(rng, (120, 120, 120), 10))
    return b


def tree_mesh(rng: np.random.Generator, height: float) -> MeshBuilder:
    """Tree: trunk and a box canopy."""
    b = MeshBuilder()
    b.box((0, 0), 0.0, (0.35, 0.35, height * 0.45), (40, 60, 80))
    c = float(rng.uniform(2.0, 3.5))
    b.box((0, 0), height * 0.4, (c, c, height * 0.6), _jitter(rng, (50, 120, 60), 15))
    return b


ACTOR_MESHES = {
    "car": car_mesh,
    "truck": truck_mesh,
    "bus": bus_mesh,
    "pedestrian": pedestrian_mesh,
    "cyclist": cyclist_mesh,
    "traffic_cone": cone_mesh,
}

SIZE_RANGES = {  # (length, width, height) low/high, metres
    "car": ((3.9, 1.7, 1.4), (4.9, 2.0, 1.75)),
    "truck": ((6.0, 2.3, 2.8), (9.0, 2.55, 3.6)),
    "bus": ((10.0, 2.5, 3.0), (12.5, 2.6, 3.4)),
    "pedestrian": ((0.5, 0.55, 1.5), (0.75, 0.75, 1.95)),
    "cyclist": ((1.6, 0.6, 1.6), (1.9, 0.8, 1.9)),
    "traffic_cone": ((0.35, 0.35, 0.5), (0.45, 0.45, 0.8)),
}


def sample_size(rng: np.random.Generator, class_name: str) -> np.ndarray:
    """Random (length, width, height) of a class, metres."""
    low, high = SIZE_RANGES[class_name]
    size = rng.uniform(low, high)
    if class_name == "traffic_cone":
        size[1] = size[0]
    return size
