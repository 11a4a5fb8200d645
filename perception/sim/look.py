"""Per-clip appearance: sun, exposure, colour tint, sky, fog and sensor effects (noise, blur), and forced weather.

``with_weather(look, weather, severity, rng)`` turns a sampled look into one of the robustness test conditions,
rendered with depth (``perception.sim.render``; ``perception synth --weather``), the 3D counterparts of the 2D
filters in ``perception.corruptions``:
- ``fog``: grey sky and haze with visibility (contrast 5 %, 3 x ``fog_distance``) 180 / 90 / 45 m for severity
  1 / 2 / 3; ground and objects fade with their distance from the camera.
- ``low_light``: night without street light: exposure 0.30 / 0.20 / 0.12, sensor noise 6 / 9 / 13 grey levels, and the
  ego's headlights (a 28-degree forward cone from the front bumper; at 10 m about daylight, falling with the square
  of the distance) lighting the road and the objects in front, so near and far objects differ.
- ``snow``: falling flakes in 3D around each camera (2000 / 5000 / 12000 within 25 m; nearer flakes larger and
  streaked by their fall during the exposure), ground covered by 25 / 45 / 65 % white, white haze with visibility
  450 / 240 / 120 m.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

WEATHERS = ("fog", "low_light", "snow")


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
    weather: str = "clear"  # "clear" or a forced test condition of WEATHERS
    weather_severity: int = 0  # 1..3 with a forced weather
    headlights: float = 0.0  # ego headlight gain on the road and objects ahead, at 10 m from the bumper
    snow_flakes: int = 0  # falling flakes within SNOW_RANGE of each camera
    snow_cover: float = 0.0  # share of white on the ground texture


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


SNOW_RANGE = 25.0  # metres: flakes are drawn this close to a camera; farther snow is haze
HEADLIGHT_X = 3.6  # metres: the front bumper ahead of the ego origin (rear axle)
HEADLIGHT_HALF_ANGLE_DEG = 28.0
_FOG_DISTANCE = {"fog": (60.0, 30.0, 15.0), "snow": (150.0, 80.0, 40.0)}


def with_weather(look: Look, weather: str, severity: int, rng: np.random.Generator) -> Look:
    """``look`` under a forced test weather at ``severity`` 1..3 (see the module doc); ``rng`` varies the details."""
    if weather not in WEATHERS:
        raise ValueError(f"weather: expected one of {list(WEATHERS)}, found {weather!r}")
    if severity not in (1, 2, 3):
        raise ValueError(f"weather severity: expected 1, 2 or 3, found {severity}")
    k = severity - 1
    if weather == "fog":
        grey = np.array([205.0, 205.0, 202.0]) * rng.uniform(0.95, 1.05)
        return replace(
            look,
            ambient=0.8,
            diffuse=0.12,
            exposure=float(rng.uniform(0.9, 1.0)),
            sky_zenith=grey * 0.97,
            sky_horizon=grey,
            fog_distance=_FOG_DISTANCE["fog"][k],
            condition="fog",
            weather=weather,
            weather_severity=severity,
        )
    if weather == "low_light":
        exposure = (0.30, 0.20, 0.12)[k]
        return replace(
            look,
            sun=np.array([0.3, 0.2, 0.93]) / np.linalg.norm([0.3, 0.2, 0.93]),
            ambient=0.6,
            diffuse=0.1,
            exposure=exposure,
            tint=np.array([1.1, 1.0, 0.92]),
            sky_zenith=np.array([55.0, 32.0, 22.0]) * exposure / 0.5,
            sky_horizon=np.array([80.0, 70.0, 70.0]) * exposure / 0.5,
            fog_distance=float(rng.uniform(150, 250)),
            noise_sigma=(6.0, 9.0, 13.0)[k],
            lights_on=True,
            headlights=float(0.8 / exposure),
            condition="night",
            weather=weather,
            weather_severity=severity,
        )
    white = np.array([215.0, 215.0, 212.0]) * rng.uniform(0.95, 1.02)
    return replace(
        look,
        ambient=0.78,
        diffuse=0.15,
        exposure=float(rng.uniform(0.9, 1.0)),
        tint=np.ones(3),
        sky_zenith=white * 0.95,
        sky_horizon=white,
        fog_distance=_FOG_DISTANCE["snow"][k],
        snow_flakes=(2000, 5000, 12000)[k],
        snow_cover=(0.25, 0.45, 0.65)[k],
        condition="overcast",
        weather=weather,
        weather_severity=severity,
    )


def headlight_gain(look: Look, points_ego: np.ndarray) -> np.ndarray:
    """Extra light (N,) the ego's headlights put on ego-frame points (N, 3): a forward cone from the bumper,
    ``look.headlights`` at 10 m on its axis, falling with the squared distance (capped at 1.5x nearer than 8 m, as
    auto-exposure would) and smoothly towards the cone's edge."""
    if look.headlights <= 0:
        return np.zeros(len(points_ego))
    ahead = points_ego[:, 0] - HEADLIGHT_X
    distance = np.hypot(ahead, points_ego[:, 1])
    angle = np.degrees(np.arctan2(np.abs(points_ego[:, 1]), np.maximum(ahead, 1e-6)))
    cone = np.clip(1.0 - (angle / HEADLIGHT_HALF_ANGLE_DEG) ** 2, 0.0, 1.0)
    falloff = 100.0 / np.maximum(distance, 2.0) ** 2
    return np.where(ahead > 0, look.headlights * cone * np.minimum(falloff, 1.5), 0.0)
