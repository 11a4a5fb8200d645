"""``PerceptionModule``: a ``BevVideoNet`` preset trained on T-frame windows with multi-task losses, AdamW +
cosine/one-cycle schedule, EMA weights (used for validation, test, predict and export) and nuScenes-style metrics."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch

from perception.data.spec import target_spec_from_model_config
from perception.training.ema import ModelEma
from perception.training.evaluation import EvaluationRecords

LOG = logging.getLogger(__name__)
SCHEDULES = ("cosine", "onecycle", "constant")


class PerceptionModule(L.LightningModule):
    """Trains ``build_model(model_name, **model_overrides)``; every argument is a YAML key under ``model:``."""

    def __init__(
        self,
        *,
        model_name: str = "bev_tiny",
        model_overrides: dict[str, Any] | None = None,
        loss_weights: dict[str, float] | None = None,
        dice_weight: float = 0.0,
        lr: float = 2e-3,
        weight_decay: float = 1e-2,
        schedule: str = "cosine",
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.05,
        schedule_steps: int | None = None,
        ema_decay: float | None = 0.99,
        score_threshold: float = 0.1,
        det2d_score_threshold: float = 0.1,
        max_detections: int = 100,
        picture_every_n_epochs: int = 1,
        export_on_fit_end: bool = True,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"model.schedule: expected one of {SCHEDULES}, found {schedule!r}")
        self.save_hyperparameters()
        from perception.models.zoo import build_model

        self.model_name = model_name
        self.model = build_model(model_name, **(model_overrides or {}))
        if channels_last:  # NHWC convolutions: ~1.6x faster training steps on CPU (benchmarks/bench_train.py)
            self.model.to(memory_format=torch.channels_last)
        self.ema = ModelEma(self.model, ema_decay) if ema_decay else None
        self.spec = target_spec_from_model_config(self.model.config())
        self.rig: dict | None = None  # rig of the training cameras (filled from the datamodule; stored in checkpoints)
        self.cameras: list[str] | None = None
        self.window: int | None = None
        self._records: EvaluationRecords | None = None
        self._picture_batch: dict[str, Any] | None = None
        self._predict_chain: tuple[int, int, torch.Tensor] | None = None  # (clip, last frame, state) in predict

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is None:
            return
        if getattr(datamodule, "target_spec", None) not in (None, self.spec):
            raise ValueError(f"data.target_spec {datamodule.target_spec} differs from the model's {self.spec}")
        if getattr(datamodule, "rig", None) is not None:
            self.rig = datamodule.rig.to_dict()
            self.cameras = list(datamodule.cameras)
        self.window = getattr(datamodule, "window", None)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["fleetvision"] = {"rig": self.rig, "cameras": self.cameras, "window": self.window, "spec": self.spec}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        extra = checkpoint.get("fleetvision", {})
        self.rig, self.cameras, self.window = extra.get("rig"), extra.get("cameras"), extra.get("window")

    @property
    def eval_model(self) -> torch.nn.Module:
        """The model used for validation/test/predict: the EMA weights when enabled."""
        return self.ema.shadow if self.ema is not None else self.model

    # ------------------------------------------------------------------ forward
    @staticmethod
    def run_window(
        model: torch.nn.Module, batch: dict[str, torch.Tensor], prev_state: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """``forward_window`` on a batch of windows; the state starts empty at each window's first frame unless
        ``prev_state`` (the state after the frame before the window) is given."""
        images = batch["images"].float()
        state_valid = batch["state_valid"]
        if prev_state is None:
            prev_state = model.initial_state(images.shape[0]).to(images.dtype)
        else:
            state_valid = state_valid.clone()
            state_valid[:, 0] = 1.0
        return model.forward_window(
            images,
            batch["intrinsics"],
            batch["camera_from_ego"],
            batch["distortion"],
            batch["camera_valid"],
            prev_state,
            batch["prev_from_curr"],
            state_valid,
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.run_window(self.model, batch)

    def _losses(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        from perception.models.losses import compute_losses

        return compute_losses(outputs, batch, weights=self.hparams.loss_weights, dice_weight=self.hparams.dice_weight)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        losses = self._losses(self(batch), batch)
        batch_size = batch["images"].shape[0]
        self.log("train/loss", losses["total"], prog_bar=True, batch_size=batch_size)
        self.log_dict({f"train/loss_{k}": v.detach() for k, v in losses.items() if k != "total"}, batch_size=batch_size)
        return losses["total"]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_index: int) -> None:
        if self.ema is not None:
            self.ema.update(self.model)

    def configure_optimizers(self) -> dict[str, Any]:
        decay, no_decay = [], []
        for param in self.model.parameters():
            if param.requires_grad:
                (decay if param.ndim >= 2 else no_decay).append(param)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.hparams.lr,
        )
        total = self.hparams.schedule_steps or int(self.trainer.estimated_stepping_batches)
        total = max(total, 1)
        if self.hparams.schedule == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=self.hparams.lr,
                total_steps=total + 1,
                pct_start=max(self.hparams.warmup_steps / total, 0.05),
            )
        else:
            warmup, floor, cosine = (
                self.hparams.warmup_steps,
                self.hparams.min_lr_ratio,
                self.hparams.schedule == "cosine",
            )

            def factor(step: int) -> float:
                if step < warmup:
                    return (step + 1) / warmup
                if not cosine:
                    return 1.0
                progress = min((step - warmup) / max(total - warmup, 1), 1.0)
                return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ evaluation
    def _start_records(self) -> None:
        config = self.model.config()
        self._records = EvaluationRecords(
            self.spec,
            head_grid=self.model.head_grid() if config.get("detection3d_classes") else None,
            image_stride=config["image_stride"],
            score_threshold=self.hparams.score_threshold,
            det2d_score_threshold=self.hparams.det2d_score_threshold,
            max_detections=self.hparams.max_detections,
        )
        self._picture_batch = None

    def _eval_step(self, batch: dict[str, torch.Tensor], prefix: str) -> None:
        outputs = self.run_window(self.eval_model, batch)
        losses = self._losses(outputs, batch)
        self.log(f"{prefix}/loss", losses["total"], batch_size=batch["images"].shape[0], sync_dist=True)
        assert self._records is not None
        self._records.add_batch(outputs, batch)
        if self._picture_batch is None:
            self._picture_batch = {
                "batch": {k: v[:1].detach().cpu() for k, v in batch.items()},
                "outputs": {k: v[:1].detach().float().cpu() for k, v in outputs.items() if k != "state"},
            }

    def _end_records(self, prefix: str) -> dict[str, float]:
        assert self._records is not None
        self._records.gather()
        scalars, report = self._records.compute()
        self.log_dict({f"{prefix}/{k}": v for k, v in scalars.items()}, sync_dist=False)
        log_dir = self.trainer.log_dir if self._trainer is not None else None
        if self.trainer.is_global_zero and log_dir and not self.trainer.sanity_checking:
            out = Path(log_dir) / "metrics"
            out.mkdir(parents=True, exist_ok=True)
            name = f"{prefix}_epoch{self.current_epoch:03d}_step{self.global_step:06d}.json"
            (out / name).write_text(json.dumps(report, indent=1, default=float))
            if (
                self._picture_batch is not None
                and self.current_epoch % max(self.hparams.picture_every_n_epochs, 1) == 0
            ):
                self._log_picture(prefix, Path(log_dir))
        self._records = None
        return scalars

    def _log_picture(self, prefix: str, log_dir: Path) -> None:
        from perception.training.visualize import validation_picture

        try:
            picture = validation_picture(
                self._picture_batch["batch"],
                self._picture_batch["outputs"],
                self.spec,
                head_grid=self.model.head_grid() if self.spec.get("head_grid") else None,
                image_stride=self.model.config()["image_stride"],
                score_threshold=max(self.hparams.score_threshold, 0.3),
                camera_names=self.cameras,
            )
        except Exception as error:  # a picture must never stop training
            LOG.warning("validation picture failed: %s", error)
            return
        import cv2

        out = log_dir / "pictures"
        out.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out / f"{prefix}_epoch{self.current_epoch:03d}.png"), picture[..., ::-1])
        for logger in self.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):
                experiment.add_image(f"{prefix}/picture", picture, self.global_step, dataformats="HWC")

    def on_validation_epoch_start(self) -> None:
        self._start_records()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._end_records("val")

    def on_test_epoch_start(self) -> None:
        self._start_records()

    def test_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._end_records("test")

    # ------------------------------------------------------------------ prediction
    def on_predict_epoch_start(self) -> None:
        self._predict_chain = None

    def predict_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> list[dict[str, Any]]:
        """Per window and frame: decoded 3D boxes, 2D boxes per camera (training-image pixels), BEV maps (uint8).

        With ``data.eval_batch_size: 1`` the temporal state flows across consecutive windows of a clip, so every
        frame sees all earlier frames (as the deployed model does); larger batches restart it at each window."""
        from perception.models.decode import decode_bev_detections, decode_det2d

        b, t = batch["images"].shape[:2]
        clip_index = batch["clip_index"].cpu().tolist()
        frame_index = batch["frame_index"].cpu().tolist()
        prev_state = None
        if b == 1 and self._predict_chain is not None:  # consecutive windows of one clip: carry the temporal state
            clip, last_frame, state = self._predict_chain
            if clip == clip_index[0] and frame_index[0][0] == last_frame + 1:
                prev_state = state
        outputs = self.run_window(self.eval_model, batch, prev_state)
        self._predict_chain = (clip_index[0], frame_index[0][-1], outputs["state"][:, -1]) if b == 1 else None
        config = self.model.config()
        per_frame: list[dict[str, Any]] = [{} for _ in range(b * t)]
        if "heatmap" in outputs:
            flat = {k: outputs[k].flatten(0, 1).float() for k in ("heatmap", "offset", "z", "size", "yaw", "velocity")}
            for record, boxes in zip(
                per_frame,
                decode_bev_detections(
                    flat,
                    grid=self.model.head_grid(),
                    k=self.hparams.max_detections,
                    score_threshold=self.hparams.score_threshold,
                ),
            ):
                record["boxes3d"] = boxes
        if "segmentation" in outputs:
            maps = (torch.sigmoid(outputs["segmentation"].flatten(0, 1).float()) >= 0.5).to(torch.uint8).cpu().numpy()
            for record, bev in zip(per_frame, maps):
                record["bev"] = bev
        if "det2d_heatmap" in outputs:
            flat = {k: outputs[k].flatten(0, 1).float() for k in ("det2d_heatmap", "det2d_box")}
            for record, cameras in zip(
                per_frame,
                decode_det2d(
                    flat,
                    stride=config["image_stride"],
                    k=self.hparams.max_detections,
                    score_threshold=self.hparams.det2d_score_threshold,
                ),
            ):
                record["boxes2d"] = cameras
        for i, record in enumerate(per_frame):
            record["clip_index"] = clip_index[i // t]
            record["frame_index"] = frame_index[i // t][i % t]
        return per_frame

    # ------------------------------------------------------------------ export
    def on_fit_end(self) -> None:
        log_dir = self.trainer.log_dir
        if self.hparams.export_on_fit_end and self.trainer.is_global_zero and log_dir:
            from perception.training.checkpoint import export_checkpoint

            path = export_checkpoint(self, Path(log_dir) / "model.pt")
            LOG.info("exported %s", path)
