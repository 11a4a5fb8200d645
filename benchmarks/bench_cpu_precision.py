"""Training-step time of the student recipe on this CPU in bf16-mixed and float32, natively and with oneDNN and ATen
held to lower instruction sets (as on CPUs without AVX512-BF16, or with AVX2 only), side by side in one run.

    python benchmarks/bench_cpu_precision.py CLIPS [--steps 60] [--markdown OUT.md]

CLIPS: a folder of training clips (for example ``perception synth --rig configs/rigs/nuscenes_like_6cam.yaml --clips
12 --frames 30 --seed 1 --out CLIPS``). Each variant runs ``perception fit -c configs/perception/student.yaml`` for
``--steps`` steps; the figure is the median of the logged ``perf/step_time_s`` (``DataWaitTimer``), the first log
left out. The caps emulate other CPUs on this one: ``ONEDNN_MAX_CPU_ISA`` and ``ATEN_CPU_CAPABILITY`` select the
kernels a CPU without those instructions would run. ``FLEETVISION_CPU_BF16=keep`` keeps bf16 where ``perception fit``
would fall back to float32 (``perception.training.cli.cpu_precision``), so every row runs what it says.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from perception.atomic import atomic_write_text  # noqa: E402

CAPS = {
    "this CPU": {},
    "no AVX512-BF16 (AVX-512 core)": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"},
    "AVX2 only": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
}
PRECISIONS = ("bf16-mixed", "32-true")


def step_time(clips: Path, precision: str, env: dict[str, str], steps: int, root: Path) -> float:
    command = [
        str(Path(sys.executable).parent / "perception"), "fit", "-c", str(REPO / "configs/perception/student.yaml"),
        f"--data.train={clips}", f"--data.val={clips}", "--trainer.limit_val_batches=0",
        f"--trainer.max_steps={steps}", "--trainer.max_epochs=1000", "--trainer.max_time=null",
        "--trainer.num_sanity_val_steps=0", "--trainer.enable_progress_bar=false", f"--trainer.precision={precision}",
        f"--trainer.default_root_dir={root}",
    ]  # fmt: skip
    done = subprocess.run(command, env={**os.environ, "FLEETVISION_CPU_BF16": "keep", **env}, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr.decode()[-2000:]}")
    metrics = next(root.glob("logs/version_*/csv/metrics.csv"))
    times = [float(row["perf/step_time_s"]) for row in csv.DictReader(metrics.open()) if row.get("perf/step_time_s")]
    if len(times) < 2:
        raise SystemExit(f"{metrics}: fewer than two step-time logs; run more --steps")
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", type=Path, help="a folder of training clips")
    parser.add_argument("--steps", type=int, default=60, help="training steps per variant (default 60)")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args(argv)

    from perception.training.cli import cpu_has_native_bf16

    seconds: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as work:
        for cap, env in CAPS.items():
            for precision in PRECISIONS:
                root = Path(work) / f"{len(seconds)}"
                seconds[cap, precision] = step_time(args.clips, precision, env, args.steps, root)
                print(f"{cap}, {precision}: {seconds[cap, precision]:.3f} s per step", flush=True)
    lines = [
        f"Student recipe (`configs/perception/student.yaml`, batch 4, 2-frame windows, 6 cameras) on `{args.clips}`, "
        f"{args.steps} steps per row; this CPU has native bf16: {cpu_has_native_bf16()}.",
        "",
        "| kernels | bf16-mixed, s per step | 32-true, s per step | bf16-mixed / 32-true |",
        "|---|---|---|---|",
    ]
    for cap in CAPS:
        bf16, fp32 = seconds[cap, "bf16-mixed"], seconds[cap, "32-true"]
        lines.append(f"| {cap} | {bf16:.3f} | {fp32:.3f} | **{bf16 / fp32:.2f}** |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        atomic_write_text(args.markdown, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
