"""Augmentation that keeps every geometric quantity consistent with the pixels.

- Photometric, per camera image (albumentations): colour jitter, Gaussian blur, Gaussian noise, JPEG compression.
- Image-geometric, per camera (same for every frame of a window): random scale + crop/pad, an affine pixel map
  ``A`` (3x3, new pixel from old pixel); intrinsics become ``A @ K`` (distortion acts on normalised coordinates
  before K, so it is unchanged) and 2D boxes are mapped by ``A`` and clipped.
- BEV, per window: ``aug = new_ego_from_ego`` (rotation about z, optional mirror y -> -y) applied to the ego frame:
  ``camera_from_ego_new = camera_from_ego @ inv(aug)``, boxes (centre, yaw, velocity), BEV maps and ego motion
  ``prev_from_curr_new = aug @ prev_from_curr @ inv(aug)``. The images do not change.
- Time, per window: optionally reversed (the window's frames in reverse order, ego motion between them as given by
  that order, velocities negated), so an offline teacher can also run a clip backwards (``perception.models.tta``).
- Corruption, per window (``ImageAugmentation.corruption_prob``): one of ``perception.corruptions``' image corruptions
  (fog, snow, low light, motion blur, ...) at a random severity on every image of the window (weather and light
  change slowly), with each image's own random pattern.
- Sensor failures, per window (``SensorDropout``): cameras dead for the whole window, single images lost, whole
  frames lost; told to the model through ``camera_valid`` with a zero image, as the runtime does for a missing
  camera. The ground truth stays complete (what no valid camera sees must come from the temporal state or not at
  all); 2D targets of a missing image are emptied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.geometry import BevGrid, yaw_matrix
from perception.labels import Boxes2D, Boxes3D


@dataclass(frozen=True)
class BevAugmentation:
    """Random ego-frame rotation about z (uniform in +-``rotation_deg``), mirror y -> -y with ``flip_y_prob``, and
    time reversal of the window with ``reverse_time_prob``."""

    rotation_deg: float = 0.0
    flip_y_prob: float = 0.0
    reverse_time_prob: float = 0.0

    def sample_reverse(self, rng: np.random.Generator) -> bool:
        """Whether to run this window backwards in time (draws from ``rng`` only when enabled)."""
        return self.reverse_time_prob > 0 and bool(rng.random() < self.reverse_time_prob)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A random ``new_ego_from_ego`` (4x4; a reflection when mirrored)."""
        aug = np.eye(4)
        angle = np.deg2rad(rng.uniform(-self.rotation_deg, self.rotation_deg)) if self.rotation_deg > 0 else 0.0
        aug[:3, :3] = yaw_matrix(angle)
        if self.flip_y_prob > 0 and rng.random() < self.flip_y_prob:
            aug = np.diag([1.0, -1.0, 1.0, 1.0]) @ aug
        return aug


