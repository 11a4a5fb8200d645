"""Side-by-side table (rows = variants) and Markdown / JSON / PNG reports for benchmark results."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.bench import BenchResult
from deploy.budget import Budget
from perception.atomic import atomic_write_bytes

TABLE_COLUMNS: tuple[str, ...] = (
    "variant",
    "size_mb",
    "accuracy",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "mean_ms",
    "throughput_per_s",
    "speedup",
    "budget",
)


@dataclass(frozen=True)
class ReportPaths:
    """Files written by ``write_reports``."""

    markdown: Path
    json: Path
    plot: Path | None


def comparison_rows(results: Sequence[BenchResult]) -> list[dict]:
    """One dict per variant with TABLE_COLUMNS; speed-up = first row's p50 / this row's p50."""
    reference = next((r.stats.p50_ms for r in results if r.stats is not None), None)
    rows = []
    for result in results:
        verdict = "-" if result.verdict is None else ("PASS" if result.verdict.passed else "FAIL")
        if result.stats is None:
            rows.append(
                {column: None for column in TABLE_COLUMNS}
                | {
                    "variant": result.label,
                    "size_mb": result.file_size_mb,
                    "accuracy": result.accuracy,
                    "budget": "ERROR",
                }
            )
            continue
        rows.append(
            {
                "variant": result.label,
                "size_mb": result.file_size_mb,
                "accuracy": result.accuracy,
                "p50_ms": result.stats.p50_ms,
                "p90_ms": result.stats.p90_ms,
                "p99_ms": result.stats.p99_ms,
                "max_ms": result.stats.max_ms,
                "mean_ms": result.stats.mean_ms,
                "throughput_per_s": result.throughput_per_s if math.isfinite(result.throughput_per_s) else None,
                "speedup": reference / result.stats.p50_ms if reference and result.stats.p50_ms > 0 else None,
                "budget": verdict,
            }
        )
    return rows


def _cell(value, digits: int = 2) -> str:
    """Format a table cell: '-' for None/NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(results: Sequence[BenchResult]) -> str:
    """Markdown table of the variants (also readable in a terminal)."""
    accuracy_name = next((r.accuracy_name for r in results if r.accuracy_name), "accuracy")
    header = [
        "variant",
        "size MB",
        accuracy_name,
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "mean ms",
        "throughput /s",
        "speed-up",
        "budget",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in comparison_rows(results):
        cells = [
            row["variant"],
            _cell(row["size_mb"]),
            _cell(row["accuracy"], 4),
            _cell(row["p50_ms"]),
            _cell(row["p90_ms"]),
            _cell(row["p99_ms"]),
            _cell(row["max_ms"]),
            _cell(row["mean_ms"]),
            _cell(row["throughput_per_s"], 1),
            _cell(row["speedup"]) + ("x" if row["speedup"] else ""),
            row["budget"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_input_shapes(result: BenchResult) -> str:
    """``image [1, 3, 224, 224] float inputs (synthetic, seeded)``: the exact shapes a row was timed with."""
    shapes = ", ".join(f"{name} {shape}" for name, shape in result.input_shapes.items())
    source = {"synthetic": "synthetic, seeded", "given": "given: --inputs / --clip"}.get(result.input_source or "", "?")
    return f"{shapes} ({source})"


def format_markdown(
    results: Sequence[BenchResult],
    *,
    budget: Budget | None = None,
    title: str = "Latency benchmark",
    plot_name: str | None = None,
) -> str:
    """Full Markdown report: environment, methodology, table, budget checks, operator profiles."""
    lines = [f"# {title}", ""]
    environment = next(
        (r.environment for r in results if r.environment and r.environment.provider != "callable"),
        next((r.environment for r in results if r.environment), None),
    )
    if environment is not None:
        lines += ["## Environment", ""]
        for key, value in environment.to_dict().items():
            lines.append(f"- {key}: {value}")
        lines.append("")
    config = next((r.config for r in results if r.config), None)
    if config is not None:
        lines += [
            "## Methodology",
            "",
            f"Warm-up until {config.warmup_runs} runs and {config.warmup_s:g} s; then one query at a time until "
            f"{config.min_runs} runs and {config.min_duration_s:g} s (cap {config.max_runs}). Every run counts "
            f"(no outlier clipping); percentiles are nearest-rank observed samples. Throughput: {config.concurrency} "
            f"thread(s) calling back to back for {config.throughput_s:g} s, x batch {config.batch_size}. "
            f"Speed-up = first row p50 / row p50.",
            "",
        ]
    lines += ["## Results", "", format_table(results), ""]
    shaped = [r for r in results if r.input_shapes]
    if shaped:
        lines += ["## Inputs", ""]
        lines += [f"- **{r.label}**: {format_input_shapes(r)}" for r in shaped]
        lines.append("")
    if plot_name:
        lines += [f"![latency histogram and CDF]({plot_name})", ""]
    if budget is not None:
        lines += [f"## Budget `{budget.name}`", "", f"Limits: `{json.dumps(budget.to_dict())}`", ""]
        for result in results:
            if result.verdict is None:
                continue
            state = "PASS" if result.verdict.passed else "FAIL"
            checks = ", ".join(
                f"{c.name} {c.measured:.4g} (limit {c.limit:.4g}) {'ok' if c.passed else 'FAIL'}"
                for c in result.verdict.checks
            )
            lines.append(f"- **{result.label}**: {state}: {checks}")
        lines.append("")
    for result in results:
        if result.error:
            lines += [f"- **{result.label}** could not run: {result.error}"]
        if result.profile is None:
            continue
        profile = result.profile
        lines += [
            f"## Operator profile: {result.label}",
            "",
            f"{profile.runs} profiled runs, kernel time {profile.total_kernel_ms / profile.runs:.2f} ms/run, "
            f"kernels per provider {profile.providers}",
            "",
            "| op type | ms/run | % | calls (all runs) |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {row.key} | {row.per_run_ms:.3f} | {row.percent:.1f} | {row.calls} |" for row in profile.by_op_type
        ]
        lines += ["", "| node | op type | ms/run | % |", "|---|---|---|---|"]
        lines += [
            f"| `{row.key}` | {row.op_type} | {row.per_run_ms:.3f} | {row.percent:.1f} |" for row in profile.by_node
        ]
        lines.append("")
    return "\n".join(lines)


def write_reports(
    results: Sequence[BenchResult],
    out_dir: str | Path,
    *,
    budget: Budget | None = None,
    stem: str = "bench",
    title: str = "Latency benchmark",
    plot: bool = True,
    include_samples: bool = True,
) -> ReportPaths:
    """Write ``<stem>.md``, ``<stem>.json`` and ``<stem>_latency.png`` into ``out_dir`` (atomic writes)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_path = None
    if plot and any(r.stats is not None for r in results):
        from deploy.plots import plot_latency

        plot_path = plot_latency(
            [r for r in results if r.stats is not None], out_dir / f"{stem}_latency.png", budget=budget, title=title
        )
    markdown_path = out_dir / f"{stem}.md"
    json_path = out_dir / f"{stem}.json"
    atomic_write_bytes(
        markdown_path,
        format_markdown(results, budget=budget, title=title, plot_name=plot_path.name if plot_path else None).encode(),
    )
    payload = {
        "title": title,
        "budget": budget.to_dict() if budget else None,
        "table": comparison_rows(results),
        "results": [r.to_dict(include_samples=include_samples) for r in results],
    }
    atomic_write_bytes(json_path, json.dumps(_json_safe(payload), indent=1, allow_nan=False).encode())
    return ReportPaths(markdown=markdown_path, json=json_path, plot=plot_path)


def _json_safe(value):
    """Replace non-finite floats with None (strict JSON) recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value
