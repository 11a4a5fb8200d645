"""A simulated 2D detector on ground truth: a clip's labelled 2D boxes turned into detector-like output.

Misses depend on visibility and box height and come in bursts; boxes jitter (correlated over frames); scores fall
with occlusion; clutter false positives appear at random and at a few persistent places; some boxes are duplicated.
It exists to measure trackers and the cross-camera association where the true ids are known (the synthetic world,
whose renders a COCO detector hardly detects: YOLOX-Nano found 11 of 137 synthetic boxes at score 0.3), not to imitate
any particular detector. The error rates are set on principle (round numbers), not fitted to a data set.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autolabel.teachers.base import Teacher
from perception.labels import Boxes2D

__all__ = ["DetectorNoise", "GroundTruthTeacher", "simulate_detections"]


@dataclass(frozen=True)
class DetectorNoise:
    """Error model of ``simulate_detections`` (pixels, frames, probabilities per frame).

    A box is detected with probability ``recall`` x a visibility factor (0 at ``visibility_zero``, 1 from
    ``visibility_full``) x a size factor (0 at ``height_zero_px``, 1 from ``height_full_px``); after a miss that
    probability is multiplied by ``1 - miss_persistence`` (misses come in bursts). Each box side moves by a Gaussian
    of ``box_sigma`` x the box size, AR(1)-correlated over frames with ``box_correlation``. Score = 0.3 + 0.6 x both
    factors + N(0, ``score_sigma``). ``false_positives_per_frame`` clutter boxes (Poisson) at random with scores from
    Beta(2, 5) (mean 0.29, 1 % above 0.7); ``clutter_sites`` (Poisson mean per sequence) persistent places detected
    with probability ``clutter_rate`` per frame, each with its own strength in [0.2, 0.6] and scores of strength +
    N(0, ``score_sigma``) (no hard ceiling: a strong site now and then scores like a real object);
    ``duplicate_rate`` of detected boxes get a shifted second box.
    """

    recall: float = 0.9
    visibility_zero: float = 0.1
    visibility_full: float = 0.5
    height_zero_px: float = 6.0
    height_full_px: float = 20.0
    miss_persistence: float = 0.5
    box_sigma: float = 0.04
    box_correlation: float = 0.6
    score_sigma: float = 0.1
    false_positives_per_frame: float = 0.15
    clutter_sites: float = 1.0
    clutter_rate: float = 0.35
    duplicate_rate: float = 0.02

    @classmethod
    def perfect(cls) -> DetectorNoise:
        """No errors at all (every box with visibility > 0 found exactly, score 0.9)."""
        return cls(
            recall=1.0, visibility_zero=0.0, visibility_full=0.0, height_zero_px=0.0, height_full_px=0.0,
            miss_persistence=0.0, box_sigma=0.0, score_sigma=0.0, false_positives_per_frame=0.0, clutter_sites=0.0,
            duplicate_rate=0.0,
        )  # fmt: skip


def _ramp(value: np.ndarray, zero: float, full: float) -> np.ndarray:
    if full <= zero:
        return (value > zero).astype(np.float64) if zero > 0 else np.ones_like(value, dtype=np.float64)
    return np.clip((value - zero) / (full - zero), 0.0, 1.0)


def _random_boxes(rng: np.random.Generator, count: int, image_size: tuple[int, int]) -> np.ndarray:
    width, height = image_size
    box_h = rng.uniform(15.0, max(16.0, 0.4 * height), count)
    box_w = box_h * rng.uniform(0.4, 2.0, count)
    x1 = rng.uniform(0, np.maximum(1.0, width - box_w))
    y1 = rng.uniform(0, np.maximum(1.0, height - box_h))
    return np.stack([x1, y1, x1 + box_w, y1 + box_h], axis=1)


def simulate_detections(
    ground_truth: Sequence[Boxes2D],
    image_size: tuple[int, int],
    noise: DetectorNoise,
    rng: np.random.Generator,
    *,
    num_classes: int = 1,
) -> list[Boxes2D]:
    """Detector-like boxes (xyxy, class_id, score; no track ids) for one camera's frames of ground truth in order.

    ground_truth[i]: the labelled boxes of frame i with ``track_id`` (misses and jitter follow each id over frames)
    and ``visibility`` (nan = fully visible). image_size: (width, height) pixels; clutter gets a class in
    [0, num_classes).
    """
    width, height = image_size
    missed: dict[int, bool] = {}
    jitter: dict[int, np.ndarray] = {}
    sites = _random_boxes(rng, rng.poisson(noise.clutter_sites), image_size)
    site_class = rng.integers(0, num_classes, len(sites))
    site_strength = rng.uniform(0.2, 0.6, len(sites))
    out = []
    for boxes in ground_truth:
        visibility = np.nan_to_num(boxes.visibility, nan=1.0)
        box_h = boxes.xyxy[:, 3] - boxes.xyxy[:, 1]
        box_w = boxes.xyxy[:, 2] - boxes.xyxy[:, 0]
        quality = _ramp(visibility, noise.visibility_zero, noise.visibility_full) * _ramp(
            box_h, noise.height_zero_px, noise.height_full_px
        )
        xyxy, score, class_id = [], [], []
        for i, track in enumerate(boxes.track_id.tolist()):
            chance = noise.recall * quality[i] * ((1.0 - noise.miss_persistence) if missed.get(track) else 1.0)
            found = rng.random() < chance
            missed[track] = not found
            step = rng.normal(0.0, 1.0, 4)
            previous = jitter.get(track)
            rho = noise.box_correlation
            jitter[track] = step if previous is None else rho * previous + np.sqrt(1.0 - rho * rho) * step
            if not found:
                continue
            scale = noise.box_sigma * np.array([box_w[i], box_h[i], box_w[i], box_h[i]])
            box = boxes.xyxy[i] + jitter[track] * scale
            box = np.clip(box, 0, [width, height, width, height])
            if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                continue
            value = float(np.clip(0.3 + 0.6 * quality[i] + rng.normal(0.0, noise.score_sigma), 0.05, 0.99))
            xyxy.append(box), score.append(value), class_id.append(int(boxes.class_id[i]))
            if rng.random() < noise.duplicate_rate:
                shift = rng.uniform(-0.25, 0.25, 2) * [box_w[i], box_h[i]]
                xyxy.append(np.clip(box + np.tile(shift, 2), 0, [width, height, width, height]))
                score.append(value * rng.uniform(0.3, 0.7)), class_id.append(int(boxes.class_id[i]))
        clutter = _random_boxes(rng, rng.poisson(noise.false_positives_per_frame), image_size)
        xyxy.extend(clutter), score.extend(rng.beta(2.0, 5.0, len(clutter)))
        class_id.extend(rng.integers(0, num_classes, len(clutter)).tolist())
        shown = rng.random(len(sites)) < noise.clutter_rate
        for site, cls, strength in zip(sites[shown], site_class[shown], site_strength[shown]):
            size = np.array([site[2] - site[0], site[3] - site[1]] * 2)
            xyxy.append(site + rng.normal(0.0, 0.03, 4) * size)
            score.append(float(np.clip(strength + rng.normal(0.0, noise.score_sigma), 0.05, 0.99)))
            class_id.append(int(cls))
        xyxy_array = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        xyxy_array = np.clip(xyxy_array, 0, [width, height, width, height])
        valid = (xyxy_array[:, 2] - xyxy_array[:, 0] >= 1) & (xyxy_array[:, 3] - xyxy_array[:, 1] >= 1)
        out.append(
            Boxes2D(
                xyxy=xyxy_array[valid],
                class_id=np.asarray(class_id, dtype=np.int64)[valid],
                score=np.asarray(score, dtype=np.float32)[valid],
                image_size=(width, height),
            )
        )
    return out


def sequence_seed(seed: int, *names: str) -> int:
    """A stable per-sequence seed (same clip, camera and seed -> same simulated detections in every process)."""
    return zlib.crc32("/".join([str(seed), *names]).encode())


class GroundTruthTeacher(Teacher):
    """Teacher whose detections are the clips' ground-truth 2D boxes through ``simulate_detections``.

    The frames a job feeds are recognised by their decoded pixels (a hash table built here by decoding every
    camera of ``clips``), so it works through the ordinary labelling path (``ClipLabeler``) on those clips only.
    clips: clip folders (or one folder of clips) with ``labels.json``; noise: ``DetectorNoise`` fields.
    """

    def __init__(self, clips: str | Sequence[str], noise: DetectorNoise | dict | None = None, seed: int = 0) -> None:
        from perception.clip import DriveClip, find_clips

        paths = [Path(clips)] if isinstance(clips, (str, Path)) else [Path(p) for p in clips]
        if len(paths) == 1 and not (paths[0] / "rig.yaml").is_file():
            paths = find_clips(paths[0])
        if not paths:
            raise ValueError(f"GroundTruthTeacher: no clips found in {clips}")
        noise = noise if isinstance(noise, DetectorNoise) else DetectorNoise(**(noise or {}))
        self.name = "ground_truth_simulated"
        self.class_names: list[str] = []
        self._table: dict[bytes, Boxes2D] = {}
        for path in paths:
            clip = DriveClip.open(path)
            labels = clip.labels
            if labels is None:
                raise ValueError(f"{path}: GroundTruthTeacher needs a clip with labels.json")
            if not self.class_names:
                self.class_names = list(labels.classes)
            elif labels.classes != self.class_names:
                raise ValueError(f"{path}: classes {labels.classes} differ from the first clip's {self.class_names}")
            for camera in clip.rig:
                size = (camera.width, camera.height)
                truth = [frame.boxes2d.get(camera.name, Boxes2D.empty()) for frame in labels.frames]
                rng = np.random.default_rng(sequence_seed(seed, clip.name, camera.name))
                detections = simulate_detections(truth, size, noise, rng, num_classes=len(self.class_names))
                for frame in clip.frames(cameras=[camera.name]):
                    self._table[self._key(frame.images[camera.name])] = detections[frame.index]

    @staticmethod
    def _key(image: np.ndarray) -> bytes:
        return hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest()

    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Boxes2D]:
        out = []
        for image in frames:
            boxes = self._table.get(self._key(image))
            if boxes is None:
                raise KeyError("GroundTruthTeacher: a frame that is not one of its clips' frames was fed")
            out.append(boxes)
        return out
