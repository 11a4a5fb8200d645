"""Epoch-seeded, rank-sharded samplers: a resumed or distributed run sees exactly the same samples and augmentation.

They shard by rank themselves (configs set ``trainer.use_distributed_sampler: false``) and yield
``(window index, augmentation seed)`` keys. The epoch comes from ``set_epoch`` or, when given, from ``position``
(a callable returning (epoch, samples of that epoch already consumed)), which is how ``ClipDataModule`` resumes
mid-epoch exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np


def _rank_and_world() -> tuple[int, int]:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:  # pragma: no cover
        pass
    return 0, 1


def check_repeat_threshold(threshold: float, source: str = "repeat-factor threshold") -> float:
    """The threshold of ``repeat_factors`` as a float, or a ValueError naming ``source``."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"{source}: expected a fraction of windows in (0, 1], found {threshold!r}")
    return float(threshold)


def repeat_factors(window_classes: Sequence[set[int]], threshold: float) -> np.ndarray:
    """Repeat-factor sampling (Gupta et al., LVIS, 2019; detectron2's RepeatFactorTrainingSampler) per window:
    a class in a fraction f_c of the windows gets r_c = max(1, sqrt(threshold / f_c)), a window the largest r_c of
    its classes (1 without any). Windows with rare classes are seen about r times per epoch, the rest once."""
    threshold = check_repeat_threshold(threshold)
    count = max(len(window_classes), 1)
    frequency: dict[int, float] = {}
    for present in window_classes:
        for c in present:
            frequency[c] = frequency.get(c, 0.0) + 1.0 / count
    per_class = {c: max(1.0, float(np.sqrt(threshold / f))) for c, f in frequency.items()}
    return np.array([max((per_class[c] for c in present), default=1.0) for present in window_classes])


class WindowSampler:
    """Shuffled (or ordered) window indices for this rank; each epoch = a permutation drawn from (seed, epoch).

    ``factors`` (one per window, >= 1; see ``repeat_factors``): an epoch holds floor(sum) samples, window i
    floor(factors[i]) or ceil(factors[i]) times (the fractions by systematic sampling over a fresh permutation each
    epoch, so the expected count is factors[i]), shuffled, each sample with its own augmentation seed."""

    def __init__(
        self,
        num_windows: int,
        *,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        position: Callable[[], tuple[int, int]] | None = None,
        factors: Sequence[float] | None = None,
    ) -> None:
        self.num_windows, self.shuffle, self.seed, self.drop_last = num_windows, shuffle, seed, drop_last
        self.factors = None if factors is None else np.asarray(factors, dtype=np.float64)
        if self.factors is not None and (len(self.factors) != num_windows or not (self.factors >= 1.0).all()):
            raise ValueError(f"WindowSampler: expected {num_windows} repeat factors >= 1, found {self.factors!r}")
        self.samples = num_windows if self.factors is None else int(np.floor(self.factors.sum() + 1e-9))
        self._rank, self._world = rank, world_size
        self.epoch = 0
        self.position = position

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _shard(self) -> tuple[int, int]:
        if self._rank is not None and self._world is not None:
            return self._rank, self._world
        return _rank_and_world()

    def __len__(self) -> int:
        _, world = self._shard()
        if self.drop_last:
            return self.samples // world
        return -(-self.samples // world)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rank, world = self._shard()
        skip = 0
        if self.position is not None:
            self.epoch, skip = self.position()
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.num_windows) if self.shuffle else np.arange(self.num_windows)
        seeds = rng.integers(0, 2**62, size=self.num_windows)[order]  # one augmentation seed per sample
        if self.factors is not None:  # floor(factor) copies each, the fractions drawn by systematic sampling
            whole = np.floor(self.factors).astype(np.int64)
            extra = self.samples - int(whole.sum())
            chosen = np.repeat(np.arange(self.num_windows), whole)
            if extra > 0:
                edges = np.cumsum((self.factors - whole)[order])
                points = (rng.uniform(0.0, 1.0) + np.arange(extra)) * (edges[-1] / extra)
                picked = order[np.minimum(np.searchsorted(edges, points, side="right"), self.num_windows - 1)]
                chosen = np.concatenate([chosen, picked])
            order = rng.permutation(chosen) if self.shuffle else np.sort(chosen)
            seeds = rng.integers(0, 2**62, size=len(order))  # a repeated window is augmented anew
        total = len(self) * world
        if total > len(order):  # pad by wrapping so every rank gets the same count (DDP needs it)
            order = np.concatenate([order, order[: total - len(order)]])
            seeds = np.concatenate([seeds, seeds[: total - len(seeds)]])
        for index, seed in list(zip(order[:total], seeds[:total]))[rank::world][skip:]:
            yield int(index), int(seed)


class ClipShardSampler:
    """Ordered windows of whole clips, clips dealt to ranks round-robin (prediction: one writer per clip)."""

    def __init__(self, window_clips: Sequence[int], rank: int | None = None, world_size: int | None = None) -> None:
        self.window_clips = list(window_clips)
        self._rank, self._world = rank, world_size

    def _indices(self) -> list[int]:
        rank, world = (
            (self._rank, self._world) if self._rank is not None and self._world is not None else _rank_and_world()
        )
        return [i for i, clip in enumerate(self.window_clips) if clip % world == rank]

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return len(self._indices())

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices())
