"""Latency benchmark of any ONNX model (or any zero-argument callable) with one methodology.

Methodology (all times in ms, measured with ``time.perf_counter_ns``):
1. Warm-up: run until BOTH ``warmup_runs`` runs and ``warmup_s`` seconds have passed (not recorded).
2. Latency: one query at a time, back to back; keep going until BOTH ``min_runs`` runs and ``min_duration_s`` seconds
   have passed (or ``max_runs`` is hit). Every run is kept: min, mean, std, p50, p90, p99, p99.9 (nearest rank), max.
3. Throughput (separate pass): ``concurrency`` Python threads each call the same session (or callable) back to back for
   ``throughput_s`` seconds; throughput = completed runs * batch_size / elapsed seconds.
4. Optional operator profile: a separate profiled session (profiling perturbs timings, so it never feeds step 2).
No torch import here: a PyTorch eager row is timed through ``benchmark_callable`` with a callable the caller builds.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploy.budget import Budget, BudgetVerdict, evaluate_budget
from deploy.onnx_utils import (
    ModelInputError,
    check_dim_overrides,
    check_inputs,
    file_size_mb,
    input_specs,
    make_session,
    synthesize_inputs,
)
from deploy.stats import LatencyStats

Feeds = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class BenchConfig:
    """How to time: warm-up (runs AND seconds), latency (min runs AND seconds), throughput pass, threads, affinity."""

    warmup_runs: int = 10
    warmup_s: float = 1.0
    min_runs: int = 100
    min_duration_s: float = 5.0
    max_runs: int = 100_000
    throughput_s: float = 3.0
    concurrency: int = 1
    batch_size: int = 1
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    cpu_affinity: tuple[int, ...] | None = None
    provider: str = "cpu"
    seed: int = 0
    default_dim: int | None = None  # symbolic non-batch dims of synthetic inputs: None = never guessed
    profile_runs: int = 0
    profile_top_k: int = 15

    def __post_init__(self) -> None:
        for name in (
            "warmup_runs",
            "min_runs",
            "max_runs",
            "concurrency",
            "batch_size",
            "profile_runs",
            "intra_op_threads",
            "inter_op_threads",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"BenchConfig.{name}: expected >= 0, found {getattr(self, name)}")
        if self.default_dim is not None and self.default_dim < 1:
            raise ValueError(f"BenchConfig.default_dim: expected None or >= 1, found {self.default_dim}")
        if self.min_runs < 1 or self.max_runs < self.min_runs:
            raise ValueError(f"BenchConfig: expected 1 <= min_runs <= max_runs, found {self.min_runs}, {self.max_runs}")
        if self.concurrency < 1:
            raise ValueError(f"BenchConfig.concurrency: expected >= 1, found {self.concurrency}")

    def to_dict(self) -> dict:
        """Plain-JSON dict."""
        data = asdict(self)
        data["cpu_affinity"] = list(self.cpu_affinity) if self.cpu_affinity is not None else None
        return data


@dataclass(frozen=True)
class EnvironmentRecord:
    """Where the numbers were measured: CPU, cores, OS, onnxruntime, provider, threads, date (UTC)."""

    cpu_model: str
    logical_cores: int
    affinity_cores: list[int]
    os: str
    python: str
    numpy: str
    onnxruntime: str
    provider: str
    active_providers: list[str]
    intra_op_threads: int
    inter_op_threads: int
    date_utc: str

    def to_dict(self) -> dict:
        """Plain-JSON dict."""
        return asdict(self)


@dataclass
class BenchResult:
    """Timing of one variant: raw latencies (ms), summary, throughput, optional budget verdict and profile."""

    label: str
    latencies_ms: np.ndarray
    stats: LatencyStats | None
    throughput_per_s: float
    concurrency: int
    model_path: str | None = None
    file_size_mb: float | None = None
    accuracy: float | None = None
    accuracy_name: str | None = None
    verdict: BudgetVerdict | None = None
    profile: Any | None = None  # deploy.profiling.OperatorProfile
    environment: EnvironmentRecord | None = None
    config: BenchConfig | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict)
    input_shapes: dict[str, list[int]] = field(default_factory=dict)  # the exact shapes timed, per input
    input_source: str | None = None  # "synthetic" (seeded random) or "given" (--inputs / --clip)

    def to_dict(self, *, include_samples: bool = True) -> dict:
        """Plain-JSON dict; raw latencies rounded to 1 us when ``include_samples``."""
        data = {
            "label": self.label,
            "model_path": self.model_path,
            "input_shapes": self.input_shapes,
            "input_source": self.input_source,
            "file_size_mb": self.file_size_mb,
            "accuracy": self.accuracy,
            "accuracy_name": self.accuracy_name,
            "stats": self.stats.to_dict() if self.stats else None,
            "throughput_per_s": self.throughput_per_s if np.isfinite(self.throughput_per_s) else None,
            "concurrency": self.concurrency,
            "verdict": self.verdict.to_dict() if self.verdict else None,
            "profile": self.profile.to_dict() if self.profile is not None else None,
            "environment": self.environment.to_dict() if self.environment else None,
            "config": self.config.to_dict() if self.config else None,
            "error": self.error,
            "extra": self.extra,
        }
        if include_samples:
            data["latencies_ms"] = [round(float(v), 3) for v in self.latencies_ms]
        return data

    @classmethod
    def failed(cls, label: str, error: str, *, model_path: str | Path | None = None) -> BenchResult:
        """A table row for a variant that could not run (e.g. provider or kernel missing), with the reason."""
        size = file_size_mb(model_path) if model_path is not None and Path(model_path).is_file() else None
        return cls(
            label=label,
            latencies_ms=np.zeros(0),
            stats=None,
            throughput_per_s=float("nan"),
            concurrency=0,
            model_path=str(model_path) if model_path else None,
            file_size_mb=size,
            error=error,
        )


def cpu_model_name() -> str:
    """CPU model string from /proc/cpuinfo (Linux) or platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment_record(
    *, provider: str, active_providers: Sequence[str], intra_op_threads: int, inter_op_threads: int
) -> EnvironmentRecord:
    """Snapshot of the machine and runtime for a report."""
    import onnxruntime as ort

    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return EnvironmentRecord(
        cpu_model=cpu_model_name(),
        logical_cores=os.cpu_count() or 0,
        affinity_cores=affinity,
        os=platform.platform(),
        python=platform.python_version(),
        numpy=np.__version__,
        onnxruntime=ort.__version__,
        provider=provider,
        active_providers=list(active_providers),
        intra_op_threads=intra_op_threads,
        inter_op_threads=inter_op_threads,
        date_utc=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )


