"""``deploy bench MODEL.onnx [MORE.onnx ...] [--budget configs/deploy/<budget>.yaml]``: parser and entry point.

Mount with ``add_bench_arguments(subparser)`` + ``run_bench(args)``, or call ``main_bench(argv) -> exit code``.
Exit status: 0 all variants within budget (or no budget), 3 a variant exceeded the budget (p99, max, mean or
deadline-miss rate), 2 bad arguments/unavailable provider, 1 unexpected error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deploy.bench import BenchConfig, BenchResult, benchmark_model
from deploy.budget import Budget, BudgetError, budget_exit_code
from deploy.onnx_utils import ModelInputError, ProviderUnavailableError

EXIT_USAGE = 2


def _parse_affinity(text: str) -> tuple[int, ...]:
    """'0,1' or '0-3' or '0-1,4' -> core ids."""
    cores: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            low, high = part.split("-", 1)
            cores.extend(range(int(low), int(high) + 1))
        elif part:
            cores.append(int(part))
    if not cores:
        raise argparse.ArgumentTypeError(f"--cpu-affinity: expected core ids like '0,1' or '0-3', found {text!r}")
    return tuple(cores)


def _parse_dims(text: str) -> tuple[str, int]:
    """'batch=4' -> ('batch', 4)."""
    name, _, value = text.partition("=")
    if not name or not value.isdigit():
        raise argparse.ArgumentTypeError(f"--dim: expected NAME=INT for a symbolic input dim, found {text!r}")
    return name, int(value)


def add_bench_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``deploy bench`` options to ``parser`` (a subcommand parser or a fresh one)."""
    defaults = BenchConfig()
    parser.add_argument("models", nargs="+", type=Path, help="ONNX files; the first row is the speed-up reference")
    parser.add_argument("--labels", nargs="+", default=None, help="row names (default: file stems)")
    parser.add_argument("--budget", type=Path, default=None, help="budget YAML, e.g. configs/deploy/rate_20hz.yaml")
    parser.add_argument("--provider", default=None, help="cpu | cuda | tensorrt (default: budget's, else cpu)")
    parser.add_argument("--intra-op-threads", type=int, default=None, help="0 = onnxruntime default")
    parser.add_argument("--inter-op-threads", type=int, default=None)
    parser.add_argument("--cpu-affinity", type=_parse_affinity, default=None, help="core ids, e.g. 0,1 or 0-3")
    parser.add_argument("--warmup-runs", type=int, default=defaults.warmup_runs)
    parser.add_argument("--warmup-s", type=float, default=defaults.warmup_s)
    parser.add_argument("--min-runs", type=int, default=defaults.min_runs)
    parser.add_argument("--min-duration-s", type=float, default=defaults.min_duration_s)
    parser.add_argument("--max-runs", type=int, default=defaults.max_runs)
    parser.add_argument("--throughput-s", type=float, default=defaults.throughput_s, help="0 disables the pass")
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency, help="threads in the throughput pass")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="items per run for throughput")
    parser.add_argument("--default-dim", type=int, default=defaults.default_dim, help="value for symbolic dims")
    parser.add_argument("--dim", type=_parse_dims, action="append", default=[], help="symbolic dim NAME=INT")
    parser.add_argument(
        "--inputs",
        type=Path,
        default=None,
        help="NPZ of real inputs {input name: array} (default: seeded synthetic inputs)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--profile-runs", type=int, default=defaults.profile_runs, help="0 = no operator profile")
    parser.add_argument("--out", type=Path, default=Path("bench_reports"), help="report folder")
    parser.add_argument("--stem", default="bench", help="report file name stem")
    parser.add_argument("--no-plot", action="store_true")
    return parser


def build_bench_parser() -> argparse.ArgumentParser:
    """Standalone parser for ``deploy bench``."""
    description = "Latency benchmark of ONNX models against a budget (exit 3 when over budget)."
    return add_bench_arguments(argparse.ArgumentParser(prog="deploy bench", description=description))


def config_from_args(args: argparse.Namespace, budget: Budget | None) -> BenchConfig:
    """BenchConfig from parsed args; threads/provider fall back to the budget's, then to defaults."""

    def pick(cli_value, budget_value, default):
        if cli_value is not None:
            return cli_value
        return budget_value if budget_value is not None else default

    return BenchConfig(
        warmup_runs=args.warmup_runs,
        warmup_s=args.warmup_s,
        min_runs=args.min_runs,
        min_duration_s=args.min_duration_s,
        max_runs=args.max_runs,
        throughput_s=args.throughput_s,
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        intra_op_threads=pick(args.intra_op_threads, budget and budget.intra_op_threads, 0),
        inter_op_threads=pick(args.inter_op_threads, budget and budget.inter_op_threads, 0),
        cpu_affinity=args.cpu_affinity,
        provider=pick(args.provider, budget and budget.provider, "cpu"),
        seed=args.seed,
        default_dim=args.default_dim,
        profile_runs=args.profile_runs,
    )


def run_bench(args: argparse.Namespace) -> int:
    """Benchmark every model, print the table, write reports; return the exit status (see module doc)."""
    from deploy.bench_report import format_table, write_reports

    try:
        budget = Budget.load(args.budget) if args.budget else None
    except BudgetError as error:
        print(f"deploy bench: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.labels and len(args.labels) != len(args.models):
        print(
            f"deploy bench: --labels: expected {len(args.models)} names (one per model), found {len(args.labels)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    config = config_from_args(args, budget)
    inputs = None
    if args.inputs is not None:
        try:
            with np.load(args.inputs) as archive:
                inputs = {name: archive[name] for name in archive.files}
        except (OSError, ValueError) as error:
            print(f"deploy bench: --inputs {args.inputs}: expected an NPZ of input arrays: {error}", file=sys.stderr)
            return EXIT_USAGE
    labels = args.labels or [path.stem for path in args.models]
    results: list[BenchResult] = []
    for label, path in zip(labels, args.models):
        print(f"benchmarking {label} ({path}) on {config.provider} ...", file=sys.stderr)
        try:
            results.append(
                benchmark_model(
                    path, label=label, config=config, budget=budget, inputs=inputs, dim_overrides=dict(args.dim)
                )
            )
        except (ProviderUnavailableError, FileNotFoundError, ModelInputError) as error:
            print(f"deploy bench: {error}", file=sys.stderr)
            return EXIT_USAGE
    paths = write_reports(results, args.out, budget=budget, stem=args.stem, plot=not args.no_plot)
    print(format_table(results))
    for result in results:
        if result.verdict is not None and not result.verdict.passed:
            print(f"{result.label}: over budget {result.verdict.budget}: {'; '.join(result.verdict.failures())}")
    print(f"reports: {paths.markdown} {paths.json} {paths.plot or ''}".rstrip())
    return budget_exit_code([r.verdict for r in results])


def main_bench(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run ``deploy bench``; returns the exit status."""
    return run_bench(build_bench_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main_bench())
