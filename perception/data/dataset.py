"""Windows of T consecutive frames x all model cameras from drive clips, with encoded targets.

A sample (numpy; the default collate stacks it into a batch with a leading B):
    images            uint8  [T, N, 3, H, W]  RGB (the model takes float 0..255: ``.float()`` on device)
    intrinsics        f32    [T, N, 3, 3]     for the H x W training images (after augmentation)
    camera_from_ego   f32    [T, N, 4, 4]     per frame AND camera (``DriveClip.camera_from_ego``), augmented ego
    distortion        f32    [T, N, 6]        lens coefficients + lens id (``perception.model_input``)
    camera_valid      f32    [T, N]           1, or 0 for a camera image dropped by ``sensor_dropout`` (zeros)
    prev_from_curr    f32    [T, 4, 4]        inv(world_from_ego[f-1]) @ world_from_ego[f]
                                              (augmented ego; eye at frame 0)
    state_valid       f32    [T]              0 at the window's first frame
    clip_index        int64  []  and frame_index int64 [T]
  targets (``with_targets``), laid out like the model outputs (``perception.models.targets``):
    heatmap, offset, z, size, yaw, velocity, reg_mask, velocity_mask   [T, ...] on the head grid
    heatmap_ignore    f32    [T, K, H, W]     only with ``ignore_below``: uncertain pseudo-labels (see there)
    heatmap_quality   f32    [T, K, H, W]     only with ``quality``: soft pseudo-labels (see there); with it the
                                              regression masks hold each box's quality
    segmentation      uint8  [T, S, Hb, Wb]   on the model's BEV grid
    det2d_heatmap, det2d_box, det2d_mask      [T, N, ...]
  raw ground truth for metrics (padded; class -1 = padding):
    gt_boxes3d f32 [T, M, 9] (x, y, z, l, w, h, yaw, vx, vy), gt_class3d int64 [T, M] (model class index)
    gt_boxes2d f32 [T, N, M2, 4] (pixels of the training image), gt_class2d int64 [T, N, M2]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perception.clip import DriveClip
from perception.data.augment import (
    BevAugmentation,
    ImageAugmentation,
    SensorDropout,
    resample_bev,
    transform_boxes2d,
    transform_boxes3d,
    warp_image,
)
from perception.data.cache import FrameCache
from perception.data.quality import ScoreQuality
from perception.geometry import BevGrid, invert_se3
from perception.labels import Boxes2D, Boxes3D, ClipLabels
from perception.model_input import DISTORTION_COLUMNS, model_distortion, model_intrinsics

LOG = logging.getLogger(__name__)


class RigMismatchError(ValueError):
    """A clip's rig lacks cameras the model needs; the message names the clip and both camera lists."""


def check_cameras(clip: DriveClip, cameras: Sequence[str]) -> None:
    """Raise ``RigMismatchError`` unless every model camera is in the clip's rig."""
    missing = [name for name in cameras if name not in clip.rig.names]
    if missing:
        raise RigMismatchError(
            f"{Path(clip.path) / 'rig.yaml'}: the clip's cameras {clip.rig.names} do not match the model's cameras "
            f"{list(cameras)} (missing {missing}); set data.cameras or use clips recorded with this rig"
        )


def clip_distortion(clip: DriveClip, camera: str) -> np.ndarray:
    """The camera's distortion as the model takes it (``perception.model_input.model_distortion``)."""
    return model_distortion(clip.rig[camera], source=str(Path(clip.path) / "rig.yaml"))


@dataclass
class _ClassMap:
    """Label class names -> model class indices (-1 = not a model class)."""

    model_classes: list[str] | None

    def __call__(self, label_classes: Sequence[str], class_id: np.ndarray) -> np.ndarray:
        if self.model_classes is None:
            return np.full(len(class_id), -1, dtype=np.int64)
        lookup = np.array(
            [self.model_classes.index(c) if c in self.model_classes else -1 for c in label_classes] + [-1]
        )
        return lookup[np.asarray(class_id, dtype=np.int64)]