@dataclass(frozen=True)
class SensorDropout:
    """Camera failures in training windows: ``camera_prob`` per camera and window (dead for the whole window, like a
    camera crash), ``image_prob`` per camera and frame (the image never arrives, like a lost frame), ``frame_prob``
    per frame after the first (no camera arrives: the model must carry its temporal state). Frame 0 keeps at least
    one camera (the state starts there)."""

    camera_prob: float = 0.0
    image_prob: float = 0.0
    frame_prob: float = 0.0

    def __post_init__(self) -> None:
        for name in ("camera_prob", "image_prob", "frame_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"SensorDropout.{name}: expected a probability in [0, 1], found {value}")

    @property
    def enabled(self) -> bool:
        return max(self.camera_prob, self.image_prob, self.frame_prob) > 0

    def sample(self, rng: np.random.Generator, num_frames: int, num_cameras: int) -> np.ndarray:
        """bool [num_frames, num_cameras]: True = the camera's image arrives (draws from ``rng`` only when enabled)."""
        valid = np.ones((num_frames, num_cameras), bool)
        if not self.enabled:
            return valid
        valid &= rng.random(num_cameras) >= self.camera_prob
        valid &= rng.random((num_frames, num_cameras)) >= self.image_prob
        lost = rng.random(num_frames) < self.frame_prob
        lost[0] = False
        valid[lost] = False
        if not valid[0].any():
            valid[0, int(rng.integers(num_cameras))] = True
        return valid


@dataclass(frozen=True)
class ImageAugmentation:
    """Per-camera random scale (zoom about a random point, crop or zero-pad back to size), photometric noise and,
    with ``corruption_prob``, one image corruption per window (``perception.corruptions``: ``corruptions`` names a
    subset, None = all image corruptions; severity uniform in ``corruption_severity``, 0..3)."""

    scale_range: tuple[float, float] = (1.0, 1.0)
    color_jitter_prob: float = 0.0
    blur_prob: float = 0.0
    noise_prob: float = 0.0
    jpeg_prob: float = 0.0
    corruption_prob: float = 0.0
    corruption_severity: tuple[float, float] = (0.5, 3.0)
    corruptions: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        from perception.corruptions import IMAGE_CORRUPTIONS, MAX_SEVERITY

        low, high = self.corruption_severity
        if not 0.0 <= low <= high <= MAX_SEVERITY:
            raise ValueError(
                f"ImageAugmentation.corruption_severity: expected (low, high) with 0 <= low <= high <= "
                f"{MAX_SEVERITY:g}, found {self.corruption_severity}"
            )
        unknown = [c for c in (self.corruptions or ()) if c not in IMAGE_CORRUPTIONS]
        if unknown:
            raise ValueError(
                f"ImageAugmentation.corruptions: unknown {unknown}; expected names from {list(IMAGE_CORRUPTIONS)}"
            )

    def sample_corruption(self, rng: np.random.Generator) -> tuple[str, float] | None:
        """(image corruption, severity) for one window, or None (draws from ``rng`` only when enabled)."""
        if self.corruption_prob <= 0:
            return None
        from perception.corruptions import IMAGE_CORRUPTIONS

        if rng.random() >= self.corruption_prob:
            return None
        names = list(self.corruptions) if self.corruptions else list(IMAGE_CORRUPTIONS)
        name = names[int(rng.integers(len(names)))]
        return name, float(rng.uniform(*self.corruption_severity))

    def sample_affine(self, rng: np.random.Generator, size_hw: tuple[int, int]) -> np.ndarray:
        """``new_pixel_from_pixel`` (3x3): scale s, then a random crop window (or centred pad when s < 1)."""
        low, high = self.scale_range
        scale = float(rng.uniform(low, high)) if high > low else float(low)
        height, width = size_hw
        spare_x, spare_y = width * (scale - 1.0), height * (scale - 1.0)
        offset_x = rng.uniform(0, spare_x) if spare_x > 0 else spare_x / 2
        offset_y = rng.uniform(0, spare_y) if spare_y > 0 else spare_y / 2
        # pixel centres: new = scale * (old + 0.5) - 0.5 - offset
        return np.array(
            [[scale, 0.0, 0.5 * scale - 0.5 - offset_x], [0.0, scale, 0.5 * scale - 0.5 - offset_y], [0, 0, 1.0]]
        )

    @property
    def has_photometric(self) -> bool:
        return max(self.color_jitter_prob, self.blur_prob, self.noise_prob, self.jpeg_prob) > 0

    def photometric(self):  # -> albumentations.Compose
        """The albumentations pipeline of the photometric part (built on demand: albumentations imports slowly)."""
        import albumentations as A

        return A.Compose(
            [
                A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03, p=self.color_jitter_prob),
                A.GaussianBlur(blur_limit=(3, 5), p=self.blur_prob),
                A.GaussNoise(std_range=(0.01, 0.05), p=self.noise_prob),
                A.ImageCompression(quality_range=(40, 95), p=self.jpeg_prob),
            ]
        )


