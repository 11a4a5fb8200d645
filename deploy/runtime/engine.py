"""The in-vehicle loop: synchronise camera frames by timestamp, preprocess, infer with the recurrent state carried
frame to frame, threshold the in-graph decoded outputs, and record per-stage timing, drops and deadline misses.

Timing definitions (ms): ``decode`` and ``camera_resize`` per camera frame, in that camera's thread (slowest
camera of the set); ``sync_wait`` from the first to the last camera frame of the set arriving; ``preprocess`` ego
motion + per-camera extrinsics + stack; ``inference`` the session call; ``postprocess`` threshold + slice into
``Boxes3D``/``Boxes2D``; ``sensor_to_output`` from the capture time of the set's newest image on the replay clock
to detections available (``--fast``: from the set being complete, since there is no clock); ``data_age`` the same
from the oldest image; ``overhead`` = set complete -> output minus inference.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploy.runtime.deadline import DropFilter
from deploy.runtime.model import DeployedModel
from deploy.runtime.postprocess import boxes2d_from_outputs, boxes3d_from_outputs
from deploy.runtime.preprocess import FramePreprocessor, resize_like_training
from deploy.runtime.replay_clip import ReplayClip
from deploy.runtime.sources import CameraFrame, CameraSource, LiveCameraSource, ReplayCameraSource, ReplayClock
from deploy.stats import LatencyStats
from perception.atomic import atomic_write_json
from perception.geometry import invert_se3

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


@dataclass
class RuntimeConfig:
    """Rate (Hz), real-time vs fast replay, thresholds and tolerances (seconds unless named _ms)."""

    rate_hz: float = 20.0
    realtime: bool = True
    score_threshold: float = 0.3
    score_threshold_2d: float = 0.3
    sync_tolerance_s: float | None = None  # default: the rig's nominal capture spread + half a frame period
    sync_timeout_s: float | None = None  # real time: wait this long for the rest of a set; default: one frame period
    max_gap_periods: float = 1.5  # reset the recurrent state after a gap longer than this many frame periods
    deadline_ms: float | None = None  # default: the model's budget deadline, else 1000 / rate_hz
    drop_filter_tau_s: float = 10.0
    drop_alert_threshold: float = 0.2
    queue_size: int = 2
    start_frame: int = 0
    max_frames: int | None = None

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz


@dataclass
class RuntimeSummary:
    """What a run did: counts, per-stage latency statistics (ms) and the reasons cameras were missing."""

    model: str
    source: str
    mode: str
    rate_hz: float
    deadline_ms: float
    frames_in_source: int
    sync_tolerance_ms: float = 0.0
    frames_processed: int = 0
    frames_dropped: int = 0
    drop_percent: float = 0.0
    drop_filtered_peak_percent: float = 0.0
    drop_alerts: int = 0
    deadline_misses: int = 0
    out_of_sync_sets: int = 0
    camera_timeouts: int = 0
    stale_sets: int = 0  # sets holding only frames of an already processed index (skipped)
    state_resets: int = 0
    missing_cameras: dict[str, str] = field(default_factory=dict)
    stages_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    wall_s: float = 0.0
    video: str | None = None
    video_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Runtime:
    """Runs a ``DeployedModel`` on camera sources; ``run_clip`` / ``run_live`` return a ``RuntimeSummary``."""

    def __init__(self, model: DeployedModel, config: RuntimeConfig | None = None) -> None:
        self.model = model
        self.config = config = config or RuntimeConfig()
        budget = model.budget or {}
        self.deadline_ms = float(config.deadline_ms or budget.get("deadline_ms") or 1000.0 / config.rate_hz)

    # ------------------------------------------------------------------ entry points
    def run_clip(
        self, clip_path: str | Path, *, out_dir: str | Path | None = None, video_path: str | Path | None = None
    ) -> RuntimeSummary:
        """Replay a clip folder (real time or fast); write ``detections.jsonl`` + ``summary.json`` into ``out_dir``."""
        clip = ReplayClip.open(clip_path)
        absent_model_cameras = [c for c in self.model.cameras if c not in clip.rig.names]
        rig = clip.rig if not absent_model_cameras else self.model.rig
        missing = dict(clip.missing)
        for name in absent_model_cameras:
            missing[name] = f"{clip.path / 'rig.yaml'}: camera {name!r} of the model is not in the clip's rig"
        start = self.config.start_frame
        stop = (
            clip.num_frames if self.config.max_frames is None else min(clip.num_frames, start + self.config.max_frames)
        )
        stop_event, notify = threading.Event(), threading.Event()
        t0 = float(min(clip.camera_timestamps[c][start] for c in clip.rig.names))
        clock = ReplayClock(t0, time.perf_counter() + 0.05) if self.config.realtime else None
        sources: list[CameraSource] = []
        for name in self.model.cameras:
            if name in missing or name not in clip.sources:
                continue
            sources.append(
                ReplayCameraSource(
                    name,
                    clip.sources[name],
                    clip.camera_timestamps[name],
                    clock=clock,
                    notify=notify,
                    stop=stop_event,
                    queue_size=self.config.queue_size,
                    start_index=start,
                    stop_index=stop,
                )
            )
        return self._run(
            sources,
            rig=rig,
            clip=clip,
            clock=clock,
            stop_event=stop_event,
            notify=notify,
            missing=missing,
            source_name=str(clip.path),
            frames_in_source=stop - start,
            out_dir=out_dir,
            video_path=video_path,
            video_fps=1.0 / clip.frame_period_s,
            first_index=start,
        )

    def run_live(
        self,
        devices: dict[str, str],
        *,
        duration_s: float,
        out_dir: str | Path | None = None,
        video_path: str | Path | None = None,
    ) -> RuntimeSummary:
        """Run on live OpenCV devices {camera name: device} for ``duration_s`` seconds (static rig extrinsics)."""
        stop_event, notify = threading.Event(), threading.Event()
        clock = ReplayClock(0.0)
        missing = {name: "no --camera device given" for name in self.model.cameras if name not in devices}
        sources: list[CameraSource] = [
            LiveCameraSource(
                name, devices[name], clock=clock, notify=notify, stop=stop_event, queue_size=self.config.queue_size
            )
            for name in self.model.cameras
            if name in devices
        ]
        timer = threading.Timer(duration_s, stop_event.set)
        timer.start()
        try:
            return self._run(
                sources,
                rig=self.model.rig,
                clip=None,
                clock=clock,
                stop_event=stop_event,
                notify=notify,
                missing=missing,
                source_name=",".join(f"{k}={v}" for k, v in devices.items()),
                frames_in_source=0,
                out_dir=out_dir,
                video_path=video_path,
                video_fps=self.config.rate_hz,
                first_index=None,
            )
        finally:
            timer.cancel()

    # ------------------------------------------------------------------ the loop
    def _run(
        self,
        sources: list[CameraSource],
        *,
        rig,
        clip: ReplayClip | None,
        clock: ReplayClock | None,
        stop_event: threading.Event,
        notify: threading.Event,
        missing: dict[str, str],
        source_name: str,
        frames_in_source: int,
        out_dir: str | Path | None,
        video_path: str | Path | None,
        video_fps: float,
        first_index: int | None,
    ) -> RuntimeSummary:
        cfg, model = self.config, self.model
        period = cfg.period_s
        source_period = clip.frame_period_s if clip is not None else period
        rig_spread = clip.capture_spread_s([c for c in model.cameras if c in clip.sources]) if clip is not None else 0.0
        tolerance = (
            cfg.sync_tolerance_s if cfg.sync_tolerance_s is not None else rig_spread + 0.5 * max(period, source_period)
        )
        sync_timeout = cfg.sync_timeout_s if cfg.sync_timeout_s is not None else max(period, source_period)
        max_gap = cfg.max_gap_periods * max(period, source_period)
        preprocessor = FramePreprocessor(rig, model.cameras, model.size_hw)
        sizes_wh = {name: (rig[name].width, rig[name].height) for name in model.cameras}
        summary = RuntimeSummary(
            model=str(model.path or "<session>"),
            source=source_name,
            mode="realtime" if cfg.realtime else "fast",
            rate_hz=cfg.rate_hz,
            deadline_ms=self.deadline_ms,
            frames_in_source=frames_in_source,
            missing_cameras=dict(missing),
        )
        summary.sync_tolerance_ms = 1e3 * tolerance
        drop_filter = DropFilter(period_s=period, tau_s=cfg.drop_filter_tau_s, alert_threshold=cfg.drop_alert_threshold)
        samples: dict[str, list[float]] = {stage: [] for stage in STAGES}
        out_dir = Path(out_dir) if out_dir is not None else None
        jsonl_tmp = jsonl = None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            jsonl = out_dir / "detections.jsonl"
            jsonl_tmp = out_dir / f".detections.jsonl.{os.getpid()}.tmp"
        sink = None
        if video_path is not None:
            from deploy.runtime.render import VideoSink

            sink = VideoSink(Path(video_path), video_fps)
            sink.start()
        state = model.initial_state()
        last_index: int | None = first_index - 1 if first_index is not None else None  # skipped at start = dropped
        last_reference: float | None = None
        last_world_from_ego: np.ndarray | None = None
        seen_ended: set[str] = set()
        started = time.perf_counter()
        for source in sources:  # resize in each camera's thread: same function as training, off the critical path
            source.transform = functools.partial(resize_like_training, size_hw=model.size_hw)
            source.start()
        stream = open(jsonl_tmp, "w") if jsonl_tmp is not None else None
        try:
            while True:
                frames = self._next_set(sources, notify, sync_timeout, summary)
                for source in sources:
                    if source.ended.is_set() and source.camera not in seen_ended:
                        seen_ended.add(source.camera)
                        if source.error:
                            summary.missing_cameras[source.camera] = source.error
                if frames is None:
                    break
                set_complete = time.perf_counter()
                index = max(frame.index for frame in frames.values())
                if last_index is not None and index <= last_index:  # only late frames of a processed index
                    summary.stale_sets += 1
                    continue
                capture_times = {name: frame.capture_time for name, frame in frames.items()}
                if max(capture_times.values()) - min(capture_times.values()) > tolerance:
                    summary.out_of_sync_sets += 1
                reference = float(clip.timestamps[index]) if clip is not None else max(capture_times.values())
                dropped = 0 if last_index is None else max(0, index - last_index - 1)
                summary.frames_dropped += dropped
                drop_filter.update(dropped)
                continuing = last_reference is not None and reference - last_reference <= max_gap
                if not continuing and last_reference is not None:
                    summary.state_resets += 1
                t_pre = time.perf_counter()
                world_from_ego, prev_from_curr, camera_from_ego = _set_geometry(
                    clip, rig, model.cameras, index, capture_times, last_world_from_ego if continuing else None
                )
                images = {name: frame.image for name, frame in frames.items()}
                model_images = {
                    name: frame.image if frame.model_image is None else frame.model_image
                    for name, frame in frames.items()
                }
                feeds = preprocessor.feeds(
                    model_images,
                    camera_from_ego=camera_from_ego,
                    prev_state=state,
                    prev_from_curr=prev_from_curr,
                    state_valid=continuing,
                )
                t_inf = time.perf_counter()
                outputs = model.run(feeds)
                t_post = time.perf_counter()
                if "state" in outputs:
                    state = outputs["state"]
                boxes3d = boxes3d_from_outputs(outputs, cfg.score_threshold)
                boxes2d = boxes2d_from_outputs(
                    outputs, model.cameras, model.size_hw, sizes_wh, cfg.score_threshold_2d, feeds["camera_valid"][0]
                )
                t_out = time.perf_counter()
                latency = _latency(
                    frames,
                    clock,
                    set_complete=set_complete,
                    preprocess=t_pre,
                    inference=t_inf,
                    postprocess=t_post,
                    output=t_out,
                )
                sensor_to_output = latency["sensor_to_output"]
                for stage, value in latency.items():
                    samples[stage].append(value)
                late = sensor_to_output > self.deadline_ms
                summary.deadline_misses += int(late)
                summary.frames_processed += 1
                record = {
                    "index": int(index),
                    "timestamp": reference,
                    "camera_timestamps": capture_times,
                    "camera_valid": {name: bool(v) for name, v in zip(model.cameras, feeds["camera_valid"][0])},
                    "state_reset": not continuing,
                    "frames_dropped_before": int(dropped),
                    "frame_drop_filtered": round(drop_filter.value, 4),
                    "drop_alert": drop_filter.alerting,
                    "deadline_miss": bool(late),
                    "boxes3d": boxes3d.to_dict(),
                    "boxes2d": {name: boxes.to_dict() for name, boxes in boxes2d.items()},
                    "latency_ms": {k: round(v, 3) for k, v in latency.items()},
                }
                if stream is not None:
                    stream.write(json.dumps(record) + "\n")
                if sink is not None:
                    extrinsics = {
                        name: camera_from_ego[model.cameras.index(name)]
                        if camera_from_ego is not None
                        else rig[name].camera_from_ego
                        for name in images
                    }
                    segmentation = outputs.get("segmentation")
                    sink.submit(
                        images=images,
                        boxes3d=boxes3d,
                        rig=rig,
                        camera_from_ego=extrinsics,
                        classes=model.classes.get("detection3d"),
                        grid=model.bev_grid,
                        segmentation=None if segmentation is None else segmentation[0],
                        segmentation_classes=model.classes.get("segmentation"),
                        caption=f"frame {index} t={reference:.3f}s  {latency['sensor_to_output']:.1f} ms",
                    )
                last_index, last_reference, last_world_from_ego = index, reference, world_from_ego
        finally:
            stop_event.set()
            for source in sources:
                source.join(timeout=2.0)
            if stream is not None:
                stream.close()
            if sink is not None:
                sink.close()
        summary.wall_s = time.perf_counter() - started
        total = summary.frames_processed + summary.frames_dropped
        summary.drop_percent = 100.0 * summary.frames_dropped / total if total else 0.0
        summary.drop_filtered_peak_percent = 100.0 * drop_filter.peak
        summary.drop_alerts = drop_filter.alerts
        summary.stages_ms = {stage: _stats(values) for stage, values in samples.items() if values}
        if sink is not None:
            summary.video = str(video_path) if sink.error is None else None
            summary.video_error = None if sink.error is None else repr(sink.error)
        if out_dir is not None:
            assert jsonl_tmp is not None and jsonl is not None
            os.replace(jsonl_tmp, jsonl)
            atomic_write_json(out_dir / "summary.json", summary.to_dict())
        return summary

    def _next_set(
        self, sources: list[CameraSource], notify: threading.Event, sync_timeout: float, summary: RuntimeSummary
    ) -> dict[str, CameraFrame] | None:
        """The next frame set: the newest frame per camera (real time) or the next one (fast); None at the end."""
        pending: dict[str, CameraFrame] = {}
        first_arrival: float | None = None
        while True:
            notify.clear()
            for source in sources:
                if source.camera in pending and not self.config.realtime:
                    continue
                while not source.frames.empty():
                    frame = source.frames.get_nowait()
                    pending[source.camera] = frame
                    if first_arrival is None:
                        first_arrival = time.perf_counter()
                    if not self.config.realtime:
                        break
            alive = [s for s in sources if not (s.ended.is_set() and s.frames.empty())]
            waiting = [s for s in alive if s.camera not in pending]
            if pending and not waiting:
                return pending
            if not alive:
                return pending or None
            if (
                self.config.realtime
                and pending
                and first_arrival is not None
                and time.perf_counter() - first_arrival >= sync_timeout
            ):
                summary.camera_timeouts += 1
                return pending
            remaining = 0.05 if first_arrival is None else sync_timeout - (time.perf_counter() - first_arrival)
            notify.wait(timeout=max(1e-4, remaining))


def _set_geometry(
    clip: ReplayClip | None,
    rig,
    cameras: list[str],
    index: int,
    capture_times: dict[str, float],
    prev_world_from_ego: np.ndarray | None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """(world_from_ego, prev_from_curr, camera_from_ego (N,4,4) at each camera's capture time) of a frame set;
    live sources have no poses: identity ego motion and the rig's static extrinsics (None)."""
    if clip is None:
        return None, np.eye(4), None
    world_from_ego = clip.world_from_ego[index]
    prev_from_curr = np.eye(4) if prev_world_from_ego is None else invert_se3(prev_world_from_ego) @ world_from_ego
    camera_from_ego = np.stack(
        [
            clip.camera_from_ego(index, name, capture_times.get(name))
            if name in clip.rig.names
            else rig[name].camera_from_ego
            for name in cameras
        ]
    )
    return world_from_ego, prev_from_curr, camera_from_ego


def _latency(
    frames: dict[str, CameraFrame],
    clock: ReplayClock | None,
    *,
    set_complete: float,
    preprocess: float,
    inference: float,
    postprocess: float,
    output: float,
) -> dict[str, float]:
    """Per-stage times (ms) of one frame set from perf_counter() stamps (see the module doc for definitions)."""
    captures = [frame.capture_time for frame in frames.values()]
    if clock is not None:
        sensor_to_output = (output - clock.wall_of(max(captures))) * 1e3
        data_age = (output - clock.wall_of(min(captures))) * 1e3
    else:
        sensor_to_output = data_age = (output - set_complete) * 1e3
    arrivals = [frame.arrival for frame in frames.values()]
    return {
        "decode": max(frame.decode_ms for frame in frames.values()),
        "camera_resize": max(frame.transform_ms for frame in frames.values()),
        "sync_wait": (max(arrivals) - min(arrivals)) * 1e3,
        "preprocess": (inference - preprocess) * 1e3,
        "inference": (postprocess - inference) * 1e3,
        "postprocess": (output - postprocess) * 1e3,
        "sensor_to_output": sensor_to_output,
        "data_age": data_age,
        "overhead": (output - set_complete - (postprocess - inference)) * 1e3,
    }


def _stats(values: list[float]) -> dict[str, float]:
    stats = LatencyStats.from_samples(np.asarray(values))
    return {"p50": stats.p50_ms, "p90": stats.p90_ms, "p99": stats.p99_ms, "max": stats.max_ms, "mean": stats.mean_ms}
