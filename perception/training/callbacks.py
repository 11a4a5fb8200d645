"""Training callbacks: data-wait measurement and the prediction writer (labels.json per clip)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter

LOG = logging.getLogger(__name__)


class DataWaitTimer(L.Callback):
    """Fraction of training step time spent waiting for data: time from the previous batch's end to this batch's
    start (DataLoader fetch, collation, host-to-device copy) over the whole interval between batch ends.

    Logs ``perf/data_wait_fraction`` (running, over the epoch), ``perf/step_time_s`` and ``perf/data_wait_s``.
    The first ``skip_first`` batches of an epoch (worker start-up) are not counted.
    """

    def __init__(self, skip_first: int = 1, log_every_n_steps: int = 10) -> None:
        self.skip_first, self.log_every_n_steps = skip_first, log_every_n_steps
        self.reset()

    def reset(self) -> None:
        self.wait_s = 0.0
        self.total_s = 0.0
        self.batches = 0
        self._last_end: float | None = None
        self._start: float | None = None
        self._seen = 0

    @property
    def fraction(self) -> float:
        return self.wait_s / self.total_s if self.total_s > 0 else float("nan")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_end = time.perf_counter()
        self._seen = 0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_index: int
    ) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_index: int
    ) -> None:
        end = time.perf_counter()
        if self._last_end is not None and self._start is not None:
            self._seen += 1
            if self._seen > self.skip_first:
                wait, total = self._start - self._last_end, end - self._last_end
                self.wait_s += wait
                self.total_s += total
                self.batches += 1
                if self.batches % self.log_every_n_steps == 0 or self.batches == 1:
                    pl_module.log_dict(
                        {"perf/data_wait_fraction": self.fraction, "perf/step_time_s": total, "perf/data_wait_s": wait},
                        on_step=True,
                        on_epoch=False,
                        batch_size=1,
                    )
        self._last_end = end

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.batches:
            LOG.info("data wait: %.1f%% of %.2f s over %d batches", 100 * self.fraction, self.total_s, self.batches)

    def state_dict(self) -> dict[str, Any]:
        return {"wait_s": self.wait_s, "total_s": self.total_s, "batches": self.batches}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.wait_s, self.total_s, self.batches = state_dict["wait_s"], state_dict["total_s"], state_dict["batches"]


class LabelWriter(BasePredictionWriter):
    """Writes ``<output_dir>/<clip name>/labels.json`` (``ClipLabels``, provenance "model") for every predicted clip.

    2D boxes are rescaled from the training resolution to each camera's stored resolution; 3D boxes are in the ego
    frame at each frame's reference time; BEV maps go to the ``labels_bev.npz`` sidecar. Frames covered by several
    windows keep the prediction with the most temporal context (latest position in its window).
    """

    def __init__(self, output_dir: str = "runs/predict") -> None:
        super().__init__(write_interval="epoch")
        self.output_dir = Path(output_dir)

    def write_on_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        datamodule = trainer.datamodule
        dataset = datamodule.datasets["predict"]
        by_clip: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
        flat = (
            predictions[0]
            if predictions
            and isinstance(predictions[0], list)
            and predictions[0]
            and isinstance(predictions[0][0], list)
            else predictions
        )
        for batch_records in flat:
            for record in batch_records:
                by_clip[record["clip_index"]][record["frame_index"]] = record  # later windows overwrite earlier
        for clip_index, frames in by_clip.items():
            path = self.write_clip(dataset, clip_index, frames, pl_module)
            LOG.info("wrote %s", path)

    def write_clip(self, dataset: Any, clip_index: int, frames: dict[int, dict[str, Any]], pl_module: Any) -> Path:
        from perception.geometry import BevGrid
        from perception.labels import BevMaps, Boxes2D, Boxes3D, ClipLabels, FrameLabels, make_provenance

        clip = dataset.clips[clip_index]
        spec = dataset.spec
        classes3d = spec.get("detection3d_classes") or []
        classes2d = spec.get("detection2d_classes") or []
        classes = list(dict.fromkeys([*classes3d, *classes2d]))
        index3d = np.array([classes.index(c) for c in classes3d] + [0], np.int64)
        index2d = np.array([classes.index(c) for c in classes2d] + [0], np.int64)
        height, width = dataset.size_hw
        labels_frames, bev = [], []
        for frame in range(clip.num_frames):
            record = frames.get(frame, {})
            boxes3d = Boxes3D.empty()
            if "boxes3d" in record:
                b = record["boxes3d"]
                boxes3d = Boxes3D(b["center"], b["size"], b["yaw"], b["velocity"], index3d[b["class_id"]], b["score"])
            boxes2d = {}
            for n, camera in enumerate(dataset.cameras):
                if "boxes2d" not in record:
                    break
                b = record["boxes2d"][n]
                source = clip.rig[camera]
                scale = np.array([source.width / width, source.height / height] * 2)
                boxes2d[camera] = Boxes2D(b["xyxy"] * scale, index2d[b["class_id"]], b["score"])
            labels_frames.append(FrameLabels(boxes3d, boxes2d))
            if spec.get("segmentation_classes") is not None:
                grid_shape = BevGrid.from_dict(spec["bev_grid"]).shape
                bev.append(record.get("bev", np.zeros((len(spec["segmentation_classes"]), *grid_shape), np.uint8)))
        bev_maps = None
        if bev:
            bev_maps = BevMaps(BevGrid.from_dict(spec["bev_grid"]), list(spec["segmentation_classes"]), np.stack(bev))
        extra: dict[str, Any] = {"frames_predicted": len(frames)}
        ckpt_path = getattr(getattr(pl_module, "_trainer", None), "ckpt_path", None)
        if ckpt_path and Path(ckpt_path).is_file():
            from perception.hashing import file_sha256

            extra["weights_sha256"] = file_sha256(ckpt_path)
        provenance = make_provenance(
            "model", f"perception predict ({getattr(pl_module, 'model_name', 'model')})", **extra
        )
        out = self.output_dir / clip.name / "labels.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        ClipLabels(classes, labels_frames, provenance, bev_maps).save(out)
        return out
