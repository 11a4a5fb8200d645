"""Bounded-memory offline labelling of long videos: the offline chain runs on overlapping windows of frames, each in
its own thread fed while the teacher runs, and track ids are stitched across windows in the overlap.

Window k covers frames [k * (W - O), k * (W - O) + W); both neighbours see the O overlap frames. The earlier window
owns the first half of an overlap, the later one the second half. A track of window k+1 takes the id of the window-k
track whose boxes it overlaps (IoU >= 0.5, same class) on the most overlap frames (Hungarian, at least
``max(2, O // 4)`` frames), else a new id. Memory is that of one or two windows, whatever the video length.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.geometry import box_iou
from perception.labels import Boxes2D

__all__ = ["StreamEndedEarly", "match_overlap_ids", "run_windowed_chain", "window_ranges"]

_END = object()


class StreamEndedEarly(RuntimeError):
    """The frame stream stopped before the number of frames the clip declares."""


def window_ranges(num_frames: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """[(start, stop)] frame ranges of length ``window`` overlapping by ``overlap``; the last one ends at num_frames."""
    if window < 2 or not 0 <= overlap < window:
        raise ValueError(
            f"window_frames / window_overlap: expected window >= 2 and 0 <= overlap < window, found {window}, {overlap}"
        )
    ranges, start = [], 0
    while True:
        stop = min(start + window, num_frames)
        ranges.append((start, stop))
        if stop >= num_frames:
            return ranges
        start = stop - overlap


class _StreamedDetections(Sequence):
    """Per-frame detections of one window, filled while frames stream; reading ahead of the stream is an error."""

    def __init__(self, num_frames: int) -> None:
        self.items: list[Boxes2D] = []
        self.num_frames = num_frames

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.num_frames))]
        if index < 0:
            index += self.num_frames
        if index >= len(self.items):
            raise RuntimeError(
                f"detections of frame {index} read before the frame was decoded ({len(self.items)} so far)"
            )
        return self.items[index]


class _ChainRun:
    """The offline chain over one window, in a thread that receives the window's frames through a bounded queue."""

    def __init__(
        self, chain: Callable, config: Any, start: int, stop: int, *, uses_frames: bool, queue_frames: int
    ) -> None:
        self.start, self.stop = start, stop
        self.store = _StreamedDetections(stop - start)
        self.uses_frames = uses_frames
        self.handoff: queue.Queue = queue.Queue(maxsize=max(queue_frames, 1))
        self.outcome: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._work, args=(chain, config), name=f"chain-{start}", daemon=True)
        self.thread.start()

    def _frames(self) -> Iterator[np.ndarray]:
        while True:
            item = self.handoff.get()
            if item is _END:
                return
            yield item

    def _work(self, chain: Callable, config: Any) -> None:
        try:
            if self.uses_frames:
                self.outcome["result"] = chain(self._frames(), self.store, config)
            else:
                for _ in self._frames():
                    pass
                self.outcome["result"] = chain(None, self.store, config)
        except BaseException as error:  # re-raised by the producer in result()
            self.outcome["error"] = error
        finally:
            while True:  # unblock a producer waiting on a full queue
                try:
                    self.handoff.get_nowait()
                except queue.Empty:
                    break

    def _put(self, item: object) -> None:
        while self.thread.is_alive():
            try:
                self.handoff.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def feed(self, index: int, image: np.ndarray, detections: Boxes2D) -> None:
        self.store.items.append(detections.with_fields(frame=np.full(len(detections), index - self.start, np.int64)))
        if self.uses_frames:
            self._put(image)

    def close(self) -> None:
        self._put(_END)

    def result(self):
        self.close()
        self.thread.join()
        if "error" in self.outcome:
            raise self.outcome["error"]
        return self.outcome["result"]


def match_overlap_ids(previous: dict[int, Boxes2D], current: dict[int, Boxes2D], min_frames: int) -> dict[int, int]:
    """current track id -> previous track id, from per-frame boxes in the overlap (frame -> Boxes2D with ids)."""
    prev_ids = sorted({int(t) for d in previous.values() for t in d.track_id})
    curr_ids = sorted({int(t) for d in current.values() for t in d.track_id})
    if not prev_ids or not curr_ids:
        return {}
    row = {t: i for i, t in enumerate(prev_ids)}
    col = {t: i for i, t in enumerate(curr_ids)}
    counts = np.zeros((len(prev_ids), len(curr_ids)))
    for frame, before in previous.items():
        after = current.get(frame)
        if after is None or not len(before) or not len(after):
            continue
        iou = box_iou(before.xyxy, after.xyxy)
        same = (iou >= 0.5) & (before.class_id[:, None] == after.class_id[None, :])
        for i, j in zip(*np.nonzero(same)):
            counts[row[int(before.track_id[i])], col[int(after.track_id[j])]] += 1
    rows, cols = linear_sum_assignment(-counts)
    return {curr_ids[c]: prev_ids[r] for r, c in zip(rows, cols) if counts[r, c] >= min_frames}


