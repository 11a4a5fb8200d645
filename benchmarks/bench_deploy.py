"""Deployment benchmark of the default deploy model (six cameras, bev_tiny resolution), in one run:

1. latency side by side: PyTorch eager FP32 vs ONNX Runtime FP32 (with and without onnxslim) vs ONNX Runtime INT8
   (static QDQ, per-channel, calibrated on real clip frames), inputs = real clip frames, plus accuracy retained;
2. ``deploy run`` (the torch-free runtime) replaying a six-camera 20 Hz clip in real time: p99 sensor-to-output
   latency, deadline misses, drops, and the runtime's own overhead (set complete -> output, minus inference).

Uses a trained checkpoint from ``runs/`` when one loads, else a randomly initialised bev_tiny (and says so).
Writes ``benchmarks/results/deploy.md`` (+ ``deploy.json``). Usage: ``python benchmarks/bench_deploy.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# PyTorch's OpenMP workers spin-wait by default; on this shared 2-core machine that made the eager row ~3.5x slower
# than with passive waiting (687 vs 198 ms p50 back to back), which would flatter every ONNX Runtime row.
# onnxruntime does not use OpenMP, so this only makes the eager baseline fair. Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from perception.atomic import atomic_write_text  # noqa: E402

RIG = REPO / "configs" / "rigs" / "nuscenes_like_6cam.yaml"


def find_checkpoint(runs: Path, exclude: Path) -> Path | None:
    """Newest loadable six-camera checkpoint (.pt exported or Lightning .ckpt) under ``runs`` (not under
    ``exclude``, this benchmark's own work folder), or None."""
    from perception.training.checkpoint import load_model_checkpoint

    candidates = sorted([*runs.rglob("*.pt"), *runs.rglob("*.ckpt")], key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        if exclude.resolve() in path.resolve().parents:
            continue
        try:
            model, meta = load_model_checkpoint(path)
        except Exception:
            continue
        cameras = meta.get("cameras") or (meta.get("rig") or {}).get("cameras") or []
        if len(cameras) == 6 or (not cameras and model.config()["image_size"] == [96, 192]):
            return path
    return None


def random_checkpoint(path: Path) -> Path:
    """A randomly initialised bev_tiny with the six-camera rig, as a plain checkpoint."""
    import torch

    from perception.models import build_model
    from perception.rig import Rig
    from perception.training.checkpoint import model_metadata

    torch.manual_seed(0)
    model = build_model("bev_tiny").eval()
    rig = Rig.load(RIG)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            **model_metadata(model, model_name="bev_tiny", rig=rig.to_dict(), cameras=rig.names),
            "state_dict": model.state_dict(),
        },
        path,
    )
    return path


