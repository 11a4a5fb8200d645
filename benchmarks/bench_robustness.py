"""Robustness benchmark, in one run:

1. ``perception robustness`` on two checkpoints side by side (before / after the robustness training: one recipe,
   only the training options differ): NDS, mAP, RR per corruption and severity, mRR, the sensor failures' RR on the
   remaining field of view, and test splits rendered under fog / low light / snow by the synthetic world;
2. ``deploy run`` (the torch-free runtime, real-time replay) of the exported ``--deploy`` checkpoint on every test
   clip: clean, each of the six cameras dead for the whole clip, one camera dying mid-clip, 10 % of the frames lost,
   20 % of the frames 60 ms late. Per run: deadline misses, p99 sensor-to-output latency, NDS and NDS on the field of
   view of the cameras still delivering, next to the clean run scored on that same field of view.

Writes ``<out>/robustness.md`` + ``robustness.json`` and each model's ``robustness.md`` / ``corruptions.png``.
Usage:
  python benchmarks/bench_robustness.py --before BEFORE.pt --after AFTER.pt --data runs/data/test \\
      --rendered-root runs/data --deploy AFTER.pt --out benchmarks/results/robustness
``--before-report`` / ``--after-report`` take the ``robustness.json`` of an earlier ``perception robustness`` run
instead of evaluating again (how benchmarks/RESULTS.md's figures were put together on the shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared cores: idle OpenMP workers sleep instead of spinning

from perception.atomic import atomic_write_text  # noqa: E402
from perception.corruptions import CORRUPTIONS  # noqa: E402


def _pct(value) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.1f}"


# ---------------------------------------------------------------------------------------------- 1. perception
def rendered_splits(root: Path | None) -> dict[str, list[Path]]:
    """{"fog:2": [clips]} for the folders ``<root>/test_<weather><severity>`` that exist."""
    from perception.data.datamodule import resolve_clip_paths

    found: dict[str, list[Path]] = {}
    if root is None:
        return found
    for weather in ("fog", "low_light", "snow"):
        for severity in (1, 2, 3):
            folder = root / f"test_{weather}{severity}"
            if folder.is_dir():
                found[f"{weather}:{severity}"] = resolve_clip_paths(str(folder))
    return found


def perception_table(reports: dict[str, dict]) -> list[str]:
    names = list(reports)
    lines = [
        "| figure | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        "| clean NDS | " + " | ".join(f"{r['clean']['NDS']:.4f}" for r in reports.values()) + " |",
        "| clean mAP | " + " | ".join(f"{r['clean']['mAP']:.4f}" for r in reports.values()) + " |",
        "| **mRR %** | " + " | ".join(f"**{_pct(r['mRR'])}**" for r in reports.values()) + " |",
    ]
    for corruption in CORRUPTIONS:
        cells = []
        for report in reports.values():
            entry = report["corruptions"].get(corruption)
            if entry is None:
                cells.append("-")
                continue
            per_severity = "/".join(f"{v['NDS']:.3f}" for v in entry["severities"].values())
            field = f", field of view {_pct(entry['field_of_view_RR'])}" if "field_of_view_RR" in entry else ""
            cells.append(f"{_pct(entry['RR'])} (NDS {per_severity}{field})")
        lines.append(f"| RR % {corruption} | " + " | ".join(cells) + " |")
    weathers = sorted({w for r in reports.values() for w in (r.get("rendered") or {})})
    for weather in weathers:
        cells = []
        for report in reports.values():
            entry = (report.get("rendered") or {}).get(weather, {})
            rates = [entry[s]["RR"] for s in sorted(entry)]
            cells.append(f"{_pct(sum(rates) / len(rates))} ({'/'.join(_pct(r) for r in rates)})" if rates else "-")
        lines.append(f"| RR % rendered {weather} (severity 1/2/3) | " + " | ".join(cells) + " |")
    return lines


# ---------------------------------------------------------------------------------------------- 2. deploy run
def export(checkpoint: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "deploy", "export", str(checkpoint), "--out", str(out), "--budget",
               str(REPO / "configs" / "deploy" / "rate_20hz.yaml")]  # fmt: skip
    subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return out


def deploy_runs(model_path: Path, clips: list[Path], *, threads: int) -> list[dict]:
    """Every fault scenario on every clip (real time), scored against the clip's labels."""
    from deploy.runtime import DeployedModel, Runtime, RuntimeConfig
    from deploy.runtime.faults import FaultPlan
    from deploy.runtime.quality import score_frames

    model = DeployedModel.load(model_path, intra_op_threads=threads, allow_spinning=False)
    config = RuntimeConfig(realtime=True, quality_threshold=0.05, quality_window_s=0.5)
    scenarios = [("clean (again)", [])]
    scenarios += [(f"{camera} dead", [f"dead:{camera}@0"]) for camera in model.cameras]
    scenarios += [
        (f"{model.cameras[0]} dies at 1 s", [f"dead:{model.cameras[0]}@1.0"]),
        ("10 % of frames lost", ["lost:0.1"]),
        ("20 % of frames 60 ms late", ["late:0.2:60"]),
    ]
    rows = []
    for clip in clips:
        runtime = Runtime(model, config)
        runtime.run_clip(clip)  # warm-up (first-call allocations), not scored
        runtime.run_clip(clip)
        clean = runtime.last_quality
        for name, specs in scenarios:  # "clean" again: the run-to-run spread of real-time replays
            summary = runtime.run_clip(clip, faults=FaultPlan.parse(specs, seed=0) if specs else None)
            quality = runtime.last_quality
            common = {r.index for r in quality.records} & {r.index for r in clean.records}
            faulted_records = [r for r in quality.records if r.index in common]
            clean_records = [r for r in clean.records if r.index in common]
            kwargs = dict(rig=quality.rig, cameras=quality.cameras, classes=quality.classes, grid=quality.grid)
            faulted_scores = score_frames(faulted_records, quality.clip.labels, **kwargs)
            clean_on_view = score_frames(clean_records, quality.clip.labels, field_of_view=faulted_records, **kwargs)
            rows.append(
                {
                    "clip": clip.name,
                    "scenario": name,
                    "frames": summary.frames_processed,
                    "dropped": summary.frames_dropped,
                    "deadline_misses": summary.deadline_misses,
                    "p99_ms": summary.stages_ms.get("sensor_to_output", {}).get("p99"),
                    "NDS": faulted_scores["NDS"],
                    "NDS_field_of_view": faulted_scores["field_of_view"]["NDS"],
                    "clean_NDS_same_view": clean_on_view["field_of_view"]["NDS"],
                    "camera_events": summary.camera_events,
                }
            )
            print(f"  {clip.name} {name}: {rows[-1]['frames']} frames, {rows[-1]['deadline_misses']} misses, "
                  f"NDS {rows[-1]['NDS']:.3f}, field of view {rows[-1]['NDS_field_of_view']:.3f} "
                  f"(clean {rows[-1]['clean_NDS_same_view']:.3f})", flush=True)  # fmt: skip
    return rows


