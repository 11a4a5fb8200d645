"""Latency histogram + CDF figure (one PNG, two panels, every variant overlaid, budget lines drawn); matplotlib Agg."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deploy.budget import Budget
from perception.atomic import atomic_write_bytes


def plot_latency(
    results: Sequence, path: str | Path, *, budget: Budget | None = None, title: str = "Latency per run"
) -> Path:
    """Write a PNG: left histogram of per-run latency (ms), right empirical CDF; deadline and p99 budget as lines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg canvas: no pyplot, no global backend switch
    from matplotlib.figure import Figure

    path = Path(path)
    figure = Figure(figsize=(12, 4.5), dpi=110)
    FigureCanvasAgg(figure)
    hist_axes, cdf_axes = figure.subplots(1, 2)
    usable = [r for r in results if r.stats is not None and len(r.latencies_ms) > 0]
    if usable:
        everything = np.concatenate([np.asarray(r.latencies_ms) for r in usable])
        low, high = float(everything.min()), float(everything.max())
        bins = np.linspace(low, high if high > low else low + 1e-3, 60)
    for result in usable:
        samples = np.sort(np.asarray(result.latencies_ms, dtype=np.float64))
        label = f"{result.label} (p50 {result.stats.p50_ms:.2f}, p99 {result.stats.p99_ms:.2f} ms)"
        hist_axes.hist(samples, bins=bins, alpha=0.45, label=label)
        cdf_axes.step(samples, np.arange(1, samples.size + 1) / samples.size, where="post", label=result.label)
    if budget is not None:
        lines = []
        if budget.effective_deadline_ms is not None:
            lines.append((budget.effective_deadline_ms, "deadline", "red", "--"))
        if budget.p99_ms is not None:
            lines.append((budget.p99_ms, "p99 budget", "darkorange", ":"))
        if budget.max_ms is not None and budget.max_ms != budget.effective_deadline_ms:
            lines.append((budget.max_ms, "max budget", "purple", "-."))
        if budget.mean_ms is not None:
            lines.append((budget.mean_ms, "mean budget", "green", "-."))
        for value, name, colour, style in lines:
            for axes in (hist_axes, cdf_axes):
                axes.axvline(
                    value,
                    color=colour,
                    linestyle=style,
                    linewidth=1.5,
                    label=f"{budget.name} {name} {value:g} ms" if axes is hist_axes else None,
                )
        if budget.p99_ms is not None:
            cdf_axes.axhline(0.99, color="darkorange", linestyle=":", linewidth=0.8)
    hist_axes.set_xlabel("latency per run (ms)")
    hist_axes.set_ylabel("runs")
    hist_axes.set_title(title)
    hist_axes.legend(fontsize=7, loc="upper right")
    cdf_axes.set_xlabel("latency per run (ms)")
    cdf_axes.set_ylabel("fraction of runs <= x")
    cdf_axes.set_ylim(0.0, 1.01)
    cdf_axes.set_title("Empirical CDF")
    cdf_axes.grid(alpha=0.3)
    cdf_axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def plot_run_quality(summary: dict, path: str | Path) -> Path:
    """Write a PNG of a replay's quality timeline (``deploy run`` summary with ``quality``): NDS and mAP per window
    (top), p99 sensor-to-output latency with the deadline and the deadline misses per window (bottom), cameras
    delivering on a second axis; injected faults in the title."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    windows = summary["quality"]["windows"]
    mid = np.array([(w["start_s"] + w["end_s"]) / 2 for w in windows])
    figure = Figure(figsize=(10, 6), dpi=110)
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.plot(mid, [w["NDS"] for w in windows], "o-", label="NDS")
    top.plot(mid, [w["mAP"] for w in windows], "s--", label="mAP")
    top.set_ylabel("score per window")
    cameras = top.twinx()
    cameras.step(mid, [w["cameras_delivering"] for w in windows], where="mid", color="grey", alpha=0.6)
    cameras.set_ylabel("cameras delivering (mean)")
    top.legend(loc="lower left")
    bottom.plot(mid, [w["latency_p99_ms"] for w in windows], "o-", label="p99 sensor-to-output")
    bottom.axhline(
        summary["deadline_ms"], color="red", linestyle=":", label=f"deadline {summary['deadline_ms']:.0f} ms"
    )
    misses = [w["deadline_misses"] for w in windows]
    bottom.bar(mid, misses, width=0.6 * (mid[1] - mid[0]) if len(mid) > 1 else 0.5, alpha=0.3, label="deadline misses")
    bottom.set_xlabel("clip time (s)")
    bottom.set_ylabel("ms / misses")
    bottom.legend(loc="upper left")
    faults = "; ".join(summary.get("faults") or []) or "no injected faults"
    quality = summary["quality"]
    figure.suptitle(
        f"{Path(summary['source']).name}: NDS {quality['NDS']:.3f} "
        f"(field of view {quality['field_of_view']['NDS']:.3f}), "
        f"{summary['deadline_misses']} deadline misses - {faults}",
        fontsize=9,
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(Path(path), buffer.getvalue())
