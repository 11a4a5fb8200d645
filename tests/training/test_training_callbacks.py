"""DataWaitTimer arithmetic with a fake clock (no wall-clock asserts)."""

from __future__ import annotations

import pytest

import perception.training.callbacks as callbacks
from perception.training.callbacks import DataWaitTimer


class _Module:
    def __init__(self) -> None:
        self.logged: list[dict] = []

    def log_dict(self, values: dict, **kwargs) -> None:
        self.logged.append(values)


def test_data_wait_fraction_from_hook_times(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: now[0])
    timer, module = DataWaitTimer(skip_first=1, log_every_n_steps=1), _Module()
    timer.on_train_epoch_start(None, module)
    # batch 0 (skipped: worker start-up): wait 5 s, compute 1 s; then batches wait 0.5 s and compute 1.5 s
    for index, (wait, compute) in enumerate([(5.0, 1.0), (0.5, 1.5), (0.5, 1.5), (0.5, 1.5)]):
        now[0] += wait
        timer.on_train_batch_start(None, module, None, index)
        now[0] += compute
        timer.on_train_batch_end(None, module, None, None, index)
    assert timer.batches == 3
    assert timer.fraction == pytest.approx(0.25)
    assert module.logged[-1]["perf/data_wait_fraction"] == pytest.approx(0.25)
    assert module.logged[-1]["perf/step_time_s"] == pytest.approx(2.0)
    restored = DataWaitTimer()
    restored.load_state_dict(timer.state_dict())
    assert restored.fraction == pytest.approx(0.25)
