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

import os
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


KEEP_BF16_ENV = "FLEETVISION_CPU_BF16"  # "keep": train in bf16-mixed even on a CPU without bf16 instructions


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether the CPU computes bf16 in hardware: x86 AVX512-BF16 or AMX-BF16, Arm's BF16 extension (the flags of
    ``/proc/cpuinfo``, or the ``cpuinfo`` text given); None where that cannot be read (not Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return None
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    if not flags:
        return None
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def cpu_precision(precision: Any, accelerator: Any, cpuinfo: str | None = None) -> tuple[Any, str | None]:
    """``trainer.precision`` to train with, and why it changed (None: unchanged). Mixed bf16 on a CPU without bf16
    instructions is emulated and slower than float32 (training steps of the student recipe: 1.2x slower with
    AVX-512, 6.8x with AVX2 only; ``benchmarks/RESULTS.md``), so there it becomes ``32-true`` unless
    ``FLEETVISION_CPU_BF16=keep``. Numbers differ between CPUs either way (their kernels round differently)."""
    import torch

    on_cpu = accelerator == "cpu" or (accelerator in (None, "auto") and not torch.cuda.is_available())
    if str(precision) not in ("bf16-mixed", "bf16") or not on_cpu or os.environ.get(KEEP_BF16_ENV) == "keep":
        return precision, None
    if cpu_has_native_bf16(cpuinfo) is not False:
        return precision, None
    return "32-true", (
        f"trainer.precision {precision} -> 32-true: this CPU has no bf16 instructions (AVX512-BF16, AMX-BF16 or Arm "
        f"BF16), where emulated bf16 runs slower than float32; {KEEP_BF16_ENV}=keep keeps {precision}"
    )


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
        precision, why = cpu_precision(config.trainer.precision, config.trainer.accelerator)
        if why is not None:
            config.trainer.precision = precision  # the saved config.yaml records what ran
            print(f"perception: {why}", file=sys.stderr)
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
