"""``perception fit|validate|test|predict -c CONFIG [--section.key=value ...]`` (LightningCLI).

Config sections: ``model`` (``PerceptionModule`` args: ``model_name`` preset + ``model_overrides``, losses, optimiser,
EMA), ``data`` (``ClipDataModule`` args: clip folders per split, cameras, window T, batch, workers, cache,
augmentation), ``trainer`` (``lightning.Trainer`` args), ``checkpoint`` (``ModelCheckpoint``; ``save_last`` on and
``dirpath`` = ``<trainer.default_root_dir>/checkpoints`` unless set, so ``--ckpt_path last`` resumes the last run),
``data_wait`` (``DataWaitTimer``), ``predict_writer`` (``LabelWriter.output_dir``), ``seed_everything``.

``data.target_spec`` is linked from ``model.model_name`` + ``model.model_overrides`` (resolution, BEV grid, classes),
so editing the model section alone keeps data and model consistent. With ``trainer.logger: true`` (the default) runs
log to TensorBoard and CSV in ``<default_root_dir>/logs/version_N/`` next to the resolved ``config.yaml``, metrics
JSON, validation pictures and the exported ``model.pt``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from perception.data.datamodule import ClipDataModule
from perception.data.spec import target_spec_for
from perception.training.callbacks import DataWaitTimer, LabelWriter
from perception.training.module import PerceptionModule


def _spec_link(model_name: str, model_overrides: dict[str, Any] | None) -> dict[str, Any]:
    return target_spec_for(model_name, model_overrides)


class PerceptionCLI(LightningCLI):
    """LightningCLI with the data<-model link, the checkpoint/data-wait/prediction-writer callbacks and default
    loggers."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.link_arguments(("model.model_name", "model.model_overrides"), "data.target_spec", compute_fn=_spec_link)
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True})
        parser.add_lightning_class_args(DataWaitTimer, "data_wait")
        parser.add_lightning_class_args(LabelWriter, "predict_writer")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        root = Path(config.trainer.default_root_dir or ".")
        if config.checkpoint.dirpath is None:
            config.checkpoint.dirpath = str(root / "checkpoints")

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
        if config.get("logger") in (None, True):
            from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

            root = Path(config.get("default_root_dir") or ".")
            tensorboard = TensorBoardLogger(save_dir=str(root), name="logs", default_hp_metric=False)
            csv = CSVLogger(save_dir=tensorboard.log_dir, name="", version="csv")  # <log_dir>/csv/metrics.csv
            config["logger"] = [tensorboard, csv]
        return super()._instantiate_trainer(config, callbacks)


def run_cli(argv: list[str] | None = None) -> int:
    """Run a LightningCLI subcommand (``fit``, ``validate``, ``test``, ``predict``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = None if argv == sys.argv[1:] else argv
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    # frozen (pretrained) backbone stages run in eval mode on purpose: their batch-norm statistics stay fixed
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
    try:
        PerceptionCLI(
            PerceptionModule,
            ClipDataModule,
            args=args,
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"default_env": False},
            auto_configure_optimizers=False,
        )
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
