"""Training-step benchmark: PerceptionModule under Lightning vs a bare PyTorch loop (same model, batch, optimiser,
gradient clipping, LR schedule and EMA), plus the data-wait fraction of a real ClipDataModule with the frame cache.

    .venv/bin/python benchmarks/bench_train.py [--data runs/data/synth/train] [--steps 20] [--repeats 2]

Without --data (or if the folder is missing) it generates a few synthetic clips into a temporary folder.
Prints the figures side by side and writes benchmarks/results/train.md. Figures are measured, never assumed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_data(path: Path, clips: int, frames: int) -> Path:
    rig = REPO / "configs" / "rigs" / "nuscenes_like_6cam.yaml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "perception",
            "synth",
            "--rig",
            str(rig),
            "--clips",
            str(clips),
            "--frames",
            str(frames),
            "--out",
            str(path),
            "--quiet",
        ],
        check=True,
        cwd=REPO,
    )
    return path


def build_datamodule(data: Path, args: argparse.Namespace, cache: Path, workers: int):
    from perception.data.augment import BevAugmentation, ImageAugmentation
    from perception.data.datamodule import ClipDataModule
    from perception.data.spec import target_spec_for

    return ClipDataModule(
        train=str(data),
        window=args.window,
        batch_size=args.batch_size,
        num_workers=workers,
        cache_dir=str(cache),
        target_spec=target_spec_for(args.model),
        image_augmentation=ImageAugmentation(
            scale_range=(0.95, 1.1), color_jitter_prob=0.5, blur_prob=0.1, noise_prob=0.1, jpeg_prob=0.1
        ),
        bev_augmentation=BevAugmentation(rotation_deg=10.0, flip_y_prob=0.5),
    )


def new_module(args: argparse.Namespace):
    from perception.training.module import PerceptionModule

    torch.manual_seed(0)
    return PerceptionModule(
        model_name=args.model,
        lr=2e-3,
        ema_decay=0.99,
        schedule="cosine",
        warmup_steps=5,
        schedule_steps=args.steps + args.warmup,
        export_on_fit_end=False,
    )


def bare_loop(batches: list, args: argparse.Namespace) -> list[float]:
    """Seconds of each timed step of a plain PyTorch loop doing what PerceptionModule.training_step + Trainer do."""
    from perception.models.losses import compute_losses

    module = new_module(args)
    model, ema = module.model.train(), module.ema
    decay, no_decay = [], []
    for param in model.parameters():
        (decay if param.ndim >= 2 else no_decay).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=2e-3
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    times: list[float] = []
    last = time.perf_counter()
    for step in range(args.warmup + args.steps):
        batch = batches[step % len(batches)]
        outputs = module.run_window(model, batch)
        loss = compute_losses(outputs, batch, weights=None, dice_weight=0.0)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        scheduler.step()
        ema.update(model)
        _ = float(loss.detach())  # Lightning's progress/logging reads the loss too
        now = time.perf_counter()
        if step >= args.warmup:
            times.append(now - last)
        last = now
    return times


class _StepClock:
    """Callback: wall time of each step (previous batch end to this batch end) from batch ``warmup`` on."""

    def __init__(self, warmup: int) -> None:
        import lightning as L

        class Clock(L.Callback):
            def __init__(inner) -> None:
                inner.last, inner.times = None, []

            def on_train_batch_end(inner, trainer, module, outputs, batch, index) -> None:
                now = time.perf_counter()  # batch end to batch end: everything Lightning does per step
                if inner.last is not None and index >= warmup:
                    inner.times.append(now - inner.last)
                inner.last = now

        self.callback = Clock()


class _Batches:
    """The same pre-collated batches the bare loop uses, as an iterable with a length."""

    def __init__(self, batches: list, count: int) -> None:
        self.batches, self.count = batches, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        return (self.batches[i % len(self.batches)] for i in range(self.count))


def lightning_loop(batches: list, args: argparse.Namespace) -> list[float]:
    import lightning as L

    module = new_module(args)
    clock = _StepClock(args.warmup).callback
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=args.warmup + args.steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=5.0,
        callbacks=[clock],
        num_sanity_val_steps=0,
    )
    trainer.fit(module, train_dataloaders=_Batches(batches, args.warmup + args.steps))
    return clock.times


def data_wait(data: Path, args: argparse.Namespace, cache: Path) -> tuple[float, float]:
    """(data-wait fraction, s/step) of Lightning fit on the real datamodule (frame cache, workers)."""
    import lightning as L

    from perception.training.callbacks import DataWaitTimer

    datamodule = build_datamodule(data, args, cache, args.workers)
    module = new_module(args)
    timer = DataWaitTimer(skip_first=args.warmup)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=args.warmup + args.steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=5.0,
        callbacks=[timer],
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=datamodule)
    return timer.fraction, timer.total_s / max(timer.batches, 1)


def sample_times(data: Path, args: argparse.Namespace, cache: Path) -> tuple[float, float]:
    """(s per window from the frame cache, s per window decoding the videos with DriveClip.read_frame)."""
    datamodule = build_datamodule(data, args, cache, 0)
    datamodule.setup("fit")
    dataset = datamodule.datasets["train"]
    count = min(8, len(dataset))
    start = time.perf_counter()
    for i in range(count):
        dataset[(i, i)]
    cached = (time.perf_counter() - start) / count
    start = time.perf_counter()
    for i in range(count):
        clip_index, first = dataset.windows[i]
        for frame in range(first, first + args.window):
            dataset.clips[clip_index].read_frame(frame)
    decoded = (time.perf_counter() - start) / count
    return cached, decoded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "runs" / "data" / "synth" / "train")
    parser.add_argument("--model", default="bev_tiny")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--window", type=int, default=2)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "train.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import logging

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data if args.data.is_dir() else make_data(Path(scratch) / "clips", clips=3, frames=8)
        cache = Path(scratch) / "frame_cache"
        datamodule = build_datamodule(data, args, cache, 0)
        datamodule.setup("fit")
        loader = datamodule.train_dataloader()
        batches = [batch for _, batch in zip(range(4), loader)]
        bare, lit = [], []
        for _ in range(args.repeats):  # interleaved, so load changes on a shared machine hit both alike
            bare += bare_loop(batches, args)
            lit += lightning_loop(batches, args)
        # median over every timed step: robust to bursts of load from other processes on a shared machine
        bare_s, lit_s = statistics.median(bare), statistics.median(lit)
        overhead = lit_s / bare_s - 1.0
        wait_fraction, step_s = data_wait(data, args, cache)
        cached_s, decoded_s = sample_times(data, args, cache)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = [
        (
            "bare PyTorch loop, s/step (median)",
            f"{bare_s:.3f}",
            f"min {min(bare):.3f}, max {max(bare):.3f}, {len(bare)} steps",
        ),
        (
            "Lightning PerceptionModule, s/step (median)",
            f"{lit_s:.3f}",
            f"min {min(lit):.3f}, max {max(lit):.3f}, {len(lit)} steps",
        ),
        (
            "Lightning overhead (medians)",
            f"{100 * overhead:+.1f}%",
            f"min vs min {100 * (min(lit) / min(bare) - 1):+.1f}%; target <= 5%",
        ),
        (
            "data-wait fraction (ClipDataModule, frame cache)",
            f"{100 * wait_fraction:.1f}%",
            f"{args.workers} workers, {step_s:.3f} s/step incl. waiting; target <= 10%",
        ),
        ("window assembly from frame cache, s", f"{cached_s:.4f}", "incl. augmentation + target encoding"),
        ("decoding the window's videos instead, s", f"{decoded_s:.4f}", "DriveClip.read_frame, no augmentation"),
    ]
    header = (
        f"model {args.model}, batch {args.batch_size} x T={args.window} x 6 cameras, {args.steps} timed steps after "
        f"{args.warmup} warm-up, x{args.repeats} interleaved; torch {torch.__version__}, {args.threads} threads, "
        f"{platform.processor() or platform.machine()}, load average {load:.1f} at the end"
    )
    width = max(len(r[0]) for r in rows)
    print(header)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>8}  {note}")
    lines = [
        "# Training benchmark (`benchmarks/bench_train.py`)",
        "",
        header,
        "",
        f"Command: `.venv/bin/python benchmarks/bench_train.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        "| measure | value | note |",
        "|---|---|---|",
        *[f"| {n} | {v} | {note} |" for n, v, note in rows],
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
