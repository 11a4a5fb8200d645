"""Frame sets from camera sources: which camera frames go to the model together, and how long to wait for a late one.

- Fast replay (no clock): frames are grouped by frame index, so a frame that never arrives leaves a hole in that one
  set (the camera is marked missing there) instead of shifting the camera against the others for the rest of the run.
- Real time: the newest frame of each camera. A set waits for missing cameras at most ``sync_timeout_s`` after its
  first frame arrived and, deadline-aware, no later than the moment where the expected processing time (p90 of the
  recent preprocess-to-output times) would still end within the deadline of the set's newest image: a late or lost
  frame costs that camera's image, not the deadline. A camera that missed ``silent_after`` sets in a row (hung,
  unplugged, dead) is no longer waited for until it delivers again; ``events`` records when it went silent and when
  it came back.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import numpy as np

from deploy.runtime.sources import CameraFrame, CameraSource, ReplayClock


class FrameSync:
    """Assembles the next frame set (``next_set``); ``processed`` feeds back each set's processing time."""

    def __init__(
        self,
        sources: list[CameraSource],
        notify: threading.Event,
        *,
        realtime: bool,
        sync_timeout_s: float,
        clock: ReplayClock | None,
        deadline_s: float | None,
        silent_after: int = 3,
    ) -> None:
        self.sources, self.notify, self.realtime = sources, notify, realtime
        self.sync_timeout_s, self.clock, self.deadline_s = sync_timeout_s, clock, deadline_s
        self.silent_after = max(int(silent_after), 1)
        self.timeouts = 0  # sets sent without a camera that was still waited for
        self.misses = {source.camera: 0 for source in sources}
        self.silent: set[str] = set()
        self.events: list[dict[str, Any]] = []  # {"camera", "event": "silent" | "back", "time" (clip s), "sets"}
        self._held: dict[str, CameraFrame] = {}  # fast mode: frames of a later index, kept for their own set
        self._processing: deque[float] = deque(maxlen=32)

    def processed(self, seconds: float) -> None:
        """Time (s) a set took from complete to output; the deadline-aware wait expects the p90 of these."""
        self._processing.append(float(seconds))

    def expected_processing_s(self) -> float:
        return float(np.percentile(self._processing, 90)) if self._processing else 0.0

    def next_set(self) -> dict[str, CameraFrame] | None:
        """The next set of frames (camera -> frame), or None when every source has ended."""
        frames = self._next_realtime() if self.realtime else self._next_fast()
        if frames is not None:
            self._account(frames)
        return frames

    # ------------------------------------------------------------------ fast replay: grouped by index
    def _next_fast(self) -> dict[str, CameraFrame] | None:
        while True:
            self.notify.clear()
            for source in self.sources:
                if source.camera not in self._held and not source.frames.empty():
                    self._held[source.camera] = source.frames.get_nowait()
            alive = [s for s in self.sources if not (s.ended.is_set() and s.frames.empty())]
            waiting = [s for s in alive if s.camera not in self._held]
            if not waiting and self._held:
                index = min(frame.index for frame in self._held.values())
                chosen = {c: f for c, f in self._held.items() if f.index == index}
                for camera in chosen:
                    del self._held[camera]
                return chosen
            if not alive and not self._held:
                return None
            self.notify.wait(timeout=0.05)

    # ------------------------------------------------------------------ real time: newest frames, bounded wait
    def _next_realtime(self) -> dict[str, CameraFrame] | None:
        pending: dict[str, CameraFrame] = {}
        first_arrival: float | None = None
        while True:
            self.notify.clear()
            for source in self.sources:
                while not source.frames.empty():
                    pending[source.camera] = source.frames.get_nowait()
                    if first_arrival is None:
                        first_arrival = time.perf_counter()
            alive = [s for s in self.sources if not (s.ended.is_set() and s.frames.empty())]
            waiting = [s for s in alive if s.camera not in pending and s.camera not in self.silent]
            if pending and not waiting:
                return pending
            if not alive or (not pending and all(s.camera in self.silent for s in alive)):
                return pending or None  # every camera still open is silent: the run is over
            if pending and first_arrival is not None:
                limit = self._wait_limit(pending, first_arrival)
                now = time.perf_counter()
                if now >= limit:
                    self.timeouts += 1
                    return pending
                self.notify.wait(timeout=max(1e-4, limit - now))
            else:
                self.notify.wait(timeout=0.05)

    def _wait_limit(self, pending: dict[str, CameraFrame], first_arrival: float) -> float:
        """perf_counter() time after which the set goes without its missing cameras."""
        limit = first_arrival + self.sync_timeout_s
        if self.clock is not None and self.deadline_s is not None:
            newest = max(frame.capture_time for frame in pending.values())
            limit = min(limit, self.clock.wall_of(newest) + self.deadline_s - self.expected_processing_s())
        return limit

    # ------------------------------------------------------------------ silent cameras
    def _account(self, frames: dict[str, CameraFrame]) -> None:
        now = max(frame.capture_time for frame in frames.values())
        for source in self.sources:
            camera = source.camera
            if camera in frames:
                if camera in self.silent:
                    self.silent.discard(camera)
                    self.events.append({"camera": camera, "event": "back", "time": now, "sets": self.misses[camera]})
                self.misses[camera] = 0
                continue
            if source.ended.is_set() and source.frames.empty():
                continue
            self.misses[camera] += 1
            if self.misses[camera] == self.silent_after and self.realtime:
                self.silent.add(camera)
                self.events.append({"camera": camera, "event": "silent", "time": now, "sets": self.misses[camera]})