def synth_clips(out: Path, *, clips: int, frames: int, fps: float, seed: int) -> list[Path]:
    """Clips from the synthetic world (``perception synth``), reused when present."""
    from perception.clip import find_clips

    if not find_clips(out):
        from perception.sim.cli import main as synth_main

        code = synth_main(
            [
                "--rig",
                str(RIG),
                "--clips",
                str(clips),
                "--frames",
                str(frames),
                "--fps",
                str(fps),
                "--seed",
                str(seed),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        if code:
            raise RuntimeError(f"perception synth exited with {code}")
    return find_clips(out)


def bench_latency(fp32: Path, variants: list[tuple[str, Path]], checkpoint: Path, feeds: list[dict], seconds: float):
    """Eager + ORT rows (same inputs, 2 intra-op threads everywhere)."""
    from deploy.bench import BenchConfig, benchmark_model
    from deploy.budget import Budget
    from deploy.cli import eager_result

    budget = Budget.load(REPO / "configs" / "deploy" / "rate_20hz.yaml")
    config = BenchConfig(
        warmup_runs=3,
        warmup_s=1.0,
        min_runs=20,
        min_duration_s=seconds,
        throughput_s=0.0,
        intra_op_threads=2,
        inter_op_threads=1,
    )
    rows = [eager_result(checkpoint, feeds, config, budget)]
    for label, path in variants:
        rows.append(benchmark_model(path, label=label, config=config, budget=budget, inputs=feeds))
    return rows, budget


def interleaved_latency(variants: list[tuple[str, Path]], checkpoint: Path, feeds: list[dict], rounds: int) -> dict:
    """p50/p90 per variant from round-robin single runs (eager, then each ONNX model, repeated), so every variant
    sees the same background load on a shared machine; no thread spins while idle (OMP_WAIT_POLICY=PASSIVE,
    onnxruntime allow_spinning=0); returns {label: {"p50_ms", "p90_ms", "runs"}}."""
    import numpy as np
    import torch

    from deploy.export.graph import eager_step
    from deploy.runtime.model import create_session
    from deploy.stats import LatencyStats

    eager = eager_step(checkpoint, feeds)  # cycles through feeds in the same order as the sessions below
    runners = {"pytorch-eager-fp32": lambda i: eager()}
    for label, path in variants:
        session = create_session(path, intra_op_threads=2, inter_op_threads=1, allow_spinning=False)
        runners[label] = lambda i, s=session: s.run(None, feeds[i % len(feeds)])
    samples: dict[str, list[float]] = {label: [] for label in runners}
    with torch.no_grad():
        for round_index in range(rounds + 3):  # 3 warm-up rounds
            for label, run in runners.items():
                start = time.perf_counter()
                run(round_index)
                if round_index >= 3:
                    samples[label].append((time.perf_counter() - start) * 1e3)
    out = {}
    for label, values in samples.items():
        stats = LatencyStats.from_samples(np.asarray(values))
        out[label] = {"p50_ms": stats.p50_ms, "p90_ms": stats.p90_ms, "runs": stats.runs}
    return out


def runtime_run(model: Path, clip: Path, out: Path, *, realtime: bool = True) -> dict:
    """``deploy run`` in-process (same code path as the CLI) at 20 Hz; returns the summary dict."""
    from deploy.runtime import DeployedModel, Runtime, RuntimeConfig

    deployed = DeployedModel.load(model, intra_op_threads=2, inter_op_threads=1, allow_spinning=False)
    summary = Runtime(deployed, RuntimeConfig(rate_hz=20.0, realtime=realtime)).run_clip(clip, out_dir=out)
    return summary.to_dict()


def _row(result) -> dict:
    stats = result.stats
    return {
        "variant": result.label,
        "p50_ms": stats.p50_ms,
        "p90_ms": stats.p90_ms,
        "p99_ms": stats.p99_ms,
        "mean_ms": stats.mean_ms,
        "runs": stats.runs,
        "size_mb": result.file_size_mb,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: newest in runs/, else random bev_tiny")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench_deploy")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "deploy.md")
    parser.add_argument("--seconds", type=float, default=6.0, help="latency measurement per variant")
    parser.add_argument("--run-frames", type=int, default=100, help="frames of the 20 Hz runtime clip")
    parser.add_argument("--rounds", type=int, default=40, help="round-robin rounds of the interleaved latency table")
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md from the existing .json")
    args = parser.parse_args(argv)
    if args.render_only:
        from deploy.budget import Budget

        payload = json.loads(args.out.with_suffix(".json").read_text())
        atomic_write_text(
            args.out, render_markdown(payload, Budget.load(REPO / "configs" / "deploy" / "rate_20hz.yaml"))
        )
        return 0

    import torch

    torch.set_num_threads(2)
    from deploy.clip_feeds import clip_feeds, resolve_clips
    from deploy.export.to_onnx import export_checkpoint_to_onnx
    from deploy.quantize.exported_model import quantize_model
    from deploy.quantize.task_accuracy import compare_accuracy

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    notes: list[str] = []
    checkpoint = args.checkpoint or find_checkpoint(REPO / "runs", exclude=work)
    trained = checkpoint is not None
    if checkpoint is None:
        checkpoint = random_checkpoint(work / "bev_tiny_random.pt")
        notes.append(
            "No trained six-camera checkpoint was found under runs/: the model is a RANDOMLY INITIALISED "
            "bev_tiny, so accuracy figures measure INT8-vs-FP32 agreement, not task accuracy."
        )
    step = torch.load(checkpoint, map_location="cpu", weights_only=True).get("global_step") if trained else None
    if trained:
        notes.append(
            f"Checkpoint found under runs/: {_short(checkpoint)}"
            + (f" (training step {step}; a run still in progress when measured)" if step is not None else "")
        )
    print(f"checkpoint: {checkpoint} ({'trained' if trained else 'random init'})", flush=True)

    run_clip = synth_clips(work / "clips_20hz", clips=1, frames=args.run_frames, fps=20.0, seed=11)[0]
    val_root = REPO / "runs" / "data" / "synth" / "val"
    train_root = REPO / "runs" / "data" / "synth" / "train"
    eval_clips = resolve_clips([val_root]) if val_root.is_dir() else [run_clip]
    calib_clips = resolve_clips([train_root])[:4] if train_root.is_dir() else [run_clip]

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    fp32 = work / "bev_tiny.onnx"
    from perception.training.checkpoint import load_model_checkpoint

    rig_path = None if load_model_checkpoint(checkpoint)[1].get("rig") else RIG  # Lightning .ckpt may lack the rig
    budget_meta = {"name": "rate_20hz", "rate_hz": 20.0, "deadline_ms": 50.0, "intra_op_threads": 2}
    result, _, _ = export_checkpoint_to_onnx(checkpoint, fp32, rig_path=rig_path, budget=budget_meta)
    timings["export_s"] = time.perf_counter() - t0
    notes += result.notes
    slim = work / "bev_tiny.slim.onnx"
    slim_result, _, _ = export_checkpoint_to_onnx(checkpoint, slim, rig_path=rig_path, simplify=True)
    notes += slim_result.notes
    variants = [("ort-fp32", fp32)] + ([("ort-fp32-onnxslim", slim)] if slim_result.simplified else [])

    t0 = time.perf_counter()
    int8 = work / "bev_tiny.int8.onnx"
    outcome = quantize_model(fp32, int8, calib_clips=calib_clips, frames_per_clip=8)
    timings["quantize_s"] = time.perf_counter() - t0
    variants.append(("ort-int8", int8))

    t0 = time.perf_counter()
    accuracy = compare_accuracy(fp32, int8, eval_clips, max_frames=None)
    timings["accuracy_s"] = time.perf_counter() - t0
    print(accuracy.markdown(), flush=True)

    feeds = clip_feeds(fp32, [run_clip], frames_per_clip=8)
    rows, budget = bench_latency(fp32, variants, checkpoint, feeds, args.seconds)
    eager_p50 = rows[0].stats.p50_ms
    table = [_row(r) | {"speedup_vs_eager": eager_p50 / r.stats.p50_ms} for r in rows]
    for row in table:
        print(
            f"{row['variant']:>20}: p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  "
            f"x{row['speedup_vs_eager']:.2f} vs eager",
            flush=True,
        )

    interleaved = interleaved_latency(variants, checkpoint, feeds, rounds=args.rounds)
    for label, row in interleaved.items():
        print(
            f"interleaved {label:>20}: p50 {row['p50_ms']:7.2f} ms  "
            f"x{interleaved['pytorch-eager-fp32']['p50_ms'] / row['p50_ms']:.2f}",
            flush=True,
        )

    runs = {}
    for label, path in (("int8", int8), ("fp32", fp32)):
        runs[label] = runtime_run(path, run_clip, work / f"run_{label}")
        stages = runs[label]["stages_ms"]
        print(
            f"deploy run {label}: s2o p99 {stages['sensor_to_output']['p99']:.1f} ms, misses "
            f"{runs[label]['deadline_misses']}, dropped {runs[label]['frames_dropped']}",
            flush=True,
        )
    load_after = os.getloadavg()

    payload = {
        "checkpoint": str(checkpoint),
        "trained": trained,
        "notes": notes,
        "latency": table,
        "interleaved": interleaved,
        "accuracy": accuracy.to_dict(),
        "quantization": {
            "calibration_frames": outcome.calibration_frames,
            "calibration_clips": [str(c) for c in calib_clips],
        },
        "runtime": runs,
        "timings_s": timings,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "cpu": _cpu(),
        "export": {"exporter": result.exporter},
    }
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(payload, indent=1, default=str))
    atomic_write_text(args.out, render_markdown(payload, budget))
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    shutil.rmtree(work / "run_fp32", ignore_errors=True)
    return 0