def _per_frame(tracks: Boxes2D, start: int, stop: int) -> dict[int, Boxes2D]:
    """Window result (local frames) -> {global frame: Boxes2D} for global frames in [start, stop)."""
    local = tracks.split_by_frame(stop - start)
    return {start + i: d for i, d in enumerate(local)}


def run_windowed_chain(
    chain: Callable,
    stream: Iterable[tuple[int, np.ndarray, Boxes2D]],
    num_frames: int,
    config: Any,
    *,
    window: int,
    overlap: int,
    uses_frames: bool,
    queue_frames: int = 16,
    defer: bool = False,
) -> tuple[list[Boxes2D], np.ndarray] | Callable[[], tuple[list[Boxes2D], np.ndarray]]:
    """Run ``chain(frames, detections, config)`` (``autolabel.offline.label_video_detections``) over windows while
    ``stream`` yields (frame index, BGR image, teacher detections) in order. Returns per-frame tracks (global frame
    in ``frame``, stitched ``track_id``) and per-frame uncertainty (F,); with ``defer``, returns once the stream is
    consumed a function that waits for the last window's chain and returns them (so the caller can start the next
    video while it finishes)."""
    ranges = window_ranges(num_frames, window, overlap)
    boundaries = (
        [0] + [start + (ranges[k - 1][1] - start) // 2 for k, (start, _) in enumerate(ranges) if k > 0] + [num_frames]
    )
    output: list[Boxes2D] = [Boxes2D.empty() for _ in range(num_frames)]
    uncertainty = np.zeros(num_frames)
    runs: list[_ChainRun] = []
    closing: list[tuple[int, _ChainRun]] = []
    state = {"next_id": 1, "previous_overlap": {}}
    seen = 0

    def collect(k: int, run: _ChainRun) -> None:
        result = run.result()
        frames = _per_frame(result.tracks, run.start, run.stop)
        if k == 0:
            mapping: dict[int, int] = {}
        else:
            previous_stop = ranges[k - 1][1]
            overlap_current = {f: d for f, d in frames.items() if f < previous_stop}
            mapping = match_overlap_ids(
                state["previous_overlap"], overlap_current, max(2, (previous_stop - run.start) // 4)
            )
        for track_id in sorted({int(t) for d in frames.values() for t in d.track_id}):
            if track_id not in mapping:
                mapping[track_id] = state["next_id"]
                state["next_id"] += 1
        lookup = lambda ids: np.array([mapping[int(t)] for t in ids], dtype=np.int64)  # noqa: E731
        frames = {
            f: d.with_fields(track_id=lookup(d.track_id), frame=np.full(len(d), f, np.int64)) for f, d in frames.items()
        }
        for frame in range(boundaries[k], boundaries[k + 1]):
            output[frame] = frames[frame]
            uncertainty[frame] = result.frame_uncertainty[frame - run.start]
        following = ranges[k + 1][0] if k + 1 < len(ranges) else num_frames
        state["previous_overlap"] = {f: d for f, d in frames.items() if f >= following}

    try:
        for index, image, detections in stream:
            while len(runs) < len(ranges) and ranges[len(runs)][0] == index:
                start, stop = ranges[len(runs)]
                runs.append(_ChainRun(chain, config, start, stop, uses_frames=uses_frames, queue_frames=queue_frames))
            for k, run in enumerate(runs):
                if run.start <= index < run.stop:
                    run.feed(index, image, detections)
                    if index == run.stop - 1:
                        run.close()  # its tracking runs in its thread while the next window's frames are inferred
                        while closing:  # the window before it has had a whole window's time to finish
                            collect(*closing.pop(0))
                        closing.append((k, run))
            seen = index + 1
    except BaseException:
        for run in runs:
            run.close()
        for run in runs:
            run.thread.join()
        raise
    if seen != num_frames:
        for _, run in closing:
            run.thread.join()
        raise StreamEndedEarly(f"decoded {seen} frames, expected {num_frames} (last good frame: {seen - 1})")

    def finish() -> tuple[list[Boxes2D], np.ndarray]:
        for k, run in closing:
            collect(k, run)
        return output, uncertainty

    return finish if defer else finish()
