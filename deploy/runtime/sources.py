"""Camera sources: clip videos replayed at their capture timestamps, or live OpenCV devices; one decoding thread per
camera feeding a bounded queue (a real-time source drops its oldest frame when the consumer falls behind)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.runtime.faults import FaultPlan, FrameFate
from perception.video import VideoError, VideoReader


@dataclass
class CameraFrame:
    """One decoded image: camera, frame index, capture time (s, replay clock), decode time (ms), arrival (perf s);
    ``model_image`` is the image preprocessed in the camera's own thread (None when the source has no transform)."""

    camera: str
    index: int
    capture_time: float
    image: np.ndarray
    decode_ms: float
    arrival: float
    model_image: np.ndarray | None = None
    transform_ms: float = 0.0


class ReplayClock:
    """Maps clip time (s) to wall time: clip time ``t0`` happens at ``perf_counter()`` value ``wall0``."""

    def __init__(self, t0: float, wall0: float | None = None, speed: float = 1.0) -> None:
        self.t0 = float(t0)
        self.wall0 = time.perf_counter() if wall0 is None else wall0
        self.speed = float(speed)

    def wall_of(self, t: float) -> float:
        """perf_counter() value at which clip time ``t`` is 'now'."""
        return self.wall0 + (t - self.t0) / self.speed

    def now(self) -> float:
        """Current clip time (s)."""
        return self.t0 + (time.perf_counter() - self.wall0) * self.speed

    def sleep_until(self, t: float, stop: threading.Event) -> bool:
        """Sleep until clip time ``t`` (False if ``stop`` was set meanwhile)."""
        delay = self.wall_of(t) - time.perf_counter()
        if delay > 0:
            return not stop.wait(delay)
        return not stop.is_set()


class CameraSource(threading.Thread):
    """Base: a daemon thread putting ``CameraFrame`` into a bounded queue; ``ended``/``error`` report the end."""

    def __init__(
        self, name: str, *, queue_size: int, drop_oldest: bool, notify: threading.Event, stop: threading.Event
    ) -> None:
        super().__init__(name=f"camera-{name}", daemon=True)
        self.camera = name
        self.frames: queue.Queue[CameraFrame] = queue.Queue(maxsize=max(1, queue_size))
        self.drop_oldest = drop_oldest
        self.notify, self.stop_event = notify, stop
        self.ended = threading.Event()
        self.error: str | None = None
        self.delivered = 0
        self.dropped_at_source = 0
        self.transform: Callable[[np.ndarray], np.ndarray] | None = None
        self.faults: FaultPlan | None = None  # injected faults (replay only; ``deploy.runtime.faults``)
        self.injected = {"lost": 0, "late": 0, "dead_after": None}

    def _deliver(self, frame: CameraFrame) -> bool:
        """Apply ``transform`` (per-camera preprocessing, off the main loop's critical path), then queue the frame
        (drop the oldest when full in real-time mode; block otherwise). False once stopped."""
        if self.transform is not None:
            started = time.perf_counter()
            frame.model_image = self.transform(frame.image)
            frame.arrival = time.perf_counter()
            frame.transform_ms = (frame.arrival - started) * 1e3
        while not self.stop_event.is_set():
            try:
                if self.drop_oldest:
                    self.frames.put_nowait(frame)
                else:
                    self.frames.put(frame, timeout=0.05)
                self.delivered += 1
                self.notify.set()
                return True
            except queue.Full:
                if self.drop_oldest:
                    try:
                        self.frames.get_nowait()
                        self.dropped_at_source += 1
                    except queue.Empty:
                        pass
        return False

    def _finish(self, error: str | None) -> None:
        self.error = error
        self.ended.set()
        self.notify.set()


