"""Camera corruptions for robustness evaluation and training: the eight RoboBEV / nuScenes-C families at three
severities, deterministic for a seed (torch-free; numpy + OpenCV).

Families (``CORRUPTIONS``):
- sensor failures (``SENSOR_CORRUPTIONS``), told to the model through its ``camera_valid`` mask (the runtime's
  missing-camera rule: the image is zeros and valid is 0):
  ``camera_crash``  some cameras dead for the whole clip: 2 / 3 / 4 of 6 (scaled with the rig's camera count;
                    nuScenes-C draws 2 / 4 / 5 camera indices with replacement, i.e. 1.8 / 3.1 / 3.6 distinct cameras
                    on average), chosen per clip;
  ``frame_lost``    every camera image lost independently with probability 1/3, 2/3, 5/6 (nuScenes-C's).
- image corruptions (``IMAGE_CORRUPTIONS``), per image, RGB uint8 in and out:
  ``color_quant``   posterise to 4 / 3 / 2 bits per channel;
  ``motion_blur``   one-sided half-Gaussian streak at a random angle, sigma 5 / 12 / 15 and length 31 / 31 / 41
                    in 1/1600 of the image width (nuScenes-C's kernels on 1600-pixel images);
  ``brightness``    HSV value + 0.2 / 0.4 / 0.5;
  ``low_light``     levels stretched to a maximum of 0.4 / 0.3 / 0.2 with gamma 2, then Poisson (photons 120 / 50 /
                    30 at full scale) and Gaussian (sigma 0.018 / 0.026 / 0.038) sensor noise;
  ``fog``           fractal haze of strength 2 / 2.5 / 3 with the contrast scaled by max / (max + strength)
                    (nuScenes-C's strengths; one roughness decay, 1.7, for every level where nuScenes-C uses
                    2 / 1.5 / 1.4, so that a higher level always hides more of the scene);
  ``snow``          whitened scene (grey * 1.5 + 0.5 blended in by 0.2 / 0.3 / 0.3) plus flakes: thresholded
                    Gaussian noise (mean 0.1 / 0.2 / 0.55, threshold 0.5 / 0.5 / 0.9, flake size 3 / 2 / 4 and
                    streaks of sigma 4 / 4 / 8 in 1/1600 of the width, at least one pixel) and the flakes rotated
                    by 180 degrees.
The levels follow nuScenes-C (RoboBEV's ``easy/mid/hard``: imagecorruptions severities 2/4/5 for blur, brightness
and fog, 1/2/3 for snow and colour quantisation, 2/3/4 for low light). Spatial sizes are fractions of the image
width, so an image corrupted at the model's input resolution looks like the same corruption applied to the camera
frame before resizing. The 2D filters know no depth: ``perception synth --weather`` renders fog, snow and low light
with depth in the synthetic world.

Severity is a float in [0, 3]: 0 is the clean image, 1, 2, 3 the levels above, values between interpolate the
parameters linearly (training augmentation draws them at random). Randomness comes only from the ``rng`` passed in;
``ClipCorruption`` derives one from (seed, corruption, clip, frame, camera), so a corrupted test split is the same
in every run and process, and the severities of one corruption share their random draws (the same fog pattern,
thicker; the cameras dead at severity 1 are also dead at 2 and 3; the images lost at 1 are also lost at 2 and 3).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from perception.rig import Camera

SENSOR_CORRUPTIONS = ("camera_crash", "frame_lost")
IMAGE_CORRUPTIONS = ("color_quant", "motion_blur", "brightness", "low_light", "fog", "snow")
CORRUPTIONS = ("camera_crash", "frame_lost", "color_quant", "motion_blur", "brightness", "low_light", "fog", "snow")
SEVERITIES = (1, 2, 3)
MAX_SEVERITY = 3.0
REFERENCE_WIDTH = 1600.0  # nuScenes-C's images: spatial parameters below are pixels at this width

# Parameter tables: entry k is severity k (0 = clean). Continuous severities interpolate linearly.
_CRASHED_OF_SIX = (0.0, 2.0, 3.0, 4.0)
_LOST_PROBABILITY = (0.0, 1 / 3, 2 / 3, 5 / 6)
_QUANT_BITS = (8.0, 4.0, 3.0, 2.0)
_BLUR_SIGMA = (0.0, 5.0, 12.0, 15.0)  # pixels at REFERENCE_WIDTH
_BLUR_LENGTH = (1.0, 31.0, 31.0, 41.0)
_BRIGHTNESS = (0.0, 0.2, 0.4, 0.5)
_LOW_LIGHT_MAX = (1.0, 0.4, 0.3, 0.2)
_LOW_LIGHT_GAMMA = (1.0, 2.0, 2.0, 2.0)
_LOW_LIGHT_INV_PHOTONS = (0.0, 1 / 120, 1 / 50, 1 / 30)
_LOW_LIGHT_SIGMA = (0.0, 0.018, 0.026, 0.038)
_FOG_STRENGTH = (0.0, 2.0, 2.5, 3.0)
_FOG_DECAY = (1.7, 1.7, 1.7, 1.7)
_SNOW_MEAN = (0.0, 0.1, 0.2, 0.55)
_SNOW_THRESHOLD = (0.5, 0.5, 0.5, 0.9)
_SNOW_ZOOM = (3.0, 3.0, 2.0, 4.0)  # pixels at REFERENCE_WIDTH (flake size)
_SNOW_STREAK = (4.0, 4.0, 4.0, 8.0)  # pixels at REFERENCE_WIDTH (fall streak sigma)
_SNOW_WHITEN = (0.0, 0.2, 0.3, 0.3)  # blend weight of the whitened scene
_SNOW_AMOUNT = (0.0, 1.0, 1.0, 1.0)  # flakes fade in from severity 0 to 1


def _level(table: Sequence[float], severity: float) -> float:
    return float(np.interp(severity, np.arange(len(table)), table))


def check_corruption(name: str, severity: float) -> None:
    """Raise ``ValueError`` naming the field unless ``name`` is a known corruption and 0 <= severity <= 3."""
    if name not in CORRUPTIONS:
        raise ValueError(f"corruption: expected one of {list(CORRUPTIONS)}, found {name!r}")
    if not 0.0 <= float(severity) <= MAX_SEVERITY:
        raise ValueError(f"corruption {name!r}: severity expected in [0, {MAX_SEVERITY:g}], found {severity}")


# ----------------------------------------------------------------------------------------------- sensor failures
def sensor_mask(
    name: str, severity: float, *, num_frames: int, num_cameras: int, rng: np.random.Generator
) -> np.ndarray:
    """Which camera images arrive: bool [num_frames, num_cameras] (False = dead or lost) for a sensor corruption."""
    check_corruption(name, severity)
    valid = np.ones((num_frames, num_cameras), bool)
    if name == "camera_crash":
        count = crashed_camera_count(severity, num_cameras)
        valid[:, rng.permutation(num_cameras)[:count]] = False
    elif name == "frame_lost":
        valid = rng.random((num_frames, num_cameras)) >= _level(_LOST_PROBABILITY, severity)
    else:
        raise ValueError(f"sensor_mask: {name!r} is an image corruption (sensor corruptions: {SENSOR_CORRUPTIONS})")
    return valid


def crashed_camera_count(severity: float, num_cameras: int) -> int:
    """Cameras dead under ``camera_crash`` at ``severity``: 2 / 3 / 4 of 6, scaled to the rig (at most N - 1)."""
    if severity <= 0 or num_cameras < 2:
        return 0
    count = round(_level(_CRASHED_OF_SIX, severity) * num_cameras / 6.0)
    return int(min(max(count, 1), num_cameras - 1))


# ----------------------------------------------------------------------------------------------- image corruptions
def corrupt_image(image: np.ndarray, name: str, severity: float, rng: np.random.Generator) -> np.ndarray:
    """A corrupted copy of an RGB uint8 (H, W, 3) image; ``rng`` supplies every random choice (angle, noise)."""
    check_corruption(name, severity)
    if name in SENSOR_CORRUPTIONS:
        raise ValueError(f"corrupt_image: {name!r} is a sensor failure (use sensor_mask)")
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"corrupt_image: expected an RGB uint8 (H, W, 3) image, found {image.dtype} {image.shape}")
    if severity <= 0:
        return image.copy()
    return _IMAGE_FUNCTIONS[name](np.ascontiguousarray(image), float(severity), rng)


def _color_quant(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    bits = int(round(_level(_QUANT_BITS, severity)))
    mask = np.uint8((0xFF << (8 - bits)) & 0xFF)
    return image & mask


def _width_pixels(value: float, width: int) -> float:
    return value * width / REFERENCE_WIDTH


def _streak_kernel(length: float, sigma: float, angle_deg: float) -> np.ndarray:
    """One-sided half-Gaussian line kernel (normalised) of ``length`` pixels at ``angle_deg``."""
    radius = max(int(np.ceil(length)), 1)
    size = 2 * radius + 1
    kernel = np.zeros((size, size), np.float32)
    steps = np.arange(0.0, length, 0.25)
    weights = np.exp(-0.5 * (steps / max(sigma, 1e-3)) ** 2)
    dx, dy = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    for step, weight in zip(steps, weights):  # bilinear splat of each sample point
        x, y = radius + step * dx, radius + step * dy
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        for ox, oy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            if 0 <= x0 + ox < size and 0 <= y0 + oy < size:
                kernel[y0 + oy, x0 + ox] += weight * w
    return kernel / kernel.sum()


def _motion_blur(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    import cv2

    width = image.shape[1]
    sigma = _width_pixels(_level(_BLUR_SIGMA, severity), width)
    length = max(_width_pixels(_level(_BLUR_LENGTH, severity), width), 1.0)
    kernel = _streak_kernel(length, sigma, float(rng.uniform(-45.0, 45.0)))
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)


def _brightness(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    import cv2

    hsv = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
    hsv[..., 2] = np.clip(hsv[..., 2] + _level(_BRIGHTNESS, severity), 0.0, 1.0)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _low_light(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float32) / 255.0
    low, high = float(x.min()), float(x.max())
    scaled = ((x - low) / max(high - low, 1e-6)) ** _level(_LOW_LIGHT_GAMMA, severity) * _level(
        _LOW_LIGHT_MAX, severity
    )
    inverse_photons = _level(_LOW_LIGHT_INV_PHOTONS, severity)
    if inverse_photons > 0:
        photons = 1.0 / inverse_photons
        scaled = rng.poisson(scaled * photons).astype(np.float32) / photons
    noisy = np.clip(scaled, 0, 1) + rng.normal(0.0, _level(_LOW_LIGHT_SIGMA, severity), x.shape).astype(np.float32)
    return np.clip(noisy * 255.0 + 0.5, 0, 255).astype(np.uint8)


def fractal_noise(height: int, width: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """Fractal (1/f-like) noise (H, W) in [0, 1]: octaves of smooth random noise, octave k weighted decay^-k, the
    coarsest spanning the image (the role of imagecorruptions' plasma fractal)."""
    import cv2

    size = max(height, width)
    octaves = max(int(np.ceil(np.log2(size))) - 1, 1)
    total = np.zeros((height, width), np.float32)
    for k in range(octaves):
        cells = 2 ** (k + 1)
        coarse = rng.random((cells + 1, cells + 1)).astype(np.float32)
        layer = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)[:height, :width]
        total += layer / decay**k
    total -= total.min()
    return total / max(float(total.max()), 1e-6)


