"""Unlabelled roadside scenery: buildings, street-lamp poles and trees beyond the sidewalks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.sim.meshes import MeshBuilder, building_mesh, pole_mesh, tree_mesh
from perception.sim.road import Road


@dataclass
class Scenery:
    """Static meshes (unbuilt, so each camera model gets its edge subdivision) with world poses (x, y, yaw)."""

    builders: list[MeshBuilder]
    xy: np.ndarray  # (N, 2)
    yaw: np.ndarray  # (N,)


def sample_scenery(rng: np.random.Generator, road: Road, *, s_min: float, s_max: float) -> Scenery:
    """Buildings (set back 1-8 m from the sidewalk), poles every 25-40 m and occasional trees on both sides."""
    builders, xy, yaw = [], [], []

    def place(builder, s: float, d: float, yaw_offset: float) -> None:
        x, y, heading = road.pose(np.array([s]), np.array([d]))
        builders.append(builder)
        xy.append([x[0], y[0]])
        yaw.append(heading[0] + yaw_offset)

    streams = [np.random.default_rng(int(seed)) for seed in rng.integers(2**62, size=4)]
    for k, side in enumerate((+1, -1)):  # +1 = left of the road; own random streams keep sides independent
        rng = streams[2 * k]
        outer = road.sidewalk_left[1] if side > 0 else road.sidewalk_right[1]
        density = float(rng.uniform(0.3, 0.9))
        s = s_min + float(rng.uniform(0, 10))
        while s < s_max:
            length = float(rng.uniform(8.0, 25.0))
            if rng.random() < density:
                depth = float(rng.uniform(8.0, 18.0))
                setback = float(rng.uniform(1.0, 8.0))
                height = float(rng.uniform(4.0, 18.0))
                # building_mesh puts its windows on +y: face the street by turning it for the left side
                place(
                    building_mesh(rng, np.array([length, depth, height])),
                    s + length / 2,
                    outer + side * (setback + depth / 2),
                    0.0 if side < 0 else np.pi,
                )
            elif rng.random() < 0.5:
                place(tree_mesh(rng, float(rng.uniform(4.0, 8.0))), s + length / 2, outer + side * 2.0, 0.0)
            s += length + float(rng.uniform(2.0, 12.0))
        rng = streams[2 * k + 1]
        s = s_min + float(rng.uniform(0, 20))
        while s < s_max:
            place(pole_mesh(rng, float(rng.uniform(5.0, 8.0))), s, outer - side * 0.3, 0.0)
            s += float(rng.uniform(25.0, 40.0))
    return Scenery(builders, np.array(xy).reshape(-1, 2), np.array(yaw))