def _cpu() -> str:
    from deploy.bench import cpu_model_name

    return f"{cpu_model_name()}, {os.cpu_count()} logical cores"


def render_markdown(p: dict, budget) -> str:
    """The results page."""
    lines = [
        "# Deployment benchmark (`benchmarks/bench_deploy.py`)",
        "",
        f"Model: `{_short(Path(p['checkpoint']))}`"
        f" ({'trained' if p['trained'] else 'RANDOM INIT'}), six cameras at the "
        f"bev_tiny input (6 x 96x192), exported with {p['export']['exporter']}. CPU: {p['cpu']}; load average "
        f"before/after: {p['load_average_before'][0]:.1f} / {p['load_average_after'][0]:.1f} (the machine is "
        "shared: other jobs run concurrently, so absolute times are noisy). 2 intra-op threads everywhere; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} for PyTorch (see the script's header).",
        "",
    ]
    lines += [f"> {note}" for note in p["notes"]] + ([""] if p["notes"] else [])
    lines += [
        "## Latency, real clip frames as inputs (decode in graph included)",
        "",
        "| variant | p50 ms | p90 ms | p99 ms | mean ms | runs | size MB | speed-up vs eager |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in p["latency"]:
        size = "-" if row["size_mb"] is None else f"{row['size_mb']:.1f}"
        lines.append(
            f"| {row['variant']} | {row['p50_ms']:.2f} | {row['p90_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{row['mean_ms']:.2f} | {row['runs']} | {size} | {row['speedup_vs_eager']:.2f}x |"
        )
    inter = p["interleaved"]
    eager = inter["pytorch-eager-fp32"]["p50_ms"]
    lines += [
        "",
        "Interleaved (round robin: one run of each variant per round, so all see the same background "
        f"load; {inter['ort-int8']['runs']} rounds; no spinning threads: OMP passive, onnxruntime "
        "allow_spinning=0):",
        "",
        "| variant | p50 ms | p90 ms | speed-up vs eager |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {label} | {row['p50_ms']:.2f} | {row['p90_ms']:.2f} | {eager / row['p50_ms']:.2f}x |"
        for label, row in inter.items()
    ]
    speedup = eager / inter["ort-int8"]["p50_ms"]
    target = "MET" if speedup >= 4 else "NOT met"
    lines += [
        "",
        f"Target INT8 >= 4x faster than eager (interleaved p50): **{target}** ({speedup:.2f}x). "
        "Reference toy (ResNet-18 BEV, 6 x 224x384, same machine class): eager 173 ms, ORT FP32 112 ms, "
        "ORT INT8 34 ms.",
        "",
    ]
    a = p["accuracy"]
    retained = "-" if a["retained"] is None else f"{100 * a['retained']:.2f}%"
    lines += [
        "## Accuracy retained (INT8 vs FP32)",
        "",
        f"Primary metric `{a['primary_metric']}` ({'ground truth' if a['ground_truth'] else 'agreement with FP32'}"
        f") on {len(a['eval_clips'])} clip(s), {a['fp32']['frames']} frames: FP32 {_fmt(a['fp32_value'])}, INT8 "
        f"{_fmt(a['int8_value'])}, retained **{retained}**, MLPerf 99%: **{'yes' if a['meets_mlperf_99'] else 'no'}**."
        f" Calibration: {p['quantization']['calibration_frames']} frames.",
        "",
    ]
    if a.get("note"):
        lines += [a["note"], ""]
    lines += ["| metric | FP32 | INT8 |", "|---|---|---|"]
    for key in ("bev_map", "bev_nds", "seg_miou", "det2d_ap", "agreement_bev_map", "agreement_seg_iou"):
        lines.append(f"| {key} | {_fmt(a['fp32'][key])} | {_fmt(a['int8'][key])} |")
    lines += [
        "",
        "## `deploy run`: six-camera synthetic clip replayed in real time at 20 Hz",
        "",
        "Same code path as `deploy run MODEL --clip CLIP --rate 20 --threads 2 --no-spin` (idle onnxruntime "
        "threads sleep, because the cores are shared); the clip comes from `perception synth` (100 frames at "
        "20 Hz, cameras captured 8 ms apart, 40 ms rolling spread).",
        "",
    ]
    lines += [
        "| model | frames | dropped | deadline misses (50 ms) | sensor->output p50 / p99 ms | inference p50 ms | "
        "overhead p50 ms (% of inference) | out of sync | state resets |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, run in p["runtime"].items():
        s = run["stages_ms"]
        overhead = s["overhead"]["p50"]
        inference = s["inference"]["p50"]
        lines.append(
            f"| {label} | {run['frames_processed']} | {run['frames_dropped']} ({run['drop_percent']:.0f}%) | "
            f"{run['deadline_misses']} | {s['sensor_to_output']['p50']:.1f} / {s['sensor_to_output']['p99']:.1f}"
            f" | {inference:.1f} | {overhead:.2f} ({100 * overhead / inference:.1f}%) | "
            f"{run['out_of_sync_sets']} | {run['state_resets']} |"
        )
    int8_run = p["runtime"]["int8"]
    s = int8_run["stages_ms"]
    held = s["sensor_to_output"]["p99"]
    verdict = (
        "met"
        if held <= 50 and int8_run["deadline_misses"] == 0
        else f"not met: the budget this runtime holds is p99 {held:.0f} ms sensor-to-output"
    )
    lines += [
        "",
        f"Target p99 sensor-to-output <= 50 ms with no deadline misses (INT8): **{verdict}**. "
        f"Runtime overhead p50 {s['overhead']['p50']:.2f} ms = "
        f"{100 * s['overhead']['p50'] / s['inference']['p50']:.1f}% "
        "of inference (target <= 10%).",
        "",
        "Definitions: sensor->output = from the capture time of the set's newest image on the replay clock to "
        "detections available (includes decoding, synchronisation, preprocessing, inference, thresholding); "
        "overhead = set complete -> output minus the inference call (each camera's resize runs in its own decoding "
        "thread while the other cameras are still arriving, so it is not part of the overhead). Per-stage p50/p99 "
        "are in `deploy.json`.",
        "",
        f"Time spent: {', '.join(f'{k} {v:.0f}' for k, v in p['timings_s'].items())}.",
        "",
        "Reproduce: `python benchmarks/bench_deploy.py` (or `make bench`).",
    ]
    return "\n".join(lines) + "\n"


def _short(path: Path) -> Path:
    """``path`` relative to the repository when inside it."""
    return path.relative_to(REPO) if path.is_absolute() and path.is_relative_to(REPO) else path


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    sys.exit(main())
