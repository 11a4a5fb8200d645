"""Synthetic world throughput: rendered camera-frames per second for a rig, one process, end to end
(world sampling, rendering, ground truth, video encoding, clip writing), with the time per stage.

    .venv/bin/python benchmarks/bench_synth.py [--rig configs/rigs/nuscenes_like_6cam.yaml] [--clips 3] [--frames 40]

Prints a table and writes benchmarks/results/synth.md. Target: >= 100 camera-frames/s for 6 x 384x224 on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rig", type=Path, default=REPO / "configs" / "rigs" / "nuscenes_like_6cam.yaml")
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-format", default="mp4")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "synth.md")
    args = parser.parse_args()

    from perception.rig import Rig
    from perception.sim.generate import clip_seed, generate_clip
    from perception.sim.render import camera_setup

    rig = Rig.load(args.rig)
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    start = time.perf_counter()
    for camera in rig:  # one-off per rig and process (cached across clips)
        camera_setup(camera)
    setup_s = time.perf_counter() - start
    work = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    stages: dict[str, float] = {}
    rows = []
    try:
        for index in range(args.clips):
            wall0, cpu0 = time.perf_counter(), time.process_time()
            generate_clip(
                work / f"clip_{index:04d}",
                rig,
                frames=args.frames,
                seed=clip_seed(args.seed, index),
                image_format=args.image_format,
                timings=stages,
            )
            rows.append((time.perf_counter() - wall0, time.process_time() - cpu0))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    camera_frames = args.clips * args.frames * len(rig)
    wall = sum(r[0] for r in rows)
    cpu = sum(r[1] for r in rows)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"# Synthetic world throughput ({args.rig.name})",
        "",
        "Command: `.venv/bin/python benchmarks/bench_synth.py --rig "
        f"{args.rig.relative_to(REPO) if args.rig.is_relative_to(REPO) else args.rig} "
        f"--clips {args.clips} --frames {args.frames}`",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, load average "
        f"{load_start:.1f} at start, {load:.1f} at end; "
        f"{len(rig)} cameras ({', '.join(f'{c.width}x{c.height}' for c in rig.cameras[:1])}), image format "
        f"{args.image_format}.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| camera-frames rendered | {camera_frames} ({args.clips} clips x {args.frames} frames x {len(rig)} "
        "cameras) |",
        f"| **camera-frames / s (wall, end to end)** | **{camera_frames / wall:.1f}** |",
        f"| camera-frames / s (process CPU time) | {camera_frames / cpu:.1f} |",
        f"| frames (all cameras) / s (wall) | {args.clips * args.frames / wall:.1f} |",
        f"| per-rig camera setup (once per process) | {setup_s * 1000:.0f} ms |",
        "",
        "| stage | ms per camera-frame (wall) | share |",
        "|---|---|---|",
    ]
    total = sum(stages.values())
    for stage in ("world", "render", "labels", "write"):
        value = stages.get(stage, 0.0)
        lines.append(f"| {stage} | {value / camera_frames * 1000:.2f} | {value / total:.0%} |")
    lines += [
        "",
        "world = road, traffic simulation, meshes, ground texture, scenery (once per clip); render = ground remap, "
        "sky/fog, polygons, id buffer, noise; labels = 2D boxes, 3D boxes, BEV maps; write = video encoding + files.",
        "Wall-clock figures depend on what else runs on the machine; the CPU-time figure is less sensitive to that.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from perception.atomic import atomic_write_text

    atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
