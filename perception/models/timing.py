"""Measure a model's training step (forward_window + losses-like sum + backward + SGD step) on this machine.

``python -m perception.models.timing bev_tiny --batch-size 2 --time-steps 2 --cameras 6 --threads 2``
prints the median and min seconds per step (after warm-up); benchmarks can call ``time_training_step``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from perception.models.example_inputs import example_inputs
from perception.models.zoo import build_model


def time_training_step(
    name: str,
    *,
    batch_size: int = 2,
    time_steps: int = 2,
    num_cameras: int = 6,
    steps: int = 10,
    warmup: int = 3,
    threads: int = 2,
) -> dict[str, float]:
    """Seconds per fwd+bwd+SGD step of preset ``name`` at its nominal image size: wall median and min over
    ``steps``, and the median process CPU seconds (all threads; a load-independent cross-check)."""
    torch.set_num_threads(threads)
    model = build_model(name).train()
    inputs = example_inputs(model, batch_size=batch_size, num_cameras=num_cameras, time_steps=time_steps)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    times, cpu_times = [], []
    for i in range(warmup + steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        outputs = model.forward_window(**inputs)
        loss = sum(value.square().mean() for key, value in outputs.items() if key != "state")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    return {"median_s": statistics.median(times), "min_s": min(times), "cpu_median_s": statistics.median(cpu_times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--time-steps", type=int, default=2)
    parser.add_argument("--cameras", type=int, default=6)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    result = time_training_step(
        args.name,
        batch_size=args.batch_size,
        time_steps=args.time_steps,
        num_cameras=args.cameras,
        steps=args.steps,
        threads=args.threads,
    )
    print(
        f"{args.name}: B={args.batch_size} T={args.time_steps} N={args.cameras} threads={args.threads}: "
        f"median {result['median_s']:.3f} s/step, min {result['min_s']:.3f} s/step, "
        f"CPU time {result['cpu_median_s']:.3f} s/step (all threads)"
    )


if __name__ == "__main__":
    main()
