"""deploy.runtime.scheduling: priorities applied for a block and restored, threads started inside reset, refusal
reported (not raised) without the right to raise priority."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from deploy.runtime.scheduling import scheduled

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread priorities: Linux only")


def _state(tid: int) -> tuple[int, int]:
    return os.sched_getscheduler(tid), os.getpriority(os.PRIO_PROCESS, tid)


@pytest.mark.parametrize("priority", ["high", "realtime"])
def test_priority_applied_inside_and_restored_after(priority: str) -> None:
    tid = threading.get_native_id()
    before = _state(tid)
    started: dict[str, tuple[int, int]] = {}
    worker_tid: list[int] = []
    release, ready = threading.Event(), threading.Event()

    def worker() -> None:
        worker_tid.append(threading.get_native_id())
        started["inside"] = _state(worker_tid[0])
        ready.set()
        release.wait(10.0)

    with scheduled(priority, thread_ids=[tid]) as report:
        inside = _state(tid)
        thread = threading.Thread(target=worker)
        thread.start()
        assert ready.wait(10.0)  # blocking, never spinning: a spinning SCHED_FIFO thread would starve the worker
    if report.applied == "normal":  # no CAP_SYS_NICE here: reported, not raised
        assert "CAP_SYS_NICE" in report.note
        release.set()
        thread.join()
        return
    after_worker = _state(worker_tid[0])
    release.set()
    thread.join()
    expected = (os.SCHED_FIFO, before[1]) if priority == "realtime" else (before[0], -10)
    assert inside == expected and started["inside"] == expected  # a thread started inside inherits it
    assert _state(tid) == before  # restored
    assert after_worker == (os.SCHED_OTHER, 0)  # threads started inside: back to normal
    assert report.threads == 1 and report.to_dict()["applied"] == priority


def test_normal_changes_nothing_and_unknown_is_refused() -> None:
    tid = threading.get_native_id()
    before = _state(tid)
    with scheduled("normal") as report:
        assert _state(tid) == before and report.threads == 0
    with pytest.raises(ValueError, match="priority: expected one of"):
        with scheduled("urgent"):
            pass
