"""Scale-out: the same per-clip labelling under Lightning ``Trainer.predict`` with DDP, clips sharded across processes.

Each process builds its own teacher (``setup``), takes clips ``rank, rank + world, ...`` (no padding duplicates, so no
clip is labelled twice) and writes each clip's folder atomically exactly as the single-process job does, so the
outputs are identical. On CPU the process group uses gloo. Rank 0 merges the per-rank results into failures.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from autolabel.jobconfig import Job
from autolabel.outputs import lock_label_folder
from autolabel.pipeline import (
    ClipResult,
    JobSummary,
    clean_stale_partials,
    label_source,
    write_failures,
    write_job_config,
    write_job_dataset,
    write_job_record,
)  # fmt: skip
from autolabel.sources import Source, discover_sources
from perception.atomic import atomic_write_json

__all__ = ["AutolabelModule", "ClipIndexDataset", "ShardSampler", "run_job_distributed"]

RANKS_FOLDER = ".ranks"


class ClipIndexDataset(Dataset):
    """Item i is the index of source i (the module looks the source up; nothing heavy crosses processes)."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> int:
        return index


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...``: every clip exactly once over all ranks (no DistributedSampler
    padding)."""

    def __init__(self, count: int, rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"ShardSampler: rank {rank} outside 0..{world_size - 1}")
        self.indices = list(range(rank, count, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _collate(items: list[int]) -> list[int]:
    return items


class AutolabelModule(L.LightningModule):
    """Wraps the per-clip pipeline: ``predict_step`` labels the clips of one batch and returns their results.

    Every process builds its own ``job`` (the launcher and each rank parse the same command line)."""

    def __init__(self, *, sources: Sequence[Source], out_root: str, job: Job) -> None:
        super().__init__()
        self.sources = list(sources)
        self.out_root = Path(out_root)
        self.job = job

    def setup(self, stage: str) -> None:
        torch.set_num_threads(1)

    def predict_dataloader(self) -> DataLoader:
        sampler = ShardSampler(len(self.sources), self.trainer.global_rank, self.trainer.world_size)
        return DataLoader(ClipIndexDataset(len(self.sources)), batch_size=1, sampler=sampler, collate_fn=_collate)

    def predict_step(self, batch: list[int], batch_idx: int) -> list[dict[str, Any]]:
        results = []
        for index in batch:
            result = label_source(self.sources[index], self.out_root, job=self.job)
            results.append(
                {
                    "index": index,
                    "status": result.status,
                    "frames": result.frames,
                    "reason": result.reason,
                    "rank": self.trainer.global_rank,
                }
            )
        return results


def _wait_for(paths: list[Path], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(p.is_file() for p in paths):
        if time.monotonic() > deadline:
            missing = [str(p) for p in paths if not p.is_file()]
            raise TimeoutError(f"distributed autolabel: ranks did not report within {timeout_s:.0f} s: {missing}")
        time.sleep(0.05)


def run_job_distributed(
    input_root: str | os.PathLike,
    out_root: str | os.PathLike,
    job: Job,
    *,
    workers: int,
    progress: bool = True,
    timeout_s: float = 3600.0,
) -> JobSummary | None:
    """Label ``input_root`` with ``workers`` DDP processes (CPU, gloo); rank 0 returns the summary, others None."""
    out_root = Path(out_root)
    is_launcher = "LOCAL_RANK" not in os.environ  # Lightning's subprocess launcher re-runs this command per rank
    with contextlib.ExitStack() as stack:
        if is_launcher:  # rank 0 and the launcher are one process: it holds the lock while the ranks run
            stack.enter_context(lock_label_folder(out_root))
        return _run_distributed(input_root, out_root, job, is_launcher, workers, progress, timeout_s)


def _run_distributed(
    input_root: str | os.PathLike,
    out_root: Path,
    job: Job,
    is_launcher: bool,
    workers: int,
    progress: bool,
    timeout_s: float,
) -> JobSummary | None:
    sources = discover_sources(input_root, exclude=[out_root], image_mode=job.images.mode)
    if is_launcher:
        out_root.mkdir(parents=True, exist_ok=True)
        clean_stale_partials(out_root)
        write_job_record(input_root, out_root)
        write_job_config(out_root, job.config_yaml, job.config_sha256)
    module = AutolabelModule(sources=sources, out_root=str(out_root), job=job)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=workers,
        strategy="ddp",
        use_distributed_sampler=False,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
    )
    predictions = trainer.predict(module, return_predictions=True) or []
    rank, world = trainer.global_rank, trainer.world_size
    ranks = out_root / RANKS_FOLDER
    flat = [item for batch in predictions for item in batch]
    atomic_write_json(ranks / f"rank{rank}.json", flat)
    if rank != 0:
        return None
    files = [ranks / f"rank{r}.json" for r in range(world)]
    _wait_for(files, timeout_s)
    merged = sorted((item for path in files for item in json.loads(path.read_text())), key=lambda item: item["index"])
    for path in files:
        path.unlink(missing_ok=True)
    try:
        ranks.rmdir()
    except OSError:
        pass
    summary = JobSummary(
        [ClipResult(sources[item["index"]], item["status"], item["frames"], item["reason"]) for item in merged]
    )
    write_failures(out_root, summary.failed)
    summary.dataset = write_job_dataset(input_root, out_root, job, progress=progress)
    return summary