@contextlib.contextmanager
def cpu_affinity(cores: Sequence[int] | None) -> Iterator[None]:
    """Pin this thread (and threads it starts, e.g. onnxruntime's pool) to ``cores``; restore on exit."""
    if cores is None:
        yield
        return
    if not hasattr(os, "sched_setaffinity"):
        raise OSError("cpu_affinity: os.sched_setaffinity is not available on this platform")
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cores))
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


def measure_latencies(run_once: Callable[[int], Any], config: BenchConfig) -> np.ndarray:
    """Warm up, then time ``run_once(i)`` one call at a time; returns per-run latencies in ms (float64)."""
    index = 0
    start = time.perf_counter()
    while index < config.warmup_runs or time.perf_counter() - start < config.warmup_s:
        run_once(index)
        index += 1
    samples: list[int] = []
    start = time.perf_counter()
    while len(samples) < config.max_runs and (
        len(samples) < config.min_runs or time.perf_counter() - start < config.min_duration_s
    ):
        t0 = time.perf_counter_ns()
        run_once(index)
        samples.append(time.perf_counter_ns() - t0)
        index += 1
    return np.asarray(samples, dtype=np.float64) / 1e6


def measure_throughput(run_once: Callable[[int], Any], config: BenchConfig) -> float:
    """Runs per second * batch_size with ``concurrency`` threads calling back to back for ``throughput_s`` s."""
    if config.throughput_s <= 0:
        return float("nan")
    counts = [0] * config.concurrency
    errors: list[BaseException] = []
    stop = threading.Event()

    def worker(slot: int) -> None:
        try:
            while not stop.is_set():
                run_once(slot)
                counts[slot] += 1
        except BaseException as error:  # surfaced to the caller below
            errors.append(error)
            stop.set()

    threads = [threading.Thread(target=worker, args=(slot,), daemon=True) for slot in range(config.concurrency)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(config.throughput_s)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return sum(counts) * config.batch_size / elapsed


def benchmark_callable(
    fn: Callable[[], Any],
    *,
    label: str,
    config: BenchConfig = BenchConfig(),
    budget: Budget | None = None,
    accuracy: float | None = None,
    accuracy_name: str | None = None,
    file_size_mb: float | None = None,
) -> BenchResult:
    """Time any zero-argument callable (e.g. a PyTorch eager forward under no_grad; sync CUDA inside ``fn``)."""
    with cpu_affinity(config.cpu_affinity):
        latencies = measure_latencies(lambda _i: fn(), config)
        throughput = measure_throughput(lambda _i: fn(), config)
        environment = environment_record(
            provider="callable",
            active_providers=[],
            intra_op_threads=config.intra_op_threads,
            inter_op_threads=config.inter_op_threads,
        )
    stats = LatencyStats.from_samples(latencies)
    return BenchResult(
        label=label,
        latencies_ms=latencies,
        stats=stats,
        throughput_per_s=throughput,
        concurrency=config.concurrency,
        file_size_mb=file_size_mb,
        accuracy=accuracy,
        accuracy_name=accuracy_name,
        verdict=evaluate_budget(latencies, budget, stats) if budget else None,
        environment=environment,
        config=config,
    )


def benchmark_model(
    model_path: str | Path,
    *,
    label: str | None = None,
    config: BenchConfig = BenchConfig(),
    inputs: Feeds | Sequence[Feeds] | None = None,
    dim_overrides: Mapping[str, int] | None = None,
    budget: Budget | None = None,
    accuracy: float | None = None,
    accuracy_name: str | None = None,
) -> BenchResult:
    """Benchmark one ONNX file with onnxruntime; inputs: one feed dict, a list cycled run by run, or None
    (seeded synthetic inputs from the declared shapes, symbolic dims -> ``dim_overrides`` or ``config.default_dim``)."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"benchmark_model: model file not found: {model_path}")
    with cpu_affinity(config.cpu_affinity):
        session = make_session(
            model_path,
            provider=config.provider,
            intra_op_threads=config.intra_op_threads,
            inter_op_threads=config.inter_op_threads,
        )
        feed_list = _resolve_feeds(session, inputs, config, dim_overrides, source=str(model_path))
        shapes = {name: list(np.shape(value)) for name, value in feed_list[0].items()}
        output_names = [o.name for o in session.get_outputs()]

        def run_once(index: int) -> Any:
            return session.run(output_names, feed_list[index % len(feed_list)])

        latencies = measure_latencies(run_once, config)
        throughput = measure_throughput(run_once, config)
        environment = environment_record(
            provider=config.provider,
            active_providers=session.get_providers(),
            intra_op_threads=config.intra_op_threads,
            inter_op_threads=config.inter_op_threads,
        )
        profile = None
        if config.profile_runs > 0:
            from deploy.profiling import profile_operators

            profile = profile_operators(
                model_path, feeds=feed_list, runs=config.profile_runs, config=config, top_k=config.profile_top_k
            )
    stats = LatencyStats.from_samples(latencies)
    return BenchResult(
        label=label or model_path.stem,
        latencies_ms=latencies,
        stats=stats,
        throughput_per_s=throughput,
        concurrency=config.concurrency,
        model_path=str(model_path),
        file_size_mb=file_size_mb(model_path),
        accuracy=accuracy,
        accuracy_name=accuracy_name,
        verdict=evaluate_budget(latencies, budget, stats) if budget else None,
        profile=profile,
        environment=environment,
        config=config,
        input_shapes=shapes,
        input_source="synthetic" if inputs is None else "given",
    )


def _resolve_feeds(
    session,
    inputs: Feeds | Sequence[Feeds] | None,
    config: BenchConfig,
    dim_overrides: Mapping[str, int] | None,
    *,
    source: str,
) -> list[dict[str, np.ndarray]]:
    """Validated list of feed dicts for the session (synthetic when ``inputs`` is None: symbolic batch = the
    config's batch size, other symbolic dims from ``dim_overrides`` or ``config.default_dim``, never guessed)."""
    specs = input_specs(session)
    if inputs is None:
        check_dim_overrides(specs, dim_overrides, source=source)
        return [
            synthesize_inputs(
                specs,
                default_dim=config.default_dim,
                dim_overrides=dim_overrides,
                batch=max(config.batch_size, 1),
                seed=config.seed,
            )
        ]
    if dim_overrides:
        raise ModelInputError(f"{source}: --dim sets sizes of synthetic inputs; the given inputs have their own shapes")
    feed_list = [dict(inputs)] if isinstance(inputs, Mapping) else [dict(feed) for feed in inputs]
    if not feed_list:
        raise ValueError(f"{source}: inputs is an empty sequence; pass at least one feed dict or None")
    for index, feed in enumerate(feed_list):
        check_inputs(specs, feed, source=f"{source} inputs[{index}]")
    return feed_list


def benchmark_variants(
    variants: Mapping[str, str | Path | Callable[[], Any]],
    *,
    config: BenchConfig = BenchConfig(),
    inputs: Feeds | Sequence[Feeds] | None = None,
    budget: Budget | None = None,
    accuracy: Mapping[str, float] | None = None,
    accuracy_name: str | None = None,
    file_sizes_mb: Mapping[str, float] | None = None,
    progress: bool = False,
) -> list[BenchResult]:
    """One row per variant, in order (the first is the speed-up reference): an ONNX path is timed with onnxruntime,
    a zero-argument callable (e.g. PyTorch eager) with the same methodology; a variant that fails to load or run
    becomes an ERROR row carrying the reason instead of aborting the table."""
    accuracy = accuracy or {}
    results: list[BenchResult] = []
    items = list(variants.items())
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="benchmark", unit="variant")
    for label, variant in items:
        try:
            if callable(variant):
                result = benchmark_callable(
                    variant,
                    label=label,
                    config=config,
                    budget=budget,
                    accuracy=accuracy.get(label),
                    accuracy_name=accuracy_name,
                    file_size_mb=(file_sizes_mb or {}).get(label),
                )
            else:
                result = benchmark_model(
                    variant,
                    label=label,
                    config=config,
                    inputs=inputs,
                    budget=budget,
                    accuracy=accuracy.get(label),
                    accuracy_name=accuracy_name,
                )
        except Exception as error:
            model_path = None if callable(variant) else variant
            result = BenchResult.failed(label, f"{type(error).__name__}: {error}", model_path=model_path)
            result.accuracy, result.accuracy_name = accuracy.get(label), accuracy_name
        results.append(result)
    return results