def warp_image(image: np.ndarray, new_pixel_from_pixel: np.ndarray) -> np.ndarray:
    """Apply a pixel affine to an (H, W, 3) image, keeping its size (zeros where nothing maps)."""
    import cv2

    if np.allclose(new_pixel_from_pixel, np.eye(3)):
        return np.ascontiguousarray(image)
    height, width = image.shape[:2]
    return cv2.warpAffine(
        np.ascontiguousarray(image),
        new_pixel_from_pixel[:2],
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def transform_boxes2d(
    boxes: Boxes2D,
    new_pixel_from_pixel: np.ndarray,
    size_hw: tuple[int, int],
    min_visible_fraction: float = 0.3,
    min_size_px: float = 2.0,
) -> Boxes2D:
    """Map 2D boxes by a scale+translate pixel affine, clip to the image, drop mostly-cut or tiny ones."""
    if len(boxes) == 0:
        return boxes
    A = new_pixel_from_pixel
    xyxy = boxes.xyxy.copy()  # same pixel convention as K (projected points), so mapped like points
    xyxy[:, [0, 2]] = A[0, 0] * xyxy[:, [0, 2]] + A[0, 2]
    xyxy[:, [1, 3]] = A[1, 1] * xyxy[:, [1, 3]] + A[1, 2]
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    height, width = size_hw
    clipped = xyxy.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
    box_w, box_h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (
        (box_w >= min_size_px)
        & (box_h >= min_size_px)
        & (box_w * box_h >= min_visible_fraction * np.maximum(area, 1e-9))
    )
    kept = boxes[keep]
    kept.xyxy = clipped[keep]
    return kept


def transform_boxes3d(boxes: Boxes3D, new_ego_from_ego: np.ndarray) -> Boxes3D:
    """Move boxes into the augmented ego frame (rotation about z and/or mirror y): centre, yaw, velocity."""
    if len(boxes) == 0:
        return boxes
    rotation = new_ego_from_ego[:3, :3]
    center = boxes.center @ rotation.T + new_ego_from_ego[:3, 3]
    heading = np.stack([np.cos(boxes.yaw), np.sin(boxes.yaw), np.zeros(len(boxes))], -1) @ rotation.T
    yaw = np.arctan2(heading[:, 1], heading[:, 0])
    velocity = boxes.velocity @ rotation[:2, :2].T
    return Boxes3D(
        center, boxes.size.copy(), yaw, velocity, boxes.class_id.copy(), boxes.score.copy(), boxes.track_id.copy()
    )


def resample_bev(
    data: np.ndarray, source_grid: BevGrid, target_grid: BevGrid, target_from_source: np.ndarray | None = None
) -> np.ndarray:
    """Nearest-neighbour resample (C, H, W) maps from ``source_grid`` to ``target_grid`` through an ego transform.

    ``target_from_source`` (4x4, e.g. the BEV augmentation) maps source-ego points to target-ego points; outside -> 0.
    """
    if target_from_source is None and source_grid == target_grid:
        return np.ascontiguousarray(data)
    centers = target_grid.cell_centers()  # (H, W, 2) target-ego xy
    if target_from_source is not None:
        source_from_target = np.linalg.inv(target_from_source)
        centers = centers @ source_from_target[:2, :2].T + source_from_target[:2, 3]
    rc = np.floor(source_grid.ego_to_cell(centers)).astype(np.int64)
    rows, cols = source_grid.shape
    inside = (rc[..., 0] >= 0) & (rc[..., 0] < rows) & (rc[..., 1] >= 0) & (rc[..., 1] < cols)
    out = np.zeros((data.shape[0], *target_grid.shape), dtype=data.dtype)
    r, c = rc[..., 0].clip(0, rows - 1), rc[..., 1].clip(0, cols - 1)
    out[:, inside] = data[:, r[inside], c[inside]]
    return out