class ClipWindowDataset:
    """Map-style dataset of T-frame windows; key = window index or (window index, augmentation seed)."""

    def __init__(
        self,
        clips: Sequence[DriveClip],
        *,
        cameras: Sequence[str],
        spec: dict[str, Any],
        window: int = 1,
        stride: int = 1,
        cache: FrameCache | None = None,
        image_augmentation: ImageAugmentation | None = None,
        bev_augmentation: BevAugmentation | None = None,
        sensor_dropout: SensorDropout | None = None,
        with_targets: bool = True,
        max_boxes3d: int = 128,
        max_boxes2d: int = 64,
        seed: int = 0,
        ignore_below: Sequence[dict[str, float] | None] | None = None,
        quality: Sequence[ScoreQuality | None] | None = None,
    ) -> None:
        """``ignore_below``: per clip (aligned with ``clips``), None or {label class: score}: that clip's 3D boxes
        scoring below their class's value are neither objects nor background in the heatmap loss (pseudo-labels
        the teacher is unsure of), and are left out of the other targets.

        ``quality``: per clip, None (its boxes are certain: ground truth) or a ``ScoreQuality``: that clip's 3D boxes
        are soft targets weighted by the probability their score maps to (``perception.data.quality``)."""
        if window < 1 or stride < 1:
            raise ValueError(f"ClipWindowDataset: window and stride must be >= 1, found {window}, {stride}")
        self.clips = list(clips)
        self.cameras = list(cameras)
        self.spec = spec
        self.window, self.stride = int(window), int(stride)
        self.cache = cache or FrameCache()
        self.image_augmentation, self.bev_augmentation = image_augmentation, bev_augmentation
        self.sensor_dropout = sensor_dropout if sensor_dropout is not None and sensor_dropout.enabled else None
        self.with_targets = with_targets
        self.max_boxes3d, self.max_boxes2d = max_boxes3d, max_boxes2d
        self.seed = seed
        self.ignore_below = list(ignore_below) if ignore_below is not None else [None] * len(self.clips)
        if len(self.ignore_below) != len(self.clips):
            raise ValueError(
                f"ClipWindowDataset: ignore_below has {len(self.ignore_below)} entries, expected one per clip "
                f"({len(self.clips)})"
            )
        self.size_hw = (int(spec["image_size"][0]), int(spec["image_size"][1]))
        self.bev_grid = BevGrid.from_dict(spec["bev_grid"]) if spec.get("bev_grid") else None
        self.map3d = _ClassMap(spec.get("detection3d_classes"))
        self.map2d = _ClassMap(spec.get("detection2d_classes"))
        self._photometric = None
        self._with_ignore = any(floors is not None for floors in self.ignore_below)
        self.quality = list(quality) if quality is not None else [None] * len(self.clips)
        if len(self.quality) != len(self.clips):
            raise ValueError(
                f"ClipWindowDataset: quality has {len(self.quality)} entries, expected one per clip ({len(self.clips)})"
            )
        self._with_quality = any(q is not None for q in self.quality)
        self.windows: list[tuple[int, int]] = []
        for clip_index, clip in enumerate(self.clips):
            check_cameras(clip, self.cameras)
            for camera in self.cameras:
                clip_distortion(clip, camera)
            self.windows += [(clip_index, start) for start in window_starts(clip.num_frames, self.window, self.stride)]
        self._intrinsics = [
            {name: model_intrinsics(clip.rig[name], self.size_hw) for name in self.cameras} for clip in self.clips
        ]

    def __len__(self) -> int:
        return len(self.windows)

    def window_classes(self) -> list[set[int]]:
        """Per window, the model's 3D classes with a labelled box inside the BEV grid in any of its frames (the
        counts ``repeat_factors`` balances; before augmentation)."""
        per_frame: dict[tuple[int, int], set[int]] = {}  # windows overlap: each frame is read once

        def frame_classes(clip_index: int, frame: int) -> set[int]:
            if (clip_index, frame) not in per_frame:
                labels = self.clips[clip_index].labels
                boxes = labels.frames[frame].boxes3d
                model_class = self.map3d(labels.classes, boxes.class_id)
                if self.bev_grid is not None:
                    model_class = model_class[self.bev_grid.contains(boxes.center[:, :2])]
                per_frame[clip_index, frame] = {int(c) for c in model_class[model_class >= 0]}
            return per_frame[clip_index, frame]

        return [
            set().union(*(frame_classes(clip_index, f) for f in range(start, start + self.window)))
            if self.clips[clip_index].labels is not None
            else set()
            for clip_index, start in self.windows
        ]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_photometric"] = None
        return state

    @property
    def augments(self) -> bool:
        return (
            self.image_augmentation is not None or self.bev_augmentation is not None or self.sensor_dropout is not None
        )

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, sample_seed = key if isinstance(key, tuple) else (key, self.seed * 1_000_003 + key)
        clip_index, start = self.windows[int(index)]
        rng = np.random.default_rng(int(sample_seed)) if self.augments else None
        return self.build_sample(clip_index, list(range(start, start + self.window)), rng)

    # ------------------------------------------------------------------ sample assembly
    def build_sample(self, clip_index: int, frames: list[int], rng: np.random.Generator | None) -> dict[str, Any]:
        """Assemble one window (see module doc); ``rng`` None = no augmentation."""
        clip = self.clips[clip_index]
        t_count, n_count = len(frames), len(self.cameras)
        height, width = self.size_hw
        aug = self.bev_augmentation.sample(rng) if (rng is not None and self.bev_augmentation) else np.eye(4)
        reverse = rng is not None and self.bev_augmentation is not None and self.bev_augmentation.sample_reverse(rng)
        if reverse:  # run the window backwards in time: frames in reverse order, velocities negated (_targets)
            frames = frames[::-1]
        ego_from_new = np.linalg.inv(aug)
        pixel_maps = [
            self.image_augmentation.sample_affine(rng, self.size_hw)
            if (rng is not None and self.image_augmentation)
            else np.eye(3)
            for _ in self.cameras
        ]
        photometric = None
        if rng is not None and self.image_augmentation is not None and self.image_augmentation.has_photometric:
            if self._photometric is None:
                self._photometric = self.image_augmentation.photometric()
            photometric = self._photometric
            photometric.set_random_seed(int(rng.integers(2**31)))
        sample: dict[str, Any] = {
            "images": np.zeros((t_count, n_count, 3, height, width), np.uint8),
            "intrinsics": np.zeros((t_count, n_count, 3, 3), np.float32),
            "camera_from_ego": np.zeros((t_count, n_count, 4, 4), np.float32),
            "distortion": np.zeros((t_count, n_count, len(DISTORTION_COLUMNS)), np.float32),
            "camera_valid": np.ones((t_count, n_count), np.float32),
            "prev_from_curr": np.tile(np.eye(4, dtype=np.float32), (t_count, 1, 1)),
            "state_valid": np.zeros(t_count, np.float32),
            "clip_index": np.int64(clip_index),
            "frame_index": np.asarray(frames, np.int64),
        }
        for n, camera in enumerate(self.cameras):
            stream = self.cache.frames(clip, camera, self.size_hw)
            K = pixel_maps[n] @ self._intrinsics[clip_index][camera]
            distortion = clip_distortion(clip, camera)
            for t, frame in enumerate(frames):
                image = warp_image(np.asarray(stream[frame]), pixel_maps[n])
                if photometric is not None:
                    image = photometric(image=image)["image"]
                sample["images"][t, n] = image.transpose(2, 0, 1)
                sample["intrinsics"][t, n] = K
                sample["camera_from_ego"][t, n] = clip.camera_from_ego(frame, camera) @ ego_from_new
                sample["distortion"][t, n] = distortion
        # corruption and sensor failures draw last, and only when enabled: other augmentations stay as they were
        corruption = (
            self.image_augmentation.sample_corruption(rng) if rng is not None and self.image_augmentation else None
        )
        if corruption is not None:
            self._corrupt(sample["images"], *corruption, rng)
        valid = None
        if rng is not None and self.sensor_dropout is not None:
            valid = self.sensor_dropout.sample(rng, t_count, n_count)
            sample["images"][~valid] = 0
            sample["camera_valid"] = valid.astype(np.float32)
        step = -1 if reverse else 1
        for t, frame in enumerate(frames):
            previous = frames[t - 1] if t > 0 else frame - step  # t=0: motion from the frame before the window, if any
            if 0 <= previous < clip.num_frames:
                prev_from_curr = invert_se3(clip.world_from_ego[previous]) @ clip.world_from_ego[frame]
                sample["prev_from_curr"][t] = aug @ prev_from_curr @ ego_from_new
            sample["state_valid"][t] = 1.0 if t > 0 else 0.0
        if self.with_targets:
            labels = clip.labels
            if labels is None:
                raise ValueError(f"{clip.path}: no labels.json, but this dataset needs targets")
            sample.update(self._targets(clip_index, labels, frames, aug, pixel_maps))
            if reverse:  # objects move the other way when time runs backwards
                if "velocity" in sample:
                    sample["velocity"] = -sample["velocity"]
                sample["gt_boxes3d"][..., 7:9] *= -1.0
            if valid is not None and not valid.all():  # a missing image shows no 2D objects
                if "det2d_heatmap" in sample:
                    sample["det2d_heatmap"][~valid] = 0.0
                    sample["det2d_mask"][~valid] = 0.0
                sample["gt_class2d"][~valid] = -1
        return sample

    @staticmethod
    def _corrupt(images: np.ndarray, name: str, severity: float, rng: np.random.Generator) -> None:
        """Apply one image corruption in place to images uint8 [T, N, 3, H, W] RGB (each image its own draws)."""
        from perception.corruptions import corrupt_image

        for t in range(images.shape[0]):
            for n in range(images.shape[1]):
                corrupted = corrupt_image(images[t, n].transpose(1, 2, 0), name, severity, rng)
                images[t, n] = corrupted.transpose(2, 0, 1)

    def _targets(
        self, clip_index: int, labels: ClipLabels, frames: list[int], aug: np.ndarray, pixel_maps: list[np.ndarray]
    ) -> dict[str, np.ndarray]:
        from perception.models.targets import encode_bev_targets, encode_det2d_targets, encode_ignore_mask, grid_shape

        spec, clip = self.spec, self.clips[clip_index]
        per_frame: list[dict[str, np.ndarray]] = []
        for frame in frames:
            frame_labels = labels.frames[frame]
            out: dict[str, np.ndarray] = {}
            boxes = frame_labels.boxes3d
            model_class = self.map3d(labels.classes, boxes.class_id)
            boxes = transform_boxes3d(boxes[model_class >= 0], aug)
            model_class = model_class[model_class >= 0]
            if self.bev_grid is not None:
                inside = self.bev_grid.contains(boxes.center[:, :2])
                boxes, model_class = boxes[inside], model_class[inside]
            floors = self.ignore_below[clip_index]
            if floors is not None and spec.get("detection3d_classes") is not None:
                limit = np.array([float(floors.get(name, 0.0)) for name in labels.classes])
                unsure = boxes.score < limit[boxes.class_id]
                out["heatmap_ignore"] = encode_ignore_mask(
                    center=boxes.center[unsure],
                    size=boxes.size[unsure],
                    class_id=model_class[unsure],
                    num_classes=len(spec["detection3d_classes"]),
                    grid=spec["head_grid"],
                )
                boxes, model_class = boxes[~unsure], model_class[~unsure]
            elif self._with_ignore and spec.get("detection3d_classes") is not None:
                out["heatmap_ignore"] = np.zeros(
                    (len(spec["detection3d_classes"]), *grid_shape(spec["head_grid"])), np.float32
                )
            if spec.get("detection3d_classes") is not None:
                quality = None
                if self._with_quality:
                    soft = self.quality[clip_index]
                    quality = np.ones(len(boxes)) if soft is None else soft(labels.classes, boxes.class_id, boxes.score)
                out.update(
                    encode_bev_targets(
                        center=boxes.center,
                        size=boxes.size,
                        yaw=boxes.yaw,
                        velocity=boxes.velocity,
                        class_id=model_class,
                        num_classes=len(spec["detection3d_classes"]),
                        grid=spec["head_grid"],
                        quality=quality,
                    )
                )
            out["gt_boxes3d"], out["gt_class3d"] = _pad_boxes3d(boxes, model_class, self.max_boxes3d)
            if spec.get("segmentation_classes") is not None:
                out["segmentation"] = self._segmentation(labels, frame, aug)
            gt2d = np.zeros((len(self.cameras), self.max_boxes2d, 4), np.float32)
            cls2d = np.full((len(self.cameras), self.max_boxes2d), -1, np.int64)
            det2d: list[dict[str, np.ndarray]] = []
            for n, camera in enumerate(self.cameras):
                boxes2d = frame_labels.boxes2d.get(camera, Boxes2D.empty())
                mapped = self.map2d(labels.classes, boxes2d.class_id)
                boxes2d, mapped = boxes2d[mapped >= 0], mapped[mapped >= 0]
                source = clip.rig[camera]
                scale = np.diag([self.size_hw[1] / source.width, self.size_hw[0] / source.height, 1.0])
                before = len(boxes2d)
                boxes2d = transform_boxes2d(boxes2d, pixel_maps[n] @ scale, self.size_hw)
                if len(boxes2d) != before:  # transform_boxes2d dropped some: recompute the class mapping
                    mapped = self.map2d(labels.classes, boxes2d.class_id)
                count = min(len(boxes2d), self.max_boxes2d)
                gt2d[n, :count], cls2d[n, :count] = boxes2d.xyxy[:count], mapped[:count]
                if spec.get("detection2d_classes") is not None:
                    det2d.append(
                        encode_det2d_targets(
                            boxes_xyxy=boxes2d.xyxy,
                            class_id=mapped,
                            num_classes=len(spec["detection2d_classes"]),
                            image_size=self.size_hw,
                            stride=int(spec["image_stride"]),
                        )
                    )
            out["gt_boxes2d"], out["gt_class2d"] = gt2d, cls2d
            if det2d:
                out.update({key: np.stack([d[key] for d in det2d]) for key in det2d[0]})
            per_frame.append(out)
        return {key: np.stack([f[key] for f in per_frame]) for key in per_frame[0]}

    def _segmentation(self, labels: ClipLabels, frame: int, aug: np.ndarray) -> np.ndarray:
        classes = self.spec["segmentation_classes"]
        assert self.bev_grid is not None
        out = np.zeros((len(classes), *self.bev_grid.shape), np.uint8)
        if labels.bev is None:
            return out
        channels = [labels.bev.channels.index(c) if c in labels.bev.channels else -1 for c in classes]
        present = [i for i, c in enumerate(channels) if c >= 0]
        if present:
            source = labels.bev.data[frame][[channels[i] for i in present]]
            out[present] = resample_bev(source, labels.bev.grid, self.bev_grid, aug)
        return out


def _pad_boxes3d(boxes: Boxes3D, class_id: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    table = np.zeros((limit, 9), np.float32)
    classes = np.full(limit, -1, np.int64)
    count = min(len(boxes), limit)
    if count:
        table[:count] = np.concatenate([boxes.center, boxes.size, boxes.yaw[:, None], boxes.velocity], 1)[:count]
        classes[:count] = class_id[:count]
    return table, classes


def window_starts(num_frames: int, window: int, stride: int) -> list[int]:
    """Start frames of windows of ``window`` frames every ``stride`` frames; the last window ends at the clip's end."""
    if num_frames < window:
        return []
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] != num_frames - window:
        starts.append(num_frames - window)
    return starts
