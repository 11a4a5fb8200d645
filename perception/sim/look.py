"""Per-clip appearance: sun, exposure, colour tint, sky, fog and sensor effects (noise, blur)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Look:
    """Lighting and weather of one clip; colours BGR 0..255, distances in metres."""

    sun: np.ndarray  # (3,) unit vector towards the sun, world frame
    ambient: float  # light on faces turned away from the sun
    diffuse: float  # extra Lambert light for faces facing the sun
    exposure: float  # overall gain
    tint: np.ndarray  # (3,) BGR multipliers (warm at dusk)
    sky_zenith: np.ndarray  # (3,)
    sky_horizon: np.ndarray  # (3,) also the fog / haze colour
    fog_distance: float  # metres: fog weight = 1 - exp(-distance / fog_distance)
    noise_sigma: float  # sensor noise, grey levels
    blur_sigma: float  # optics blur, pixels (0 = none)
    lights_on: bool  # vehicle lights glow (dusk / night)
    condition: str  # "day" | "overcast" | "dusk" | "night" | "fog"


def sample_look(rng: np.random.Generator) -> Look:
    """Random lighting and weather; dusk, night and fog stay mild enough that actors remain visible."""
    condition = str(rng.choice(["day", "overcast", "dusk", "night", "fog"], p=[0.45, 0.2, 0.15, 0.08, 0.12]))
    azimuth = float(rng.uniform(-np.pi, np.pi))
    elevation = {
        "day": rng.uniform(0.5, 1.3),
        "overcast": rng.uniform(0.6, 1.3),
        "dusk": rng.uniform(0.05, 0.25),
        "night": rng.uniform(0.3, 1.0),
        "fog": rng.uniform(0.4, 1.2),
    }[condition]
    sun = np.array([np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation), np.sin(elevation)])
    if condition == "day":
        ambient, diffuse, exposure = rng.uniform(0.45, 0.6), rng.uniform(0.4, 0.6), rng.uniform(0.9, 1.1)
        tint, zenith, horizon = np.ones(3), np.array([200, 140, 80]), np.array([235, 215, 190])
        fog = rng.uniform(250, 600)
    elif condition == "overcast":
        ambient, diffuse, exposure = rng.uniform(0.7, 0.85), rng.uniform(0.1, 0.2), rng.uniform(0.85, 1.0)
        tint, zenith, horizon = np.array([1.02, 1.0, 0.98]), np.array([170, 165, 160]), np.array([205, 205, 200])
        fog = rng.uniform(150, 300)
    elif condition == "dusk":
        ambient, diffuse, exposure = rng.uniform(0.5, 0.65), rng.uniform(0.3, 0.5), rng.uniform(0.6, 0.8)
        tint, zenith, horizon = np.array([0.8, 0.92, 1.15]), np.array([140, 90, 90]), np.array([130, 170, 240])
        fog = rng.uniform(200, 400)
    elif condition == "night":
        ambient, diffuse, exposure = rng.uniform(0.6, 0.75), rng.uniform(0.05, 0.15), rng.uniform(0.45, 0.6)
        tint, zenith, horizon = np.array([1.1, 1.0, 0.95]), np.array([60, 35, 25]), np.array([90, 80, 80])
        fog = rng.uniform(120, 250)
    else:
        ambient, diffuse, exposure = rng.uniform(0.7, 0.85), rng.uniform(0.1, 0.2), rng.uniform(0.85, 1.0)
        tint, zenith, horizon = np.ones(3), np.array([200, 200, 200]), np.array([215, 215, 212])
        fog = rng.uniform(45, 90)
    jitter = rng.uniform(0.93, 1.07, size=3)
    return Look(
        sun=sun,
        ambient=float(ambient),
        diffuse=float(diffuse),
        exposure=float(exposure),
        tint=np.asarray(tint, dtype=np.float64) * jitter,
        sky_zenith=np.asarray(zenith, dtype=np.float64) * float(exposure),
        sky_horizon=np.asarray(horizon, dtype=np.float64) * float(exposure),
        fog_distance=float(fog),
        noise_sigma=float(rng.uniform(1.0, 4.0) if condition != "night" else rng.uniform(3.0, 6.0)),
        blur_sigma=float(rng.choice([0.0, rng.uniform(0.5, 1.1)], p=[0.5, 0.5])),
        lights_on=condition in ("dusk", "night"),
        condition=condition,
    )
