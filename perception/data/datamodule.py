"""``ClipDataModule``: train / val / test / predict splits over drive-clip folders, for LightningCLI configs.

Each split is a list of clip folders or folders holding clips (``find_clips``). Bad clips (unreadable rig, frame
tables, videos, labels; truncated video found while filling the frame cache) are logged with the reason and skipped;
a clip whose rig lacks the model's cameras raises ``RigMismatchError`` (that is a configuration error, not bad data).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from perception.clip import ClipError, DriveClip, find_clips
from perception.data.augment import BevAugmentation, ImageAugmentation, SensorDropout
from perception.data.cache import FrameCache
from perception.data.dataset import ClipWindowDataset, RigMismatchError, check_cameras
from perception.data.quality import ScoreQuality
from perception.data.sampler import ClipShardSampler, WindowSampler, check_repeat_threshold, repeat_factors
from perception.data.spec import check_spec
from perception.errors import InputError, load_yaml
from perception.labels import LabelsError
from perception.rig import Rig, RigError
from perception.video import VideoError

LOG = logging.getLogger(__name__)
BAD_CLIP_ERRORS = (ClipError, LabelsError, RigError, VideoError, ValueError, OSError, KeyError)


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, (str, Path)) else [str(v) for v in value]


def resolve_clip_paths(entries: str | Sequence[str] | None) -> list[Path]:
    """Clip folders named by ``entries`` (a clip folder or a folder searched with ``find_clips``), in order."""
    return [path for _, path in resolve_clip_entries(entries)]


def resolve_clip_entries(entries: str | Sequence[str] | None) -> list[tuple[str, Path]]:
    """(entry, clip folder) for every clip named by ``entries``, in order (see ``resolve_clip_paths``)."""
    paths: list[tuple[str, Path]] = []
    for entry in _as_list(entries):
        path = Path(entry).expanduser()
        if (path / "rig.yaml").is_file():
            paths.append((str(entry), path))
        elif path.is_dir():
            found = find_clips(path)
            if not found:
                LOG.warning("%s: no drive clips found (folders with rig.yaml and frames.csv)", path)
            paths += [(str(entry), clip) for clip in found]
        else:
            raise FileNotFoundError(
                f"data split entry {entry!r}: no such clip folder or folder of clips "
                f"(generate synthetic clips with: perception synth --rig configs/rigs/nuscenes_like_6cam.yaml "
                f"--clips N --frames F --out {entry})"
            )
    return paths


def load_ignore_below(value: float | dict[str, float] | str | None) -> dict[str, float] | None:
    """``data.train_labels_ignore_below``: a score for every class, {class: score} ("*" = the other classes), or
    a YAML file holding either that mapping or ``tracking3d.class_min_score`` (the floors ``autolabel calibrate``
    writes). Boxes of ``train_labels`` clips below their class's score become ignore regions in training."""
    if value is None:
        return None
    source = "data.train_labels_ignore_below"
    if isinstance(value, (str, Path)):
        path = Path(value).expanduser()
        document = load_yaml(path, "per-class score floors ({class: score}, or autolabel calibrate's floors.yaml)")
        if isinstance(document, dict) and isinstance(document.get("tracking3d"), dict):
            document = document["tracking3d"].get("class_min_score")
        source, value = f"{path}", document
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = {"*": value}
    if not isinstance(value, dict) or not value:
        raise InputError(
            f"{source}: expected a score, a {{class: score}} mapping or tracking3d.class_min_score, "
            f"found {type(value).__name__} {value!r}"
        )
    floors = {}
    for name, score in value.items():
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= float(score) <= 1.0:
            raise InputError(f"{source}: class {name!r}: expected a score in [0, 1], found {score!r}")
        floors[str(name)] = float(score)
    return floors


