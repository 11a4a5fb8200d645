"""Latency statistics (milliseconds): nearest-rank percentiles over every run, no outlier clipping."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)


def nearest_rank(sorted_ms: np.ndarray, percent: float) -> float:
    """Nearest-rank percentile of ascending samples: the smallest observed value with >= percent% at or below it."""
    if sorted_ms.size == 0:
        raise ValueError("nearest_rank: no samples")
    rank = max(1, math.ceil(round(percent * sorted_ms.size / 100.0, 9)))  # round: 99.9% of 1000 is rank 999
    return float(sorted_ms[min(rank, sorted_ms.size) - 1])


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-run latencies in ms; percentiles are observed samples (nearest rank)."""

    runs: int
    min_ms: float
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    @classmethod
    def from_samples(cls, latencies_ms: np.ndarray) -> LatencyStats:
        """Compute the summary from raw per-run latencies (ms); every sample counts (no sigma clipping)."""
        samples = np.sort(np.asarray(latencies_ms, dtype=np.float64).ravel())
        if samples.size == 0:
            raise ValueError("LatencyStats.from_samples: no latency samples")
        if not np.all(np.isfinite(samples)):
            raise ValueError("LatencyStats.from_samples: non-finite latency samples")
        return cls(
            runs=int(samples.size),
            min_ms=float(samples[0]),
            mean_ms=float(samples.mean()),
            std_ms=float(samples.std(ddof=1)) if samples.size > 1 else 0.0,
            p50_ms=nearest_rank(samples, 50.0),
            p90_ms=nearest_rank(samples, 90.0),
            p99_ms=nearest_rank(samples, 99.0),
            p999_ms=nearest_rank(samples, 99.9),
            max_ms=float(samples[-1]),
        )

    def to_dict(self) -> dict[str, float]:
        """Plain-JSON dict."""
        return asdict(self)


def miss_rate(latencies_ms: np.ndarray, deadline_ms: float) -> float:
    """Fraction of runs strictly slower than ``deadline_ms`` (0..1)."""
    samples = np.asarray(latencies_ms, dtype=np.float64).ravel()
    if samples.size == 0:
        raise ValueError("miss_rate: no latency samples")
    return float(np.count_nonzero(samples > deadline_ms) / samples.size)