def deploy_table(rows: list[dict]) -> list[str]:
    import numpy as np

    lines = [
        "| scenario | frames | deadline misses | p99 ms (median over clips) | NDS | NDS on the remaining field of view "
        "| clean run on that field of view | retained % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[str, list[dict]] = {}
    for row in rows:
        key = "one of six cameras dead (each camera, mean)" if row["scenario"].endswith(" dead") else row["scenario"]
        groups.setdefault(key, []).append(row)
    for key, group in groups.items():
        field = float(np.mean([r["NDS_field_of_view"] for r in group]))
        clean = float(np.mean([r["clean_NDS_same_view"] for r in group]))
        lines.append(
            f"| {key} | {sum(r['frames'] for r in group)} | {sum(r['deadline_misses'] for r in group)} | "
            f"{np.median([r['p99_ms'] for r in group if r['p99_ms'] is not None]):.1f} | "
            f"{np.mean([r['NDS'] for r in group]):.4f} | {field:.4f} | {clean:.4f} | "
            f"{_pct(field / clean if clean else None)} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="checkpoint trained without the robustness options")
    parser.add_argument("--after", type=Path, help="the same recipe with them")
    parser.add_argument("--before-report", type=Path, help="robustness.json of --before (skips its evaluation)")
    parser.add_argument("--after-report", type=Path, help="robustness.json of --after (skips its evaluation)")
    parser.add_argument("--data", required=True, help="test clips")
    parser.add_argument("--rendered-root", type=Path, default=None, help="folder holding test_<weather><severity>")
    parser.add_argument("--deploy", type=Path, default=None, help="checkpoint to export and replay with faults")
    parser.add_argument("--deploy-clips", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads of the replays (default 1)")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "robustness")
    args = parser.parse_args()
    from perception.data.datamodule import resolve_clip_paths
    from perception.training.robustness import evaluate_robustness

    args.out.mkdir(parents=True, exist_ok=True)
    clips = resolve_clip_paths(args.data)
    started = time.perf_counter()
    results: dict = {"load_average_start": os.getloadavg(), "data": args.data}
    lines = [f"# Robustness benchmark ({time.strftime('%Y-%m-%d')})", ""]
    reports = {}
    for name, checkpoint, done in (
        ("before", args.before, args.before_report),
        ("after", args.after, args.after_report),
    ):
        if done is not None:
            report = json.loads(done.read_text())
            reports[f"{name} ({Path(report['checkpoint']).name})"] = report
            continue
        if checkpoint is None:
            continue
        print(f"perception robustness: {name} = {checkpoint}", flush=True)
        reports[f"{name} ({checkpoint.name})"] = evaluate_robustness(
            checkpoint,
            clips,
            args.out / name,
            max_frames=args.max_frames,
            rendered=rendered_splits(args.rendered_root),
        )
    if reports:
        results["perception"] = reports
        lines += ["## perception robustness", "", *perception_table(reports), ""]
    if args.deploy is not None:
        model_path = export(args.deploy, args.out / "deploy" / "model.onnx")
        rows = deploy_runs(model_path, clips[: args.deploy_clips], threads=args.threads)
        results["deploy"] = rows
        lines += [
            f"## deploy run under faults ({model_path.name} of {args.deploy}, real time)",
            "",
            *deploy_table(rows),
        ]
    results["load_average_end"] = os.getloadavg()
    results["seconds"] = time.perf_counter() - started
    lines += ["", f"load average at start / end: {results['load_average_start']} / {results['load_average_end']}; "
              f"{results['seconds']:.0f} s"]  # fmt: skip
    atomic_write_text(args.out / "robustness.json", json.dumps(results, indent=1, default=float))
    atomic_write_text(args.out / "robustness.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
