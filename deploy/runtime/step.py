"""One step of the in-vehicle loop: a synchronised frame set in, detections out.

``FrameStep.process`` decides what the set means for the stream (stale, dropped frames before it, out of sync,
recurrent state continued or reset), builds the model's feeds (``deploy.runtime.preprocess``, the training rule),
runs the model carrying its state, thresholds the in-graph decoded outputs and times each stage. What happens to
the result (JSON lines, video, statistics) is the sinks' business (``deploy.runtime.sinks``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from deploy.runtime.deadline import DropFilter
from deploy.runtime.model import DeployedModel
from deploy.runtime.postprocess import boxes2d_from_outputs, boxes3d_from_outputs
from deploy.runtime.preprocess import FramePreprocessor
from deploy.runtime.sources import CameraFrame, ReplayClock
from perception.clip import DriveClip
from perception.geometry import invert_se3
from perception.labels import Boxes2D, Boxes3D
from perception.rig import Rig


@dataclass
class StepTiming:
    """perf_counter() stamps (s) of one step: set complete, and the start of preprocess, inference,
    postprocess and output."""

    set_complete: float
    preprocess: float
    inference: float
    postprocess: float
    output: float


@dataclass
class FrameResult:
    """Everything one processed frame set produced; ``camera_from_ego`` (N, 4, 4) is None for live sources."""

    index: int
    reference: float  # the frame's reference time (s): frames.csv timestamp, or the newest capture (live)
    capture_times: dict[str, float]
    images: dict[str, np.ndarray]  # the cameras' own BGR images
    camera_from_ego: np.ndarray | None
    camera_valid: np.ndarray  # [N] in the model's camera order
    out_of_sync: bool
    continuing: bool  # False: the recurrent state was reset (first frame or a gap)
    state_reset: bool  # a reset after an earlier frame (a gap longer than max_gap)
    dropped: int  # frames skipped since the previous processed one
    drop_filtered: float
    drop_alert: bool
    late: bool  # sensor_to_output > deadline
    outputs: dict[str, np.ndarray]
    boxes3d: Boxes3D
    boxes2d: dict[str, Boxes2D]
    latency_ms: dict[str, float]

    def record(self, cameras: list[str]) -> dict[str, Any]:
        """The JSON line of this frame (``detections.jsonl``)."""
        return {
            "index": int(self.index),
            "timestamp": self.reference,
            "camera_timestamps": self.capture_times,
            "camera_valid": {name: bool(v) for name, v in zip(cameras, self.camera_valid)},
            "state_reset": not self.continuing,
            "frames_dropped_before": int(self.dropped),
            "frame_drop_filtered": round(self.drop_filtered, 4),
            "drop_alert": self.drop_alert,
            "deadline_miss": bool(self.late),
            "boxes3d": self.boxes3d.to_dict(),
            "boxes2d": {name: boxes.to_dict() for name, boxes in self.boxes2d.items()},
            "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
        }


class FrameStep:
    """The per-frame step, with the stream state it carries (last index and time, pose, recurrent state).

    ``clip`` None = live cameras (no poses: identity ego motion, the rig's static extrinsics). ``first_index`` is
    the index before which frames were skipped on purpose (replay start: counted as dropped if missed)."""

    def __init__(
        self,
        model: DeployedModel,
        *,
        rig: Rig,
        clip: DriveClip | None,
        clock: ReplayClock | None,
        drop_filter: DropFilter,
        sync_tolerance_s: float,
        max_gap_s: float,
        deadline_ms: float,
        score_threshold: float,
        score_threshold_2d: float,
        first_index: int | None,
    ) -> None:
        self.model, self.rig, self.clip, self.clock = model, rig, clip, clock
        self.drop_filter = drop_filter
        self.sync_tolerance_s, self.max_gap_s, self.deadline_ms = sync_tolerance_s, max_gap_s, deadline_ms
        self.score_threshold, self.score_threshold_2d = score_threshold, score_threshold_2d
        source = str(clip.path / "rig.yaml") if clip is not None and rig is clip.rig else None
        self.preprocessor = FramePreprocessor(
            rig, model.cameras, model.size_hw, source=source, distortion_layout=model.distortion_layout
        )
        self.sizes_wh = {name: (rig[name].width, rig[name].height) for name in model.cameras}
        self.state = model.initial_state()
        self.last_index: int | None = first_index - 1 if first_index is not None else None
        self.last_reference: float | None = None
        self.last_world_from_ego: np.ndarray | None = None
        self.stale_sets = 0  # sets holding only frames of an already processed index (skipped)

    def process(self, frames: dict[str, CameraFrame], set_complete: float) -> FrameResult | None:
        """Run one frame set (complete at perf_counter() ``set_complete``); None for a stale set (skipped)."""
        index = max(frame.index for frame in frames.values())
        if self.last_index is not None and index <= self.last_index:  # only late frames of a processed index
            self.stale_sets += 1
            return None
        capture_times = {name: frame.capture_time for name, frame in frames.items()}
        out_of_sync = max(capture_times.values()) - min(capture_times.values()) > self.sync_tolerance_s
        reference = float(self.clip.timestamps[index]) if self.clip is not None else max(capture_times.values())
        dropped = 0 if self.last_index is None else max(0, index - self.last_index - 1)
        self.drop_filter.update(dropped)
        continuing = self.last_reference is not None and reference - self.last_reference <= self.max_gap_s
        state_reset = not continuing and self.last_reference is not None

        t_pre = time.perf_counter()
        world_from_ego, prev_from_curr, camera_from_ego = self._geometry(
            index, capture_times, self.last_world_from_ego if continuing else None
        )
        model_images = {
            name: frame.image if frame.model_image is None else frame.model_image for name, frame in frames.items()
        }
        feeds = self.preprocessor.feeds(
            model_images,
            camera_from_ego=camera_from_ego,
            prev_state=self.state,
            prev_from_curr=prev_from_curr,
            state_valid=continuing,
        )
        t_inf = time.perf_counter()
        outputs = self.model.run(feeds)
        t_post = time.perf_counter()
        if "state" in outputs:
            self.state = outputs["state"]
        boxes3d = boxes3d_from_outputs(outputs, self.score_threshold)
        boxes2d = boxes2d_from_outputs(
            outputs,
            self.model.cameras,
            self.model.size_hw,
            self.sizes_wh,
            self.score_threshold_2d,
            feeds["camera_valid"][0],
        )
        t_out = time.perf_counter()
        latency = stage_latency(frames, self.clock, StepTiming(set_complete, t_pre, t_inf, t_post, t_out))
        self.last_index, self.last_reference, self.last_world_from_ego = index, reference, world_from_ego
        return FrameResult(
            index=index,
            reference=reference,
            capture_times=capture_times,
            images={name: frame.image for name, frame in frames.items()},
            camera_from_ego=camera_from_ego,
            camera_valid=feeds["camera_valid"][0],
            out_of_sync=out_of_sync,
            continuing=continuing,
            state_reset=state_reset,
            dropped=dropped,
            drop_filtered=self.drop_filter.value,
            drop_alert=self.drop_filter.alerting,
            late=latency["sensor_to_output"] > self.deadline_ms,
            outputs=outputs,
            boxes3d=boxes3d,
            boxes2d=boxes2d,
            latency_ms=latency,
        )

    def _geometry(
        self, index: int, capture_times: dict[str, float], prev_world_from_ego: np.ndarray | None
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
        """(world_from_ego, prev_from_curr, camera_from_ego (N,4,4) at each camera's capture time) of a frame set;
        live sources have no poses: identity ego motion and the rig's static extrinsics (None)."""
        clip = self.clip
        if clip is None:
            return None, np.eye(4), None
        world_from_ego = clip.world_from_ego[index]
        prev_from_curr = np.eye(4) if prev_world_from_ego is None else invert_se3(prev_world_from_ego) @ world_from_ego
        camera_from_ego = np.stack(
            [
                clip.camera_from_ego(index, name, capture_times.get(name))
                if name in clip.rig.names
                else self.rig[name].camera_from_ego
                for name in self.model.cameras
            ]
        )
        return world_from_ego, prev_from_curr, camera_from_ego


def stage_latency(frames: dict[str, CameraFrame], clock: ReplayClock | None, timing: StepTiming) -> dict[str, float]:
    """Per-stage times (ms) of one frame set (definitions in ``deploy.runtime.engine``'s module doc)."""
    captures = [frame.capture_time for frame in frames.values()]
    if clock is not None:
        sensor_to_output = (timing.output - clock.wall_of(max(captures))) * 1e3
        data_age = (timing.output - clock.wall_of(min(captures))) * 1e3
    else:
        sensor_to_output = data_age = (timing.output - timing.set_complete) * 1e3
    arrivals = [frame.arrival for frame in frames.values()]
    inference_s = timing.postprocess - timing.inference
    return {
        "decode": max(frame.decode_ms for frame in frames.values()),
        "camera_resize": max(frame.transform_ms for frame in frames.values()),
        "sync_wait": (max(arrivals) - min(arrivals)) * 1e3,
        "preprocess": (timing.inference - timing.preprocess) * 1e3,
        "inference": inference_s * 1e3,
        "postprocess": (timing.output - timing.postprocess) * 1e3,
        "sensor_to_output": sensor_to_output,
        "data_age": data_age,
        "overhead": (timing.output - timing.set_complete - inference_s) * 1e3,
    }
