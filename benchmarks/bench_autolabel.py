"""Auto-labelling job benchmark: pipeline throughput vs teacher-only, peak memory on a long video, optional 3D mAP.

Run:  .venv/bin/python benchmarks/bench_autolabel.py [--repeats 3] [--loops 8] [--batch 8]
      [--teacher-checkpoint CKPT --clips DIR_WITH_GT_CLIPS]   (multi-camera BEV mAP of pseudo-labels)
Writes benchmarks/results/autolabel.md.

(1) Throughput on ../shared/data/udacity_dashcam/solidWhiteRight.mp4 (960x540, 221 frames) with YOLOX-Nano (ONNX):
    teacher-only = frames / time inside ``teacher.predict_batch`` (decode excluded, nothing else runs);
    pipeline = frames / wall time of the whole job on the same video (decode thread, teacher, camera motion,
    appearance, tracking, offline refinement, exporters, atomic writes). Runs alternate; medians reported.
(2) Peak RSS (ru_maxrss of a fresh process) of the whole job on the video and on it looped ``--loops`` times.
(3) BEV mAP of 3D pseudo-labels on multi-camera clips with ground truth (needs a fleetvision teacher checkpoint).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from perception.atomic import atomic_write_text  # noqa: E402

DATA = REPO / "../shared/data"
VIDEO = DATA / "udacity_dashcam/solidWhiteRight.mp4"
YOLOX = DATA / "models/yolox_nano_coco/yolox_nano.onnx"
RESULTS = REPO / "benchmarks/results/autolabel.md"

RSS_SNIPPET = """
import resource, sys
from autolabel.cli import main
code = main(sys.argv[1:])
print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(0 if code in (0, 3) else code)
"""


def teacher_only_fps(teacher, batch: int) -> tuple[float, float, int]:
    """(frames/s, CPU ms/frame) inside predict_batch only (frames decoded beforehand, batch by batch)."""
    from perception.video import VideoReader

    frames, busy, cpu, pending = 0, 0.0, 0.0, []

    def run() -> None:
        nonlocal busy, cpu, frames, pending
        start, start_cpu = time.perf_counter(), time.process_time()
        teacher.predict_batch(pending)
        busy += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        frames += len(pending)
        pending = []

    with VideoReader(VIDEO) as reader:
        for image in reader:
            pending.append(image)
            if len(pending) == batch:
                run()
    if pending:
        run()
    return frames / busy, 1000 * cpu / frames, frames


def pipeline_fps(job, workdir: Path, inputs: Path = VIDEO) -> tuple[float, float, int]:
    """(frames/s, CPU ms/frame) of the whole single-process job on ``inputs`` (fresh output folder)."""
    from autolabel.pipeline import run_job

    out = Path(tempfile.mkdtemp(dir=workdir))
    start, start_cpu = time.perf_counter(), time.process_time()
    summary = run_job(inputs, out, job, progress=False)
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    frames = sum(r.frames for r in summary.results)
    if summary.failed:
        raise RuntimeError(f"pipeline failed: {summary.failed[0].reason}")
    return frames / seconds, 1000 * cpu / frames, frames


def make_long_video(path: Path, loops: int) -> int:
    """The dash-cam video concatenated ``loops`` times (mp4v); returns the frame count."""
    from perception.video import VideoReader, VideoWriter

    count = 0
    with VideoReader(VIDEO) as reader:
        fps, size = reader.fps, (reader.width, reader.height)
    with VideoWriter(path, fps, size) as writer:
        for _ in range(loops):
            with VideoReader(VIDEO) as reader:
                for image in reader:
                    writer.write(image)
                    count += 1
    return count


def peak_rss_mb(video: Path, workdir: Path, batch: int) -> tuple[float, float]:
    """(peak RSS MB, wall seconds) of a fresh ``autolabel`` process labelling ``video``."""
    out = Path(tempfile.mkdtemp(dir=workdir))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            RSS_SNIPPET,
            str(video),
            "--out",
            str(out),
            "--teacher",
            str(YOLOX),
            "--batch",
            str(batch),
            "--no-progress",
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise RuntimeError(f"autolabel failed on {video}: {run.stderr[-2000:]}")
    kb = int(next(line.split()[1] for line in run.stdout.splitlines() if line.startswith("MAXRSS_KB")))
    return kb / 1024.0, seconds


def bev_map(checkpoint: Path, clips: Path, workdir: Path) -> dict:
    """Label multi-camera clips with a fleetvision checkpoint and score the 3D pseudo-labels (BEV mAP)."""
    from autolabel.cli import main
    from autolabel.evaluate import evaluate_labels

    out = Path(tempfile.mkdtemp(dir=workdir))
    code = main([str(clips), "--out", str(out), "--teacher", f"fleetvision:{checkpoint}", "--no-progress"])
    if code not in (0, 3):
        raise RuntimeError(f"autolabel exit code {code}")
    return evaluate_labels(out, clips)["overall"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loops", type=int, default=8, help="long-video length in copies of the 221-frame clip")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--teacher-checkpoint", type=Path, default=None)
    parser.add_argument("--clips", type=Path, default=None, help="multi-camera clips with ground-truth labels.json")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not (VIDEO.is_file() and YOLOX.is_file()):
        print(f"bench_autolabel: shared data absent ({VIDEO}, {YOLOX}); nothing measured")
        return 0
    import autolabel.offline  # noqa: F401  (one-off import cost is not throughput)
    from autolabel.jobconfig import build_job, load_job_config

    job = build_job(load_job_config(overrides=["--teacher", str(YOLOX), f"--batch_size={args.batch}"]))
    teacher = job.labeler.teacher
    lines = [
        "# autolabel job benchmark",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_autolabel.py --repeats {args.repeats} --loops {args.loops} "
        f"--batch {args.batch}`",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs: "
        f"load average at start {os.getloadavg()[0]:.1f}), Python {platform.python_version()}. CPU only.",
        "",
    ]
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        teacher.predict_batch([__import__("numpy").zeros((540, 960, 3), "uint8")])  # warm-up
        folder = workdir / "folder_of_3"
        folder.mkdir()
        for k in range(3):
            (folder / f"copy_{k}.mp4").symlink_to(VIDEO.resolve())
        teacher_runs, pipeline_runs, teacher_cpu, pipeline_cpu, folder_runs = [], [], [], [], []
        for repeat in range(args.repeats):
            fps_teacher, cpu_teacher, frames = teacher_only_fps(teacher, args.batch)
            fps_pipeline, cpu_pipeline, _ = pipeline_fps(job, workdir)
            fps_folder, _, folder_frames = pipeline_fps(job, workdir, folder)
            teacher_runs.append(fps_teacher)
            pipeline_runs.append(fps_pipeline)
            folder_runs.append(fps_folder)
            teacher_cpu.append(cpu_teacher)
            pipeline_cpu.append(cpu_pipeline)
            print(
                f"run {repeat + 1}: teacher-only {fps_teacher:.1f} frames/s ({cpu_teacher:.0f} CPU ms/frame), "
                f"pipeline {fps_pipeline:.1f} frames/s ({cpu_pipeline:.0f} CPU ms/frame), "
                f"folder of 3 copies {fps_folder:.1f} frames/s"
            )
        teacher_median, pipeline_median = statistics.median(teacher_runs), statistics.median(pipeline_runs)
        pair_ratios = [p / t for p, t in zip(pipeline_runs, teacher_runs)]  # adjacent runs share the machine's load
        ratio = statistics.median(pair_ratios)
        folder_ratios = [p / t for p, t in zip(folder_runs, teacher_runs)]
        lines += [
            "## (1) Throughput: whole pipeline vs teacher inference alone",
            "",
            f"Video: solidWhiteRight.mp4 ({frames} frames, 960x540); teacher YOLOX-Nano ONNX (416x416, ORT CPU, 2 "
            f"threads), batch {args.batch}. {args.repeats} pairs of back-to-back runs (teacher-only, then pipeline); "
            "the machine is shared, so absolute rates move with its load and the per-pair ratio is the figure to read.",
            "",
            "| measurement | frames/s (median) | runs | CPU ms/frame (median, all threads) |",
            "|---|---|---|---|",
            f"| teacher only (`predict_batch`, decode excluded) | {teacher_median:.1f} | "
            f"{', '.join(f'{v:.1f}' for v in teacher_runs)} | {statistics.median(teacher_cpu):.0f} |",
            f"| whole pipeline (decode + teacher + CMC + appearance + tracking + refinement + 4 exporters) | "
            f"{pipeline_median:.1f} | {', '.join(f'{v:.1f}' for v in pipeline_runs)} | "
            f"{statistics.median(pipeline_cpu):.0f} |",
            f"| pipeline / teacher-only (median of per-pair ratios) | **{100 * ratio:.0f}%** (target >= 85%) | "
            f"{', '.join(f'{100 * r:.0f}%' for r in pair_ratios)} | |",
            f"| whole pipeline on a folder of 3 copies ({folder_frames} frames; clip k's last tracking window and "
            f"output writing overlap clip k+1's inference) | {statistics.median(folder_runs):.1f} | "
            f"{', '.join(f'{v:.1f}' for v in folder_runs)} | |",
            f"| folder pipeline / teacher-only (median of per-run ratios) | "
            f"**{100 * statistics.median(folder_ratios):.0f}%** | "
            f"{', '.join(f'{100 * r:.0f}%' for r in folder_ratios)} | |",
            "",
            "Reading: the pipeline runs decode, teacher and the offline chain in three overlapping threads, but on "
            "this 2-core machine ONNX Runtime already uses both cores, so the pipeline's extra CPU per frame (decode, "
            "camera motion, appearance, tracking; see the CPU column) has no idle core to hide on; with spare cores or "
            "GPU inference it would.",
            "",
        ]
        rows = [("solidWhiteRight.mp4", frames, *peak_rss_mb(VIDEO, workdir, args.batch))]
        for loops in sorted({max(2, args.loops // 2), args.loops}):
            long_video = workdir / f"long_x{loops}.mp4"
            long_frames = make_long_video(long_video, loops)
            rows.append(
                (
                    f"same video looped x{loops} (generated mp4)",
                    long_frames,
                    *peak_rss_mb(long_video, workdir, args.batch),
                )
            )
            long_video.unlink()
        for name, count, rss, seconds in rows:
            print(f"peak RSS: {name}: {count} frames, {rss:.0f} MB ({seconds:.0f} s)")
        lines += [
            "## (2) Peak memory (fresh process, `ru_maxrss`)",
            "",
            f"Offline chain windows: {job.labeler.window_frames} frames with {job.labeler.window_overlap} overlap "
            "(ids stitched).",
            "",
            "| input | frames | peak RSS (MB) | wall (s) |",
            "|---|---|---|---|",
            *[f"| {name} | {count} | {rss:.0f} | {seconds:.0f} |" for name, count, rss, seconds in rows],
            "",
            f"Growth from {rows[-2][1]} to {rows[-1][1]} frames: {rows[-1][2] - rows[-2][2]:+.0f} MB (a decoded "
            f"960x540 frame is 1.5 MB: holding {rows[-1][1]} frames would take {rows[-1][1] * 1.555:.0f} MB). Frames "
            "stream "
            "through bounded queues and the offline chain holds at most two windows; what still grows with length is "
            "the finished per-frame labels (kept until labels.json is written).",
            "",
        ]
        lines += ["## (3) Multi-camera 3D pseudo-labels: BEV mAP", ""]
        if args.teacher_checkpoint and args.clips:
            overall = bev_map(args.teacher_checkpoint, args.clips, workdir)
            print("BEV:", json.dumps(overall.get("bev")))
            lines += [
                f"Teacher `{args.teacher_checkpoint}` on `{args.clips}`:",
                "",
                "```",
                json.dumps(overall, indent=1),
                "```",
                "",
            ]
        else:
            lines += [
                "Not measured in this run: it needs a trained fleetvision teacher checkpoint and synthetic clips "
                "with ground truth. `make demo` measures it (pseudo-label BEV mAP in `runs/demo/REPORT.md`, figures "
                "in `benchmarks/RESULTS.md`); to measure it here, pass the demo's teacher and clips: "
                "`--teacher-checkpoint runs/demo/teacher.pt --clips runs/demo/data/unlabelled`.",
                "",
            ]
    text = "\n".join(lines)
    atomic_write_text(args.out, text + "\n")
    print(text)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
