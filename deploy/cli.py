"""The ``deploy`` command: export, parity, quantize, bench, run.

  deploy export CKPT --out model.onnx [--budget configs/deploy/rate_20hz.yaml] [--top-k 100] [--parity-clip CLIP]
                [--bake-rig [--dynamic-fallback]] [--threads N]
  deploy parity model.onnx CKPT --clip CLIP [--frames 4] [--threads N]
  deploy quantize model.onnx --calib CLIPS [--method minmax|entropy|percentile] [--keep-float NODE_OR_PREFIX ...]
                  [--fp16] [--eval CLIPS]
  deploy bench MODEL.onnx [MORE.onnx ...] [--budget YAML] [--checkpoint CKPT] [--clip CLIP | --inputs x.npz]
  deploy run model.onnx --clip CLIP [--rate 20] [--realtime|--fast] [--out DIR] [--video out.mp4]
             [--fault dead:CAMERA@SECONDS] [--fault lost:PROB[:CAMERA]] [--fault late:PROB:MS[:CAMERA]]
             [--threads N] [--priority normal|high|realtime] [--cores 0,1]
  deploy run model.onnx --camera front=/dev/video0 ... --duration 60

Exit status (``perception.errors``, the same for the three tools): 0 success; 1 the run or a check failed (parity,
accuracy below 99% with --require-99, ``run`` processed no frame or could not write its video, an unexpected error);
2 bad arguments or input (missing, empty, truncated or non-ONNX model, model without fleetvision metadata for
``run``, bad budget); 3 a latency budget was exceeded. --debug prints the traceback of an unexpected error.
Torch is imported only by export, parity and ``bench --checkpoint``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from perception.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, cli_boundary

EXIT_USAGE, EXIT_BUDGET = EXIT_BAD_INPUT, EXIT_PARTIAL


def _load_budget(path: Path | None):
    from deploy.budget import Budget

    return Budget.load(path) if path is not None else None


def _budget_dict(budget) -> dict | None:
    return None if budget is None else budget.to_dict()


def _error(command: str, error: BaseException) -> int:
    print(f"deploy {command}: {error}", file=sys.stderr)
    return EXIT_USAGE


def _add_torch_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads", type=int, default=None, help="PyTorch CPU threads (default: PyTorch's own, one per core)"
    )


def _set_torch_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------- export / parity
def _add_export(sub) -> None:
    parser = sub.add_parser("export", help="checkpoint -> self-describing ONNX (decoding in the graph)")
    parser.add_argument("checkpoint", type=Path, help="fleetvision checkpoint (.pt / .ckpt) to export")
    parser.add_argument("--out", type=Path, required=True, help="output .onnx")
    parser.add_argument("--budget", type=Path, default=None, help="latency budget YAML stored in the metadata")
    parser.add_argument("--top-k", type=int, default=100, help="3D detection slots")
    parser.add_argument("--top-k-2d", type=int, default=50, help="2D detection slots per camera")
    parser.add_argument(
        "--rig", type=Path, default=None, help="rig.yaml or clip folder (default: the checkpoint's rig)"
    )
    parser.add_argument("--simplify", action="store_true", help="run onnxslim (if installed) on the graph")
    parser.add_argument(
        "--bake-rig",
        action="store_true",
        help="evaluate the view transform once for the rig: constant gathers instead of per-frame camera "
        "projection (faster; the model then runs only on this rig and ignores its intrinsics/distortion inputs)",
    )
    parser.add_argument(
        "--dynamic-fallback",
        action="store_true",
        help="with --bake-rig: also write MODEL.dynamic.onnx, which the runtime runs for clips of another rig",
    )
    parser.add_argument("--parity-clip", type=Path, default=None, help="check ORT vs PyTorch on this clip afterwards")
    parser.add_argument("--parity-frames", type=int, default=4, help="frames of --parity-clip compared")
    _add_torch_threads(parser)
    parser.set_defaults(handler=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from deploy.budget import BudgetError
    from deploy.export import ExportError
    from deploy.export.parity import parity_check
    from deploy.export.to_onnx import export_checkpoint_to_onnx

    _set_torch_threads(args.threads)
    try:
        budget = _load_budget(args.budget)
        result, _, graph = export_checkpoint_to_onnx(
            args.checkpoint,
            args.out,
            rig_path=args.rig,
            top_k=args.top_k,
            top_k_2d=args.top_k_2d,
            budget=_budget_dict(budget),
            simplify=args.simplify,
            bake_rig=args.bake_rig,
            dynamic_fallback=args.dynamic_fallback,
        )
    except (ExportError, BudgetError, FileNotFoundError, ValueError) as error:
        return _error("export", error)
    meta = result.metadata
    print(
        f"wrote {result.path} ({result.size_mb:.1f} MB, {result.exporter}, {result.seconds:.1f} s): cameras "
        f"{meta['cameras']} at {meta['image_size'][1]}x{meta['image_size'][0]}, outputs "
        f"{[o['name'] for o in meta['outputs']]}"
    )
    view = meta["view_transform"]
    if view["mode"] == "baked":
        print(
            f"view transform baked for rig sha256 {view['rig_sha256'][:12]}: {view['statistics']['taps_per_frame']} "
            f"taps per frame; baked vs dynamic raw outputs within {view['parity']['worst_relative']:.2g} of scale "
            f"(tolerance {view['parity']['tolerance']:g})"
        )
    for note in result.notes:
        print(f"note: {note}")
    if args.parity_clip is not None:
        report = parity_check(result.path, graph, args.parity_clip, frames=args.parity_frames)
        print(report.format())
        return EXIT_OK if report.passed else EXIT_FAILED
    return EXIT_OK


def _add_parity(sub) -> None:
    parser = sub.add_parser("parity", help="ONNX Runtime vs PyTorch on real clip frames (state carried)")
    parser.add_argument("model", type=Path, help="exported .onnx")
    parser.add_argument("checkpoint", type=Path, help="the checkpoint it was exported from")
    parser.add_argument("--clip", type=Path, required=True, help="clip whose frames feed both")
    parser.add_argument("--frames", type=int, default=4, help="consecutive frames compared (temporal state carried)")
    parser.add_argument("--atol", type=float, default=1e-3, help="absolute tolerance per output value")
    parser.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance per output value")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    _add_torch_threads(parser)
    parser.set_defaults(handler=_cmd_parity)


def _cmd_parity(args: argparse.Namespace) -> int:
    from deploy.export import ExportError
    from deploy.export.checkpoint import load_checkpoint
    from deploy.export.graph import DeployGraph
    from deploy.export.parity import parity_check
    from deploy.metadata import MetadataError, read_metadata
    from deploy.runtime.baked_rig import is_baked
    from perception.rig import Rig

    _set_torch_threads(args.threads)
    try:
        metadata = read_metadata(args.model)
        model, _ = load_checkpoint(args.checkpoint)
        bake_for = None
        if is_baked(metadata):  # compare with the PyTorch graph baked for the same rig
            bake_for = (Rig.from_dict(metadata["rig"], source=f"{args.model}: metadata 'rig'"), metadata["cameras"])
        graph = DeployGraph(
            model, top_k=metadata.get("top_k") or 100, top_k_2d=metadata.get("top_k_2d") or 50, bake_for=bake_for
        ).eval()
        report = parity_check(args.model, graph, args.clip, frames=args.frames, atol=args.atol, rtol=args.rtol)
    except (ExportError, MetadataError, FileNotFoundError, ValueError) as error:
        return _error("parity", error)
    print(report.format())
    if args.json is not None:
        from perception.atomic import atomic_write_json

        atomic_write_json(args.json, report.to_dict())
    return EXIT_OK if report.passed else EXIT_FAILED


# ---------------------------------------------------------------------------------------------- quantize
def _add_quantize(sub) -> None:
    parser = sub.add_parser("quantize", help="static INT8 QDQ on real clip frames (+ FP32 vs INT8 task metrics)")
    parser.add_argument("model", type=Path, help="FP32 .onnx from 'deploy export'")
    parser.add_argument("--calib", type=Path, nargs="+", required=True, help="clip folders or folders of clips")
    parser.add_argument(
        "--method",
        choices=("minmax", "entropy", "percentile"),
        default="minmax",
        help="activation range calibration (onnxruntime's CalibrationMethod)",
    )
    parser.add_argument(
        "--keep-float",
        nargs="*",
        default=[],
        metavar="NODE_OR_PREFIX",
        help="node names/prefixes or weight prefixes (e.g. model.detection3d_head) kept in float",
    )
    parser.add_argument(
        "--quantize-heads",
        action="store_true",
        help="also quantize the BEV detection head and the last conv of every head (kept float by default)",
    )
    parser.add_argument("--calib-frames", type=int, default=16, help="frames per calibration clip")
    parser.add_argument("--out", type=Path, default=None, help="default: MODEL.int8.onnx")
    parser.add_argument("--fp16", action="store_true", help="also write MODEL.fp16.onnx beside --out (GPU targets)")
    parser.add_argument("--eval", type=Path, nargs="+", default=None, help="held-out clips for the accuracy report")
    parser.add_argument("--eval-frames", type=int, default=None, help="frames per evaluation clip (default all)")
    parser.add_argument("--report", type=Path, default=None, help="report stem (default: MODEL.int8.accuracy)")
    parser.add_argument("--sensitivity-groups", type=int, default=6, help="node groups ranked when below 99%%")
    parser.add_argument("--require-99", action="store_true", help="exit 1 when INT8 keeps < 99%% of FP32 accuracy")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_cmd_quantize)


def _cmd_quantize(args: argparse.Namespace) -> int:
    from deploy.clip_feeds import clip_feeds, resolve_clips
    from deploy.metadata import MetadataError, copy_metadata
    from deploy.quantize import QuantizeError
    from deploy.quantize.exported_model import quantize_model
    from deploy.quantize.fp16 import convert_fp16
    from deploy.quantize.task_accuracy import compare_accuracy, write_accuracy_report

    out = args.out or args.model.with_name(args.model.stem + ".int8.onnx")
    try:
        outcome = quantize_model(
            args.model,
            out,
            calib_clips=args.calib,
            method=args.method,
            keep_float=args.keep_float,
            frames_per_clip=args.calib_frames,
            keep_heads_float=not args.quantize_heads,
            progress=not args.no_progress,
        )
    except (MetadataError, QuantizeError, FileNotFoundError, ValueError) as error:
        return _error("quantize", error)
    print(
        f"wrote {outcome.path} ({outcome.method}, {outcome.calibration_frames} calibration frames, "
        f"{len(outcome.nodes_kept_float)} nodes kept float, {outcome.seconds:.1f} s)"
    )
    if args.fp16:
        fp16 = out.with_name(args.model.stem + ".fp16.onnx")
        convert_fp16(args.model, fp16)
        copy_metadata(args.model, fp16, update={"quantization": {"format": "FP16", "source": str(args.model)}})
        print(f"wrote {fp16}")
    if args.eval is None:
        return EXIT_OK
    calib = clip_feeds(
        args.model, resolve_clips(args.calib), frames_per_clip=min(args.calib_frames, 8), progress=not args.no_progress
    )
    report = compare_accuracy(
        args.model,
        out,
        args.eval,
        max_frames=args.eval_frames,
        sensitivity_calib=calib,
        sensitivity_groups=args.sensitivity_groups,
        sensitivity_method=args.method,
        progress=not args.no_progress,
    )
    stem = args.report or out.with_name(out.stem + ".accuracy")
    json_path, md_path = write_accuracy_report(report, stem)
    print(report.markdown())
    print(f"reports: {json_path} {md_path}")
    return EXIT_FAILED if args.require_99 and not report.meets_mlperf_99 else EXIT_OK


# ---------------------------------------------------------------------------------------------- bench
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


def _add_bench(sub) -> None:
    from deploy.bench import BenchConfig

    defaults = BenchConfig()
    parser = sub.add_parser(
        "bench",
        help="latency of ONNX models (and PyTorch eager) against a budget",
        description="Latency of ONNX models against a budget. Inputs: --inputs NPZ, else real frames of --clip "
        "(models with fleetvision metadata), else seeded synthetic inputs from the declared shapes. "
        "Exit 3 when a model exceeds the budget.",
    )
    parser.add_argument("models", nargs="+", type=Path, help="ONNX files; the first row is the speed-up reference")
    parser.add_argument("--labels", nargs="+", default=None, help="row names (default: file stems)")
    parser.add_argument("--budget", type=Path, default=None, help="budget YAML, e.g. configs/deploy/rate_20hz.yaml")
    parser.add_argument("--provider", default=None, help="cpu | cuda | tensorrt (default: budget's, else cpu)")
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        default=None,
        help="threads per model run, onnxruntime and the PyTorch row (default: budget's, else the runtimes' own)",
    )
    parser.add_argument("--inter-op-threads", type=int, default=None, help="onnxruntime threads across graph branches")
    parser.add_argument("--cpu-affinity", type=_parse_affinity, default=None, help="core ids, e.g. 0,1 or 0-3")
    parser.add_argument(
        "--warmup-runs", type=int, default=defaults.warmup_runs, help="untimed runs first (and --warmup-s)"
    )
    parser.add_argument("--warmup-s", type=float, default=defaults.warmup_s, help="untimed seconds first (and runs)")
    parser.add_argument("--min-runs", type=int, default=defaults.min_runs, help="timed runs at least (and seconds)")
    parser.add_argument(
        "--min-duration-s", type=float, default=defaults.min_duration_s, help="timed seconds at least (and runs)"
    )
    parser.add_argument("--max-runs", type=int, default=defaults.max_runs, help="timed runs at most")
    parser.add_argument("--throughput-s", type=float, default=defaults.throughput_s, help="0 disables the pass")
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency, help="threads in the throughput pass")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help="items per run (throughput; the size of a symbolic batch axis of synthetic inputs)",
    )
    parser.add_argument(
        "--default-dim",
        type=int,
        default=defaults.default_dim,
        help="size of every symbolic non-batch dim of synthetic inputs (default: none; each must be given by --dim)",
    )
    parser.add_argument(
        "--dim",
        type=_parse_dims,
        action="append",
        default=[],
        help="size of a symbolic dim NAME=INT of synthetic inputs (a symbolic batch axis is --batch-size)",
    )
    inputs = parser.add_mutually_exclusive_group()
    inputs.add_argument("--inputs", type=Path, default=None, help="NPZ of real inputs {input name: array}")
    inputs.add_argument("--clip", type=Path, default=None, help="real inputs from this clip's frames")
    parser.add_argument("--clip-frames", type=int, default=8, help="frames of --clip cycled through")
    parser.add_argument("--checkpoint", type=Path, default=None, help="add a PyTorch eager FP32 row (first row)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the synthetic inputs")
    parser.add_argument("--profile-runs", type=int, default=defaults.profile_runs, help="0 = no operator profile")
    parser.add_argument("--out", type=Path, default=Path("bench_reports"), help="report folder")
    parser.add_argument("--stem", default="bench", help="report file name stem")
    parser.add_argument("--no-plot", action="store_true", help="no latency plot (PNG) in the report")
    parser.add_argument(
        "--exit-zero",
        action="store_true",
        help="exit 0 even when a model is over the budget (the verdict stays in the table and the reports)",
    )
    parser.set_defaults(handler=_cmd_bench)


def bench_config(args: argparse.Namespace, budget):
    """BenchConfig from parsed ``deploy bench`` arguments; threads/provider fall back to the budget's, then to
    defaults."""
    from deploy.bench import BenchConfig

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


def load_npz_inputs(path: Path) -> dict:
    """{input name: array} from an NPZ file (``np.savez``); errors name the file and what was expected."""
    import numpy as np

    try:
        with np.load(path) as archive:
            feeds = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"--inputs {path}: expected an NPZ of input arrays (numpy.savez): {error}") from error
    if not feeds:
        raise ValueError(f"--inputs {path}: expected at least one input array, found an empty archive")
    return feeds


def bench_inputs(model: Path, clip: Path | None, frames: int):
    """Feeds from real clip frames for a model with fleetvision metadata; None (synthesised) otherwise."""
    from deploy.clip_feeds import clip_feeds
    from deploy.metadata import has_metadata

    if clip is None or not has_metadata(model):
        return None
    return clip_feeds(model, [clip], frames_per_clip=frames)


def _cmd_bench(args: argparse.Namespace) -> int:
    from deploy.bench import BenchResult, benchmark_model
    from deploy.bench_report import format_input_shapes, format_table, write_reports
    from deploy.budget import BudgetError, budget_exit_code
    from deploy.onnx_utils import ModelInputError, ProviderUnavailableError

    try:
        budget = _load_budget(args.budget)
    except (BudgetError, FileNotFoundError) as error:
        return _error("bench", error)
    if args.labels and len(args.labels) != len(args.models):
        expected, found = len(args.models), len(args.labels)
        return _error("bench", ValueError(f"--labels: expected {expected} names (one per model), found {found}"))
    try:
        config = bench_config(args, budget)
    except ValueError as error:
        return _error("bench", error)
    labels = args.labels or [path.stem for path in args.models]
    results: list[BenchResult] = []
    feeds_by_model = {}
    try:
        for path in args.models:
            if args.inputs is not None:
                feeds_by_model[path] = [load_npz_inputs(args.inputs)]
                continue
            feeds_by_model[path] = bench_inputs(path, args.clip, args.clip_frames)
            if args.clip is not None and feeds_by_model[path] is None:
                print(
                    f"note: {path} has no fleetvision metadata: synthetic inputs from its declared shapes",
                    file=sys.stderr,
                )
        if args.checkpoint is not None:
            reference = next((f for f in feeds_by_model.values() if f), None)
            results.append(eager_result(args.checkpoint, reference, config, budget))
        for label, path in zip(labels, args.models):
            print(f"benchmarking {label} ({path}) on {config.provider} ...", file=sys.stderr)
            results.append(
                benchmark_model(
                    path,
                    label=label,
                    config=config,
                    budget=budget,
                    inputs=feeds_by_model[path],
                    dim_overrides=dict(args.dim),
                )
            )
    except (ProviderUnavailableError, FileNotFoundError, ModelInputError, ValueError) as error:
        return _error("bench", error)
    paths = write_reports(results, args.out, budget=budget, stem=args.stem, plot=not args.no_plot)
    print(format_table(results))
    for result in results:
        if result.input_shapes:
            print(f"{result.label} inputs: {format_input_shapes(result)}")
    for result in results:
        if result.verdict is not None and not result.verdict.passed:
            print(f"{result.label}: over budget {result.verdict.budget}: {'; '.join(result.verdict.failures())}")
    print(f"reports: {paths.markdown} {paths.json} {paths.plot or ''}".rstrip())
    over_budget = budget_exit_code([r.verdict for r in results]) != 0
    return EXIT_BUDGET if over_budget and not args.exit_zero else EXIT_OK


def eager_result(checkpoint: Path, feeds, config, budget):
    """PyTorch eager FP32 timing of the same graph (decode included) on the same inputs and thread count."""
    import torch

    from deploy.bench import benchmark_callable
    from deploy.export.graph import eager_step

    if config.intra_op_threads:
        torch.set_num_threads(config.intra_op_threads)
    step = eager_step(checkpoint, feeds)
    result = benchmark_callable(step, label="pytorch-eager-fp32", config=config, budget=budget)
    result.input_shapes = dict(getattr(step, "input_shapes", {}))
    result.input_source = "given" if feeds else "synthetic"
    return result


# ---------------------------------------------------------------------------------------------- run
def _add_run(sub) -> None:
    parser = sub.add_parser("run", help="the in-vehicle runtime on a clip replay or live cameras (torch-free)")
    parser.add_argument("model", type=Path, help=".onnx exported by 'deploy export' (or its INT8/FP16 variant)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--clip", type=Path, help="replay this clip folder")
    source.add_argument("--camera", action="append", metavar="NAME=DEVICE", help="live OpenCV device per camera")
    parser.add_argument("--rate", type=float, default=None, help="Hz (default: the model's budget rate, else 20)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--realtime",
        dest="realtime",
        action="store_true",
        default=True,
        help="replay at the clip's timestamps (default)",
    )
    mode.add_argument("--fast", dest="realtime", action="store_false", help="as fast as possible, no drops")
    parser.add_argument("--out", type=Path, default=None, help="folder for detections.jsonl + summary.json")
    parser.add_argument("--video", type=Path, default=None, help="annotated video (mosaic + BEV)")
    parser.add_argument("--score-threshold", type=float, default=0.3, help="3D detections kept at or above")
    parser.add_argument("--score-threshold-2d", type=float, default=0.3, help="2D detections kept at or above")
    parser.add_argument(
        "--deadline-ms", type=float, default=None, help="per-frame deadline (default: the budget's, else 1000 / rate)"
    )
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames (clip replay)")
    parser.add_argument("--start-frame", type=int, default=0, help="first frame of the clip replayed")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds, live cameras only")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: budget's)")
    parser.add_argument("--drop-alert", type=float, default=0.2, help="alert above this filtered drop fraction")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (frames, drops, latency)")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="inject a camera fault into a replay (repeatable): dead:CAMERA@SECONDS (stops delivering), "
        "lost:PROB[:CAMERA] (frames never arrive), late:PROB:MS[:CAMERA] (frames arrive MS ms late)",
    )
    parser.add_argument("--fault-seed", type=int, default=0, help="seed of the lost/late draws (default 0)")
    parser.add_argument(
        "--quality-window", type=float, default=1.0, help="clip seconds per window of the quality timeline"
    )
    parser.add_argument(
        "--no-quality", action="store_true", help="do not score the detections against the clip's labels"
    )
    parser.add_argument(
        "--no-spin",
        action="store_true",
        help="idle onnxruntime threads sleep instead of spinning (for cores shared with other work)",
    )
    parser.add_argument(
        "--priority",
        choices=("normal", "high", "realtime"),
        default=None,
        help="CPU priority of the runtime's threads (default: the model's budget's, else normal): high = nice -10, "
        "realtime = SCHED_FIFO (needs root or CAP_SYS_NICE; implies --no-spin; real-time replay only). Holds the "
        "deadline next to busy processes",
    )
    parser.add_argument("--cores", type=_parse_affinity, default=None, help="pin the runtime's threads, e.g. 0,1")
    parser.set_defaults(handler=_cmd_run)


def _run_argument_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with ``deploy run``'s numeric options (checked before anything is loaded), or None."""
    import math

    def positive(value: float | None, allow_none: bool = True) -> bool:
        return (value is None and allow_none) or (value is not None and math.isfinite(value) and value > 0)

    checks = [
        ("--rate", args.rate, positive(args.rate), "a frame rate > 0 Hz"),
        ("--max-frames", args.max_frames, args.max_frames is None or args.max_frames >= 1, "at least 1 frame"),
        ("--start-frame", args.start_frame, args.start_frame >= 0, "a frame index >= 0"),
        ("--deadline-ms", args.deadline_ms, positive(args.deadline_ms), "> 0 ms"),
        ("--duration", args.duration, positive(args.duration, allow_none=False), "> 0 s"),
        ("--threads", args.threads, args.threads is None or args.threads >= 0, ">= 0 (0 = onnxruntime's default)"),
        ("--drop-alert", args.drop_alert, 0 <= args.drop_alert <= 1, "a fraction in [0, 1]"),
        ("--score-threshold", args.score_threshold, 0 <= args.score_threshold <= 1, "a score in [0, 1]"),
        ("--score-threshold-2d", args.score_threshold_2d, 0 <= args.score_threshold_2d <= 1, "a score in [0, 1]"),
    ]  # fmt: skip
    for option, value, ok, expected in checks:
        if not ok:
            return f"{option}: expected {expected}, found {value}"
    if args.camera and not all("=" in item and all(item.split("=", 1)) for item in args.camera):
        return f"--camera: expected NAME=DEVICE, found {args.camera}"
    return None


