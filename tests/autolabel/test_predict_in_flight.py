"""autolabel.sources.predict_in_flight: teacher batches overlapped in worker threads, results in input order."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from autolabel.sources import predict_in_flight


def batches(count: int) -> list[list[int]]:
    return [[2 * i, 2 * i + 1] for i in range(count)]


@pytest.mark.parametrize("in_flight", [1, 2, 3])
def test_results_come_back_in_input_order(in_flight: int) -> None:
    seen = list(predict_in_flight(lambda images: [-x for x in images], batches(7), lambda x: x, in_flight=in_flight))
    assert [batch for batch, _, _ in seen] == batches(7)
    assert all(out == [-x for x in images] for _, images, out in seen)


def test_two_calls_really_run_at_once() -> None:
    """Each call waits for a second one to start: only overlapping calls get past the barrier."""
    barrier = threading.Barrier(2, timeout=10.0)

    def predict(images: list[np.ndarray]) -> list[int]:
        barrier.wait()
        return [int(image.sum()) for image in images]

    frames = [[np.full((2, 2), i)] for i in range(4)]
    out = [result for _, _, result in predict_in_flight(predict, frames, lambda x: x, in_flight=2)]
    assert out == [[0], [4], [8], [12]]


def test_an_error_in_a_call_is_raised_to_the_consumer() -> None:
    def predict(images: list[int]) -> list[int]:
        if images[0] == 4:
            raise ValueError("bad frame 4")
        return images

    with pytest.raises(ValueError, match="bad frame 4"):
        list(predict_in_flight(predict, batches(5), lambda x: x, in_flight=2))
