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


class WindowSampler:
    """Shuffled (or ordered) window indices for this rank; each epoch = a permutation drawn from (seed, epoch)."""

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
    ) -> None:
        self.num_windows, self.shuffle, self.seed, self.drop_last = num_windows, shuffle, seed, drop_last
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
            return self.num_windows // world
        return -(-self.num_windows // world)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rank, world = self._shard()
        skip = 0
        if self.position is not None:
            self.epoch, skip = self.position()
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.num_windows) if self.shuffle else np.arange(self.num_windows)
        seeds = rng.integers(0, 2**62, size=self.num_windows)
        total = len(self) * world
        if total > len(order):  # pad by wrapping so every rank gets the same count (DDP needs it)
            order = np.concatenate([order, order[: total - len(order)]])
        for position in order[:total][rank::world][skip:]:
            yield int(position), int(seeds[position])


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
