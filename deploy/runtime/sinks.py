"""Where the runtime's per-frame results go: JSON lines, an annotated video, run statistics.

Each sink takes ``FrameResult`` objects one by one (``write``) and is finished once (``close``); the engine keeps
the list. ``RunStats`` fills a ``RuntimeSummary`` at the end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from deploy.runtime.step import FrameResult
from deploy.stats import LatencyStats
from perception.atomic import PendingFile
from perception.geometry import BevGrid
from perception.rig import Rig

STAGES = (
    "decode",
    "camera_resize",
    "sync_wait",
    "preprocess",
    "inference",
    "postprocess",
    "sensor_to_output",
    "data_age",
    "overhead",
)


class JsonlSink:
    """``detections.jsonl`` in ``out_dir``: one line per processed frame, written to a temporary file that
    ``commit`` renames into place (an interrupted run leaves no half file under the final name)."""

    def __init__(self, out_dir: Path, cameras: list[str]) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / "detections.jsonl"
        self.cameras = list(cameras)
        self._stream = PendingFile(self.path, "w")

    def write(self, result: FrameResult) -> None:
        self._stream.write(json.dumps(result.record(self.cameras)) + "\n")

    def close(self) -> None:
        self._stream.close()

    def commit(self) -> Path:
        """Move the finished file into place (after ``close``)."""
        return self._stream.commit()


class VideoOutput:
    """The annotated video (``deploy.runtime.render.VideoSink``: drawn and written in a background thread)."""

    def __init__(
        self,
        path: Path,
        fps: float,
        *,
        rig: Rig,
        cameras: list[str],
        classes: dict[str, list[str] | None],
        grid: BevGrid | None,
    ) -> None:
        from deploy.runtime.render import VideoSink

        self.path = Path(path)
        self.rig, self.cameras, self.classes, self.grid = rig, list(cameras), classes, grid
        self.sink = VideoSink(self.path, fps)
        self.sink.start()

    def write(self, result: FrameResult) -> None:
        extrinsics = {
            name: result.camera_from_ego[self.cameras.index(name)]
            if result.camera_from_ego is not None
            else self.rig[name].camera_from_ego
            for name in result.images
        }
        segmentation = result.outputs.get("segmentation")
        self.sink.submit(
            images=result.images,
            boxes3d=result.boxes3d,
            rig=self.rig,
            camera_from_ego=extrinsics,
            classes=self.classes.get("detection3d"),
            grid=self.grid,
            segmentation=None if segmentation is None else segmentation[0],
            segmentation_classes=self.classes.get("segmentation"),
            caption=f"frame {result.index} t={result.reference:.3f}s  {result.latency_ms['sensor_to_output']:.1f} ms",
        )

    def close(self) -> None:
        self.sink.close()

    @property
    def error(self) -> BaseException | None:
        return self.sink.error


class ProgressBar:
    """A tqdm bar over processed frame sets: frames (and dropped ones) against the source's frame count, with the
    last frame's end-to-end latency; stderr only, nothing in the outputs."""

    def __init__(self, total: int | None, *, desc: str = "frames") -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total or None, desc=desc, unit="frame")
        self._dropped = 0
        self._late = 0

    def write(self, result: FrameResult) -> None:
        self._dropped += int(result.dropped)
        self._late += int(result.late)
        self._bar.update(1 + int(result.dropped))
        total = result.latency_ms.get("sensor_to_output")
        self._bar.set_postfix(dropped=self._dropped, late=self._late, **({"ms": f"{total:.0f}"} if total else {}))

    def close(self) -> None:
        self._bar.close()


class RunStats:
    """Counts and per-stage latency samples (ms) over the processed frames."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {stage: [] for stage in STAGES}
        self.frames_processed = self.frames_dropped = self.deadline_misses = 0
        self.out_of_sync_sets = self.state_resets = 0

    def write(self, result: FrameResult) -> None:
        self.frames_processed += 1
        self.frames_dropped += result.dropped
        self.deadline_misses += int(result.late)
        self.out_of_sync_sets += int(result.out_of_sync)
        self.state_resets += int(result.state_reset)
        for stage, value in result.latency_ms.items():
            self.samples[stage].append(value)

    def close(self) -> None:
        pass

    def stages_ms(self) -> dict[str, dict[str, float]]:
        """{stage: {p50, p90, p99, max, mean}} of the stages with samples."""
        return {stage: latency_summary(values) for stage, values in self.samples.items() if values}

    def counts(self) -> dict[str, Any]:
        return {
            "frames_processed": self.frames_processed,
            "frames_dropped": self.frames_dropped,
            "deadline_misses": self.deadline_misses,
            "out_of_sync_sets": self.out_of_sync_sets,
            "state_resets": self.state_resets,
        }


def latency_summary(values: list[float]) -> dict[str, float]:
    """p50, p90, p99, max and mean (ms) of latency samples (``deploy.stats.LatencyStats``)."""
    stats = LatencyStats.from_samples(np.asarray(values))
    return {"p50": stats.p50_ms, "p90": stats.p90_ms, "p99": stats.p99_ms, "max": stats.max_ms, "mean": stats.mean_ms}