def _fog(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float32) / 255.0
    strength = _level(_FOG_STRENGTH, severity)
    top = float(x.max())
    haze = fractal_noise(x.shape[0], x.shape[1], _level(_FOG_DECAY, severity), rng)
    fogged = (x + strength * haze[..., None]) * top / (top + strength)
    return np.clip(fogged * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _snow(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    import cv2

    height, width = image.shape[:2]
    x = image.astype(np.float32) / 255.0
    zoom = max(_width_pixels(_level(_SNOW_ZOOM, severity), width), 1.0)
    small = (max(int(np.ceil(height / zoom)), 1), max(int(np.ceil(width / zoom)), 1))
    layer = rng.normal(_level(_SNOW_MEAN, severity), 0.3, small).astype(np.float32)
    layer = cv2.resize(layer, (width, height), interpolation=cv2.INTER_LINEAR)
    layer[layer < _level(_SNOW_THRESHOLD, severity)] = 0.0
    streak = max(_width_pixels(_level(_SNOW_STREAK, severity), width), 1.0)
    kernel = _streak_kernel(2.5 * streak, streak, float(rng.uniform(45.0, 135.0)))  # falling: downwards-ish
    layer = np.clip(cv2.filter2D(layer, -1, kernel, borderType=cv2.BORDER_REFLECT), 0, 1)
    layer *= _level(_SNOW_AMOUNT, severity)
    whiten = _level(_SNOW_WHITEN, severity)
    grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None]
    x = (1.0 - whiten) * x + whiten * np.maximum(x, grey * 1.5 + 0.5)
    flakes = (layer + np.rot90(layer, 2))[..., None]
    return np.clip((x + flakes) * 255.0 + 0.5, 0, 255).astype(np.uint8)


_IMAGE_FUNCTIONS = {
    "color_quant": _color_quant,
    "motion_blur": _motion_blur,
    "brightness": _brightness,
    "low_light": _low_light,
    "fog": _fog,
    "snow": _snow,
}


# ----------------------------------------------------------------------------------------------- deterministic plans
def _key(text: str) -> int:
    return zlib.crc32(text.encode())


def seeded_rng(seed: int, *parts: str | int) -> np.random.Generator:
    """A generator determined by ``seed`` and ``parts`` (strings are hashed with CRC-32: stable across processes)."""
    entropy = [int(seed) & 0xFFFFFFFF] + [_key(p) if isinstance(p, str) else int(p) & 0xFFFFFFFF for p in parts]
    return np.random.default_rng(np.random.SeedSequence(entropy))


@dataclass(frozen=True)
class ClipCorruption:
    """One corruption at one severity, applied identically in every run: the camera mask of a clip (sensor failures)
    and the corrupted image of (clip, frame, camera) (image corruptions), each from its own seeded generator."""

    name: str
    severity: float
    seed: int = 0

    def __post_init__(self) -> None:
        check_corruption(self.name, self.severity)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.severity:g}"

    @property
    def is_sensor(self) -> bool:
        return self.name in SENSOR_CORRUPTIONS

    def camera_mask(self, clip_key: str, num_frames: int, num_cameras: int) -> np.ndarray:
        """bool [num_frames, num_cameras]: False where the camera's image never arrives (all True for images)."""
        if not self.is_sensor:
            return np.ones((num_frames, num_cameras), bool)
        rng = seeded_rng(self.seed, self.name, clip_key)
        return sensor_mask(self.name, self.severity, num_frames=num_frames, num_cameras=num_cameras, rng=rng)

    def image(self, image: np.ndarray, clip_key: str, frame: int, camera: int) -> np.ndarray:
        """The corrupted RGB uint8 image of ``camera`` (index) at ``frame`` of a clip (a copy for sensor failures)."""
        if self.is_sensor:
            return np.asarray(image).copy()
        rng = seeded_rng(self.seed, self.name, clip_key, frame, camera)
        return corrupt_image(image, self.name, self.severity, rng)


def parse_corruptions(names: Sequence[str] | None) -> list[str]:
    """Corruption names from a user list (``None`` or ``["all"]`` = all eight), checked, in ``CORRUPTIONS`` order."""
    if not names or list(names) == ["all"]:
        return list(CORRUPTIONS)
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown:
        raise ValueError(f"corruptions: unknown {unknown}; expected names from {list(CORRUPTIONS)} or 'all'")
    return [n for n in CORRUPTIONS if n in names]


# ----------------------------------------------------------------------------------------------- field of view
def in_field_of_view(points_ego: np.ndarray, cameras: Sequence[Camera], *, min_depth: float = 0.1) -> np.ndarray:
    """bool (M,): which ego-frame points (M, 3) (metres) land inside the image of at least one of ``cameras`` (in
    front by more than ``min_depth``); with a camera lost, the field of view of the cameras still delivering."""
    points = np.asarray(points_ego, dtype=np.float64).reshape(-1, 3)
    seen = np.zeros(len(points), bool)
    for camera in cameras:
        if not len(points):
            break
        uv, depth = camera.project_ego(points)
        with np.errstate(invalid="ignore"):
            seen |= (depth > min_depth) & camera.in_image(uv)
    return seen
