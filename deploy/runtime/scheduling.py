"""CPU priority and core pinning of the runtime's threads (Linux), so a busy neighbour cannot stretch the latency.

An in-vehicle runtime is the process that must not wait: openpilot runs its driving model with a real-time
scheduling class on dedicated cores. ``scheduled`` applies one of three priorities to the threads it is given for the
duration of a run and restores what they had afterwards:

- ``normal``: leave the threads as they are (the default);
- ``high``: nice -10 (the fair scheduler gives such a thread ~9x the CPU share of a nice-0 neighbour);
- ``realtime``: ``SCHED_FIFO`` priority 10: the thread preempts every ordinary process the moment it is runnable.
  The runtime's threads sleep between frames (and onnxruntime's workers must not spin: ``allow_spinning=False``), so
  they take only the CPU they need; the kernel still reserves 5% of each core for ordinary processes.

Both need the right to raise priority (root or CAP_SYS_NICE); without it the run continues at normal priority and
``SchedulingReport.note`` says why.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

PRIORITIES = ("normal", "high", "realtime")
HIGH_NICE = -10
REALTIME_PRIORITY = 10


@dataclass
class SchedulingReport:
    """What was applied: the priority asked for and obtained, the cores, the thread count, and any reason why not."""

    requested: str = "normal"
    applied: str = "normal"
    cores: list[int] | None = None
    threads: int = 0
    note: str = ""
    _restore: list[tuple[int, int, int, int]] = field(default_factory=list, repr=False)  # tid, policy, prio, nice

    def to_dict(self) -> dict:
        return {
            "requested": self.requested,
            "applied": self.applied,
            "cores": self.cores,
            "threads": self.threads,
            "note": self.note,
        }


def process_thread_ids() -> list[int]:
    """Native ids of every thread of this process (Linux ``/proc/self/task``; elsewhere the calling thread)."""
    try:
        return sorted(int(name) for name in os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return [threading.get_native_id()]


def _apply(tid: int, priority: str, cores: Sequence[int] | None) -> None:
    if cores:
        os.sched_setaffinity(tid, set(cores))
    if priority == "realtime":
        os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
    elif priority == "high":
        os.setpriority(os.PRIO_PROCESS, tid, HIGH_NICE)  # Linux: nice is per thread


@contextlib.contextmanager
def scheduled(
    priority: str = "normal", *, cores: Sequence[int] | None = None, thread_ids: Sequence[int] | None = None
) -> Iterator[SchedulingReport]:
    """Run the body with ``thread_ids`` (default: every thread of the process) at ``priority`` and pinned to
    ``cores`` (None: anywhere); restores their policy, nice value and affinity afterwards."""
    if priority not in PRIORITIES:
        raise ValueError(f"priority: expected one of {PRIORITIES}, found {priority!r}")
    report = SchedulingReport(requested=priority, cores=list(cores) if cores else None)
    if (priority == "normal" and not cores) or not sys.platform.startswith("linux"):
        if priority != "normal" or cores:
            report.note = f"not applied: thread priorities and pinning are implemented for Linux, not {sys.platform}"
        yield report
        return
    tids = list(thread_ids) if thread_ids is not None else process_thread_ids()
    affinity = os.sched_getaffinity(0)
    applied = priority
    for tid in tids:
        try:
            before = (tid, os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority,
                      os.getpriority(os.PRIO_PROCESS, tid))  # fmt: skip
        except OSError:  # the thread has ended meanwhile
            continue
        try:
            _apply(tid, priority, cores)
        except PermissionError as error:
            applied = "normal"
            report.note = f"{priority} priority not applied ({error}): needs root or CAP_SYS_NICE"
            with contextlib.suppress(OSError):
                _apply(tid, "normal", cores)
        except OSError:
            continue
        report._restore.append(before)
        report.threads += 1
    report.applied = applied
    try:
        yield report
    finally:
        # threads started inside the block inherited the priority: back to normal (those still alive)
        for tid in set(process_thread_ids()) - set(tids):
            with contextlib.suppress(OSError):
                if os.sched_getscheduler(tid) == os.SCHED_FIFO or os.getpriority(os.PRIO_PROCESS, tid) == HIGH_NICE:
                    os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
                    os.setpriority(os.PRIO_PROCESS, tid, 0)
        for tid, policy, prio, nice in report._restore:
            with contextlib.suppress(OSError):
                os.sched_setscheduler(tid, policy, os.sched_param(prio))
                os.setpriority(os.PRIO_PROCESS, tid, nice)
                if cores:
                    os.sched_setaffinity(tid, affinity)