def _cmd_run(args: argparse.Namespace) -> int:
    from deploy.metadata import MetadataError
    from deploy.runtime import DeployedModel, Runtime, RuntimeConfig
    from deploy.runtime.faults import FaultPlan, FaultSpecError
    from perception.clip import ClipError

    problem = _run_argument_problem(args)
    if problem is not None:
        return _error("run", ValueError(problem))
    try:
        faults = FaultPlan.parse(args.fault, seed=args.fault_seed) if args.fault else None
    except FaultSpecError as error:
        print(f"deploy run: {error}", file=sys.stderr)
        return EXIT_USAGE
    if faults is not None and args.clip is None:
        print("deploy run: --fault needs --clip (faults are injected into replays)", file=sys.stderr)
        return EXIT_USAGE

    try:
        probe = DeployedModel.load(args.model)
        budget = probe.budget or {}
        threads = args.threads if args.threads is not None else int(budget.get("intra_op_threads") or 0)
        priority = (args.priority or budget.get("priority") or "normal") if args.realtime else "normal"
        no_spin = args.no_spin or priority == "realtime"  # a spinning SCHED_FIFO worker would starve the core
        model = (
            DeployedModel.load(args.model, intra_op_threads=threads, allow_spinning=not no_spin)
            if threads or no_spin
            else probe
        )
    except MetadataError as error:
        print(f"deploy run: refusing {args.model}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, ValueError) as error:
        return _error("run", error)
    rate = args.rate or float(budget.get("rate_hz") or 20.0)
    config = RuntimeConfig(
        rate_hz=rate,
        realtime=args.realtime,
        score_threshold=args.score_threshold,
        score_threshold_2d=args.score_threshold_2d,
        deadline_ms=args.deadline_ms,
        max_frames=args.max_frames,
        start_frame=args.start_frame,
        drop_alert_threshold=args.drop_alert,
        quality_threshold=None if args.no_quality else 0.05,
        quality_window_s=args.quality_window,
        priority=priority,
        cores=args.cores,
    )
    runtime = Runtime(model, config)
    try:
        if args.clip is not None:
            summary = runtime.run_clip(
                args.clip, out_dir=args.out, video_path=args.video, progress=not args.no_progress, faults=faults
            )
        else:
            devices = dict(item.split("=", 1) for item in args.camera)
            summary = runtime.run_live(
                devices,
                duration_s=args.duration,
                out_dir=args.out,
                video_path=args.video,
                progress=not args.no_progress,
            )
    except FaultSpecError as error:
        print(f"deploy run: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (ClipError, FileNotFoundError, ValueError) as error:
        return _error("run", error)
    if summary.quality is not None and args.out is not None:
        from deploy.plots import plot_run_quality

        plot_run_quality(summary.to_dict(), args.out / "quality.png")
    print(format_summary(summary.to_dict()))
    if summary.frames_processed == 0:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in summary.missing_cameras.items())
        print(
            f"deploy run: error: no frame was processed{f' (missing cameras: {reasons})' if reasons else ''}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if args.video is not None and (summary.video_error or not Path(args.video).is_file()):
        print(f"deploy run: error: {args.video}: the video was not written ({summary.video_error})", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def format_summary(summary: dict) -> str:
    """Human-readable run summary: counts, then p50/p99 per stage."""
    lines = [
        f"{summary['source']}: {summary['frames_processed']} frames processed ({summary['mode']}, "
        f"{summary['rate_hz']:g} Hz, deadline {summary['deadline_ms']:.0f} ms), dropped {summary['frames_dropped']} "
        f"({summary['drop_percent']:.1f}%, filtered peak {summary['drop_filtered_peak_percent']:.1f}%, alerts "
        f"{summary['drop_alerts']}), deadline misses {summary['deadline_misses']}, out of sync "
        f"{summary['out_of_sync_sets']}, camera timeouts {summary['camera_timeouts']}, stale sets "
        f"{summary['stale_sets']}, state resets {summary['state_resets']}"
    ]
    lines.append(f"view transform: {summary.get('view_transform', 'dynamic')}")
    scheduling = summary.get("scheduling") or {}
    if scheduling.get("requested", "normal") != "normal" or scheduling.get("cores"):
        lines.append(
            f"scheduling: {scheduling['applied']} priority on {scheduling['threads']} threads"
            + (f", cores {scheduling['cores']}" if scheduling.get("cores") else "")
            + (f" ({scheduling['note']})" if scheduling.get("note") else "")
        )
    for name, reason in summary["missing_cameras"].items():
        lines.append(f"camera {name} missing: {reason}")
    for fault in summary.get("faults") or []:
        lines.append(f"injected fault: {fault}")
    quality = summary.get("quality")
    if quality:
        lines.append(
            f"detection quality vs labels ({quality['frames']} frames): NDS {quality['NDS']:.4f}, mAP "
            f"{quality['mAP']:.4f}; on the field of view of the cameras delivering: NDS "
            f"{quality['field_of_view']['NDS']:.4f}"
        )
        lines.append("| clip time s | frames | NDS | mAP | deadline misses | p99 ms | cameras delivering |")
        lines.append("|---|---|---|---|---|---|---|")
        for window in quality["windows"]:
            lines.append(
                f"| {window['start_s']:.1f}-{window['end_s']:.1f} | {window['frames']} | {window['NDS']:.3f} | "
                f"{window['mAP']:.3f} | {window['deadline_misses']} | {window['latency_p99_ms']:.1f} | "
                f"{window['cameras_delivering']:.1f} |"
            )
    lines.append("| stage | p50 ms | p99 ms | max ms |")
    lines.append("|---|---|---|---|")
    for stage, stats in summary["stages_ms"].items():
        lines.append(f"| {stage} | {stats['p50']:.2f} | {stats['p99']:.2f} | {stats['max']:.2f} |")
    if summary.get("video"):
        lines.append(f"video: {summary['video']}")
    if summary.get("video_error"):
        lines.append(f"video failed: {summary['video_error']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from perception import __version__

    parser = argparse.ArgumentParser(
        prog="deploy",
        description=__doc__.splitlines()[0].replace("``", "'"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]).replace("``", "'"),
    )
    parser.add_argument("--version", "-V", action="version", version=f"deploy (fleetvision) {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_export, _add_parity, _add_quantize, _add_bench, _add_run):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deploy`` console script; returns the exit status (``perception.errors``)."""
    return cli_boundary("deploy", _dispatch, argv, subcommands=("export", "parity", "quantize", "bench", "run"))


def _dispatch(argv: list[str]) -> int:
    parser = build_parser()
    if not argv:
        parser.print_help()
        return EXIT_OK
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