class ReplayCameraSource(CameraSource):
    """Decodes a camera's video (or image folder) and delivers frame i at its capture time on the replay clock
    (``clock=None``: as fast as the consumer takes them). Decoding starts at the capture time, so its cost is part
    of the sensor-to-output latency."""

    def __init__(
        self,
        name: str,
        path: Path,
        capture_times: np.ndarray,
        *,
        clock: ReplayClock | None,
        notify: threading.Event,
        stop: threading.Event,
        queue_size: int = 2,
        start_index: int = 0,
        stop_index: int | None = None,
    ) -> None:
        super().__init__(name, queue_size=queue_size, drop_oldest=clock is not None, notify=notify, stop=stop)
        self.path = Path(path)
        self.capture_times = np.asarray(capture_times, np.float64)
        self.clock = clock
        self.start_index = start_index
        self.stop_index = len(self.capture_times) if stop_index is None else min(stop_index, len(self.capture_times))

    def run(self) -> None:
        try:
            reader = VideoReader(self.path)
        except VideoError as error:
            self._finish(str(error))
            return
        iterator = iter(reader)
        index = 0
        try:
            while index < self.stop_index:
                if self.clock is not None and index >= self.start_index:
                    if not self.clock.sleep_until(float(self.capture_times[index]), self.stop_event):
                        break
                started = time.perf_counter()
                try:
                    image = next(iterator)
                except StopIteration:
                    self._finish(
                        f"{self.path}: stream ended after {index} frames (frames.csv lists "
                        f"{len(self.capture_times)}; last good frame: {index - 1})"
                    )
                    return
                except VideoError as error:
                    self._finish(str(error))
                    return
                done = time.perf_counter()
                if index >= self.start_index:
                    fate = self._fate(index)
                    if fate.dead:
                        self._go_silent(index)
                        return
                    if fate.delivered and not self._hold(fate.delay_s):
                        break
                    if fate.delivered:
                        frame = CameraFrame(
                            self.camera, index, float(self.capture_times[index]), image, (done - started) * 1e3, done
                        )
                        if not self._deliver(frame):
                            break
                index += 1
            self._finish(None)
        finally:
            reader.close()

    def _fate(self, index: int) -> FrameFate:
        if self.faults is None:
            return FrameFate()
        elapsed = float(self.capture_times[index] - self.capture_times[self.start_index])
        fate = self.faults.fate(self.camera, index, elapsed)
        self.injected["lost"] += int(fate.lost)
        self.injected["late"] += int(fate.delay_s > 0)
        return fate

    def _hold(self, delay_s: float) -> bool:
        """Delay an injected late frame (real time only; nothing is late without a clock). False once stopped."""
        if delay_s <= 0 or self.clock is None:
            return not self.stop_event.is_set()
        return not self.stop_event.wait(delay_s)

    def _go_silent(self, index: int) -> None:
        """An injected camera death: in real time the thread stays alive but delivers nothing more until the replay
        would have ended (a hung camera, no end of stream); without a clock nothing can hang, so the stream ends
        with the reason at once."""
        self.injected["dead_after"] = index
        reason = f"camera {self.camera!r}: fault injected, no frames from frame {index} on"
        if self.clock is not None:
            self.clock.sleep_until(float(self.capture_times[self.stop_index - 1]), self.stop_event)
        self._finish(reason)


class LiveCameraSource(CameraSource):
    """An OpenCV capture device (``/dev/video0``, an index, or a URL); capture time = read time on ``clock``."""

    def __init__(
        self,
        name: str,
        device: str,
        *,
        clock: ReplayClock,
        notify: threading.Event,
        stop: threading.Event,
        queue_size: int = 2,
    ) -> None:
        super().__init__(name, queue_size=queue_size, drop_oldest=True, notify=notify, stop=stop)
        self.device, self.clock = device, clock

    def run(self) -> None:
        import cv2

        target = int(self.device) if self.device.isdigit() else self.device
        capture = cv2.VideoCapture(target)
        if not capture.isOpened():
            self._finish(f"camera {self.camera!r}: cannot open device {self.device!r}")
            return
        index = 0
        try:
            while not self.stop_event.is_set():
                started = time.perf_counter()
                ok, image = capture.read()
                if not ok:
                    self._finish(
                        f"camera {self.camera!r}: device {self.device!r} stopped delivering after {index} frames"
                    )
                    return
                done = time.perf_counter()
                capture_time = self.clock.t0 + (started - self.clock.wall0) * self.clock.speed
                if not self._deliver(
                    CameraFrame(self.camera, index, capture_time, image, (done - started) * 1e3, done)
                ):
                    break
                index += 1
            self._finish(None)
        finally:
            capture.release()