class ResumableDataLoader(DataLoader):
    """The training DataLoader. ``ClipDataModule`` itself carries the exact data position (epoch, batches consumed)
    in its ``state_dict``; this class only tells Lightning that mid-epoch resume is supported (no false warning)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass


class ClipDataModule(L.LightningDataModule):
    """Drive clips -> windows of ``window`` frames x ``cameras`` with targets for ``target_spec`` (see dataset.py)."""

    def __init__(
        self,
        *,
        train: str | list[str] | None = None,
        val: str | list[str] | None = None,
        test: str | list[str] | None = None,
        predict: str | list[str] | None = None,
        train_labels: str | dict[str, str | None] | None = None,
        train_labels_ignore_below: float | dict[str, float] | str | None = None,
        train_labels_quality: str | None = None,
        repeat_factor_threshold: float | None = None,
        cameras: list[str] | None = None,
        window: int = 2,
        train_stride: int = 1,
        eval_stride: int | None = None,
        batch_size: int = 2,
        eval_batch_size: int | None = None,
        predict_batch_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        cache_dir: str | None = None,
        image_augmentation: ImageAugmentation = ImageAugmentation(),
        bev_augmentation: BevAugmentation = BevAugmentation(),
        sensor_dropout: SensorDropout = SensorDropout(),
        max_boxes3d: int = 128,
        max_boxes2d: int = 64,
        seed: int = 0,
        target_spec: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.splits = {"train": train, "val": val, "test": test, "predict": predict}
        self.train_labels = train_labels  # labels kept outside the clips, e.g. autolabel output <clip>/labels.json
        if isinstance(train_labels, dict):
            unknown = sorted(set(train_labels) - set(_as_list(train)))
            if unknown:
                raise ValueError(
                    f"data.train_labels: keys {unknown} are not entries of data.train {_as_list(train)}; "
                    "map each train entry to its labels folder"
                )
        # pseudo-labels the teacher is unsure of: neither objects nor background (see load_ignore_below)
        self.train_labels_ignore_below = load_ignore_below(train_labels_ignore_below)
        self._ignore_below: list[dict[str, float] | None] = []  # per opened train clip
        # soft pseudo-labels: "score" or autolabel calibrate's --score-calibration file (see perception.data.quality)
        self.train_labels_quality = ScoreQuality.load(train_labels_quality)
        self._quality: list[ScoreQuality | None] = []  # per opened train clip
        # class-balanced training: windows holding rare 3D classes repeated (perception.data.sampler.repeat_factors)
        self.repeat_factor_threshold = (
            None
            if repeat_factor_threshold is None
            else check_repeat_threshold(repeat_factor_threshold, "data.repeat_factor_threshold")
        )
        self.cameras = list(cameras) if cameras is not None else None
        self.window, self.train_stride = int(window), int(train_stride)
        self.eval_stride = int(eval_stride) if eval_stride is not None else self.window
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size) if eval_batch_size is not None else self.batch_size
        self.predict_batch_size = int(predict_batch_size)  # 1 = the temporal state flows across a clip's windows
        self.num_workers, self.pin_memory, self.persistent_workers = int(num_workers), pin_memory, persistent_workers
        self.cache = FrameCache(cache_dir)
        self.image_augmentation, self.bev_augmentation = image_augmentation, bev_augmentation
        self.sensor_dropout = sensor_dropout  # training only: cameras dead / images lost through camera_valid
        self.max_boxes3d, self.max_boxes2d, self.seed = max_boxes3d, max_boxes2d, seed
        self.target_spec = check_spec(target_spec, "data.target_spec") if target_spec is not None else None
        self.datasets: dict[str, ClipWindowDataset] = {}
        self.skipped: list[tuple[str, str]] = []  # (clip path, reason)
        self.rig: Rig | None = None  # the model cameras' rig (from the first usable clip), for export
        self.data_epoch, self.consumed_batches = 0, 0  # exact training data position (saved in checkpoints)

    # ------------------------------------------------------------------ clips
    def _open_clips(self, split: str, require_labels: bool) -> list[DriveClip]:
        spec = self._spec()
        size_hw = (int(spec["image_size"][0]), int(spec["image_size"][1]))
        clips = []
        entries = resolve_clip_entries(self.splits[split])
        paths = [path for _, path in entries]
        if split == "train":
            self._ignore_below, self._quality = [], []
        from tqdm import tqdm

        for entry, path in tqdm(entries, desc=f"{split} clips (frame cache)", disable=len(paths) < 4, leave=False):
            try:
                labels_path = self._labels_path(entry, path) if split == "train" else None
                clip = DriveClip.open(path, labels_path=labels_path)
            except BAD_CLIP_ERRORS as error:
                self._skip(path, error)
                continue
            if self.cameras is None:
                self.cameras = list(clip.rig.names)
            check_cameras(clip, self.cameras)  # RigMismatchError propagates: configuration error
            try:
                if require_labels and clip.labels is None:
                    raise ClipError(f"{path}: no labels.json (split {split!r} needs ground truth)")
                for camera in self.cameras:
                    self.cache.frames(clip, camera, size_hw)
            except RigMismatchError:
                raise
            except BAD_CLIP_ERRORS as error:
                self._skip(path, error)
                continue
            clips.append(clip)
            if split == "train":
                self._ignore_below.append(self._floors_for(clip) if labels_path is not None else None)
                self._quality.append(self._quality_for(clip) if labels_path is not None else None)
            if self.rig is None:
                self.rig = clip.rig.subset(self.cameras)
        if paths and not clips:
            reasons = "; ".join(f"{p}: {r}" for p, r in self.skipped[-5:])
            raise RuntimeError(f"data.{split}: all {len(paths)} clips were skipped as unusable ({reasons})")
        return clips

    def _labels_path(self, entry: str, path: Path) -> Path | None:
        """Where a training clip's labels live: ``train_labels`` (one folder for every entry, or a mapping from a
        ``train`` entry to its labels folder; entries not in the mapping, or mapped to null, keep their own
        labels.json) / <clip folder name> / labels.json."""
        folder = self.train_labels
        if isinstance(folder, dict):
            folder = folder.get(entry)
        return Path(folder) / path.name / "labels.json" if folder else None

    def _skip(self, path: Path, error: BaseException) -> None:
        reason = f"{type(error).__name__}: {error}"
        LOG.warning("skipping clip %s: %s", path, reason)
        self.skipped.append((str(path), reason))

    def _spec(self) -> dict[str, Any]:
        if self.target_spec is None:
            raise ValueError(
                "ClipDataModule: target_spec is None; it comes from the model (the CLI links it from "
                "model.model_name/model_overrides), or pass perception.data.spec.target_spec_for(name)"
            )
        return self.target_spec

    def build_dataset(self, split: str) -> ClipWindowDataset:
        """Open the split's clips and build its dataset (augmented only for 'train')."""
        train = split == "train"
        clips = self._open_clips(split, require_labels=split != "predict")
        assert self.cameras is not None or not clips
        return ClipWindowDataset(
            clips,
            cameras=self.cameras or [],
            spec=self._spec(),
            window=self.window,
            stride=self.train_stride if train else self.eval_stride,
            cache=self.cache,
            image_augmentation=self.image_augmentation if train else None,
            bev_augmentation=self.bev_augmentation if train else None,
            sensor_dropout=self.sensor_dropout if train else None,
            with_targets=split != "predict",
            max_boxes3d=self.max_boxes3d,
            max_boxes2d=self.max_boxes2d,
            seed=self.seed,
            ignore_below=self._ignore_below if train else None,
            quality=self._quality if train else None,
        )

    def _quality_for(self, clip: DriveClip) -> ScoreQuality | None:
        quality = self.train_labels_quality
        if quality is not None and clip.labels is not None:
            quality.check_classes(clip.labels.classes, f"{clip.path}'s labels")
        return quality

    def _floors_for(self, clip: DriveClip) -> dict[str, float] | None:
        floors = self.train_labels_ignore_below
        if floors is None or clip.labels is None:
            return None
        unknown = sorted(set(floors) - set(clip.labels.classes) - {"*"})
        if unknown:
            raise InputError(
                f"data.train_labels_ignore_below: classes {unknown} are not among the classes of {clip.path}'s "
                f"labels {clip.labels.classes}"
            )
        default = floors.get("*", 0.0)
        return {name: floors.get(name, default) for name in clip.labels.classes}

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"], "predict": ["predict"]}
        for split in wanted.get(stage or "fit", ["train", "val", "test", "predict"]):
            if split not in self.datasets and _as_list(self.splits[split]):
                self.datasets[split] = self.build_dataset(split)
                LOG.info(
                    "data.%s: %d clips, %d windows of %d frames",
                    split,
                    len(self.datasets[split].clips),
                    len(self.datasets[split]),
                    self.window,
                )
        if self.skipped:
            LOG.warning(
                "%d clips skipped as unusable: %s", len(self.skipped), "; ".join(f"{p} ({r})" for p, r in self.skipped)
            )

    # ------------------------------------------------------------------ loaders
    def _loader(self, split: str, sampler: Any, batch_size: int, drop_last: bool = False) -> DataLoader:
        if split not in self.datasets:
            raise ValueError(f"ClipDataModule: split {split!r} has no clips (set data.{split} to clip folders)")
        import torch

        pin = torch.cuda.is_available() if self.pin_memory is None else self.pin_memory
        trainer = self.trainer
        connector = getattr(trainer, "_accelerator_connector", None)
        if trainer is not None and trainer.world_size > 1 and getattr(connector, "use_distributed_sampler", False):
            raise ValueError(
                "trainer.use_distributed_sampler: expected false with ClipDataModule (its samplers shard by "
                "rank themselves and resume exactly), found true"
            )
        loader_class = ResumableDataLoader if split == "train" else DataLoader
        return loader_class(
            self.datasets[split],
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=pin,
            drop_last=drop_last,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets.get("train")
        count = len(dataset) if dataset is not None else 0
        drop = count >= self.batch_size
        factors = None
        if self.repeat_factor_threshold is not None and dataset is not None:
            factors = repeat_factors(dataset.window_classes(), self.repeat_factor_threshold)
            LOG.info(
                "data.repeat_factor_threshold %s: %d of %d windows repeated (factors up to %.2f), %d samples per epoch",
                self.repeat_factor_threshold, int((factors > 1).sum()), count, factors.max(), int(factors.sum()),
            )  # fmt: skip
        sampler = WindowSampler(count, shuffle=True, seed=self.seed, position=self._train_position, factors=factors)
        loader = self._loader("train", sampler, self.batch_size, drop)
        self._train_batches = len(loader)
        return loader

    # ------------------------------------------------------------------ exact resume
    def _train_position(self) -> tuple[int, int]:
        """(data epoch, samples of it already consumed by training steps) for the train sampler."""
        return self.data_epoch, self.consumed_batches * self.batch_size

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Count training batches as they are consumed (after Lightning's prefetch) to know the exact data position."""
        trainer = self.trainer
        if trainer is not None and trainer.training and not trainer.sanity_checking:
            self.consumed_batches += 1
            if self.consumed_batches >= getattr(self, "_train_batches", 1 << 62):
                self.data_epoch, self.consumed_batches = self.data_epoch + 1, 0
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"data_epoch": self.data_epoch, "consumed_batches": self.consumed_batches}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.data_epoch = int(state_dict.get("data_epoch", 0))
        self.consumed_batches = int(state_dict.get("consumed_batches", 0))

    def val_dataloader(self) -> DataLoader | list:
        return self._eval_loader("val") if "val" in self.datasets else []  # no val split: Lightning skips validation

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        dataset = self.datasets.get("predict")
        clips = [clip for clip, _ in dataset.windows] if dataset is not None else []
        return self._loader("predict", ClipShardSampler(clips), self.predict_batch_size)

    def _eval_loader(self, split: str) -> DataLoader:
        dataset = self.datasets.get(split)
        count = len(dataset) if dataset is not None else 0
        return self._loader(split, WindowSampler(count, shuffle=False, seed=self.seed), self.eval_batch_size)


def window_clip_names(dataset: ClipWindowDataset) -> list[str]:
    """Clip name of every window (for logs)."""
    return [dataset.clips[c].name for c, _ in dataset.windows]


__all__ = ["ClipDataModule", "RigMismatchError", "resolve_clip_paths", "window_clip_names"]
