"""The in-vehicle loop: synchronise camera frames by timestamp, preprocess, infer with the recurrent state carried
frame to frame, threshold the in-graph decoded outputs, and record per-stage timing, drops and deadline misses.
The loop is ``Runtime._run``: camera sources -> frame sets (``deploy.runtime.sync.FrameSync``) -> ``FrameStep``
(``deploy.runtime.step``) -> sinks (``deploy.runtime.sinks``: JSON lines, video, statistics; ``deploy.runtime.quality``:
detection quality against the clip's labels). Clips are read by ``DriveClip`` (lenient); replays can inject camera
faults (``deploy.runtime.faults``: a camera dying mid-clip, frames lost or late).

Timing definitions (ms): ``decode`` and ``camera_resize`` per camera frame, in that camera's thread (slowest
camera of the set); ``sync_wait`` from the first to the last camera frame of the set arriving; ``preprocess`` ego
motion + per-camera extrinsics + stack; ``inference`` the session call; ``postprocess`` threshold + slice into
``Boxes3D``/``Boxes2D``; ``sensor_to_output`` from the capture time of the set's newest image on the replay clock
to detections available (``--fast``: from the set being complete, since there is no clock); ``data_age`` the same
from the oldest image; ``overhead`` = set complete -> output minus inference.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploy.runtime.deadline import DropFilter
from deploy.runtime.faults import FaultPlan
from deploy.runtime.model import DeployedModel
from deploy.runtime.quality import QualitySink
from deploy.runtime.scheduling import process_thread_ids, scheduled
from deploy.runtime.sinks import STAGES, JsonlSink, ProgressBar, RunStats, VideoOutput
from deploy.runtime.sources import CameraSource, LiveCameraSource, ReplayCameraSource, ReplayClock
from deploy.runtime.step import FrameStep
from deploy.runtime.sync import FrameSync
from perception.atomic import atomic_write_json
from perception.clip import ClipError, DriveClip
from perception.model_input import resize_image
from perception.rig import Rig

__all__ = ["STAGES", "Runtime", "RuntimeConfig", "RuntimeSummary"]


@dataclass
class RuntimeConfig:
    """Rate (Hz), real-time vs fast replay, thresholds and tolerances (seconds unless named _ms)."""

    rate_hz: float = 20.0
    realtime: bool = True
    score_threshold: float = 0.3
    score_threshold_2d: float = 0.3
    sync_tolerance_s: float | None = None  # default: the rig's nominal capture spread + half a frame period
    sync_timeout_s: float | None = None  # real time: wait this long for the rest of a set; default: one frame period
    deadline_aware_sync: bool = True  # real time, default sync timeout: never hold a set past its deadline
    silent_after_sets: int = 3  # real time: stop waiting for a camera missing from this many sets in a row
    max_gap_periods: float = 1.5  # reset the recurrent state after a gap longer than this many frame periods
    deadline_ms: float | None = None  # default: the model's budget deadline, else 1000 / rate_hz
    drop_filter_tau_s: float = 10.0
    drop_alert_threshold: float = 0.2
    queue_size: int = 2
    start_frame: int = 0
    max_frames: int | None = None
    quality_threshold: float | None = 0.05  # score replays against the clip's labels (None = off)
    quality_window_s: float = 1.0  # clip seconds per window of the quality timeline
    priority: str = "normal"  # normal | high | realtime: the runtime's threads (deploy.runtime.scheduling)
    cores: tuple[int, ...] | None = None  # pin the runtime's threads to these cores (None: anywhere)

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
    camera_events: list[dict[str, Any]] = field(default_factory=list)  # cameras going silent / coming back
    faults: list[str] = field(default_factory=list)  # injected faults (replay)
    injected: dict[str, int] = field(default_factory=dict)  # frames lost / late by injection
    quality: dict[str, Any] | None = None  # detection quality against the clip's labels (``deploy.runtime.quality``)
    stages_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    wall_s: float = 0.0
    video: str | None = None
    video_error: str | None = None
    view_transform: str = "dynamic"  # or "baked for rig sha256 ...", or the dynamic fallback and why
    scheduling: dict[str, Any] = field(default_factory=dict)  # priority/pinning asked for and applied

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Runtime:
    """Runs a ``DeployedModel`` on camera sources; ``run_clip`` / ``run_live`` return a ``RuntimeSummary``."""

    def __init__(self, model: DeployedModel, config: RuntimeConfig | None = None) -> None:
        self.model = model
        self.config = config = config or RuntimeConfig()
        budget = model.budget or {}
        self.deadline_ms = float(config.deadline_ms or budget.get("deadline_ms") or 1000.0 / config.rate_hz)
        self.last_quality: QualitySink | None = None  # the last replay's per-frame quality records

    # ------------------------------------------------------------------ entry points
    def run_clip(
        self,
        clip_path: str | Path,
        *,
        out_dir: str | Path | None = None,
        video_path: str | Path | None = None,
        progress: bool = False,
        faults: FaultPlan | None = None,
    ) -> RuntimeSummary:
        """Replay a clip folder (real time or fast), optionally with injected ``faults``; write ``detections.jsonl``
        + ``summary.json`` into ``out_dir``; ``progress``: a bar over the frames (stderr). With labels in the clip,
        the summary scores the detections (``deploy.runtime.quality``)."""
        if faults is not None:
            faults.check_cameras(self.model.cameras)
        clip = DriveClip.open(clip_path, lenient=True)
        model, view_transform = self.model.for_rig(clip.rig, source=str(clip.path / "rig.yaml"))  # baked rig check
        absent_model_cameras = [c for c in self.model.cameras if c not in clip.rig.names]
        rig = clip.rig if not absent_model_cameras else self.model.rig
        missing = dict(clip.missing)
        for name in absent_model_cameras:
            missing[name] = f"{clip.path / 'rig.yaml'}: camera {name!r} of the model is not in the clip's rig"
        start = self.config.start_frame
        if not 0 <= start < clip.num_frames:
            raise ClipError(f"{clip.path}: start frame {start}: expected 0..{clip.num_frames - 1} (frames.csv)")
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
            sources[-1].faults = faults
        return self._run(
            sources,
            model=model,
            view_transform=view_transform,
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
            progress=progress,
            faults=faults,
        )

    def run_live(
        self,
        devices: dict[str, str],
        *,
        duration_s: float,
        out_dir: str | Path | None = None,
        video_path: str | Path | None = None,
        progress: bool = False,
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
                model=self.model,
                view_transform=self.model.for_rig(self.model.rig, source="the model's metadata rig")[1],
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
                progress=progress,
            )
        finally:
            timer.cancel()

    # ------------------------------------------------------------------ the loop
    def _run(
        self,
        sources: list[CameraSource],
        *,
        model: DeployedModel,
        view_transform: str,
        rig: Rig,
        clip: DriveClip | None,
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
        progress: bool = False,
        faults: FaultPlan | None = None,
    ) -> RuntimeSummary:
        """Sources -> frame sets -> ``FrameStep`` -> sinks, until the sources end or ``stop_event`` is set."""
        cfg = self.config
        tolerance, sync_timeout, max_gap = self._sync_windows(clip)
        summary = RuntimeSummary(
            model=str(model.path or "<session>"),
            source=source_name,
            mode="realtime" if cfg.realtime else "fast",
            rate_hz=cfg.rate_hz,
            deadline_ms=self.deadline_ms,
            frames_in_source=frames_in_source,
            sync_tolerance_ms=1e3 * tolerance,
            missing_cameras=dict(missing),
            faults=faults.describe() if faults is not None else [],
            view_transform=view_transform,
        )
        step = FrameStep(
            model,
            rig=rig,
            clip=clip,
            clock=clock,
            drop_filter=DropFilter(
                period_s=cfg.period_s, tau_s=cfg.drop_filter_tau_s, alert_threshold=cfg.drop_alert_threshold
            ),
            sync_tolerance_s=tolerance,
            max_gap_s=max_gap,
            deadline_ms=self.deadline_ms,
            score_threshold=cfg.score_threshold,
            score_threshold_2d=cfg.score_threshold_2d,
            first_index=first_index,
        )
        stats = RunStats()
        jsonl = JsonlSink(Path(out_dir), model.cameras) if out_dir is not None else None
        video = None
        if video_path is not None:
            video = VideoOutput(
                Path(video_path), video_fps, rig=rig, cameras=model.cameras, classes=model.classes, grid=model.bev_grid
            )
        bar = ProgressBar(frames_in_source, desc=Path(source_name).name or "frames") if progress else None
        quality = None
        det3d_classes = model.classes.get("detection3d")
        if clip is not None and cfg.quality_threshold is not None and det3d_classes and clip.labels is not None:
            quality = QualitySink(
                clip,
                rig=rig,
                cameras=model.cameras,
                classes=det3d_classes,
                grid=model.head_grid if model.head_grid is not None else model.bev_grid,
                score_threshold=cfg.quality_threshold,
                window_s=cfg.quality_window_s,
            )
        sinks = [sink for sink in (stats, jsonl, video, bar, quality) if sink is not None]
        sync = FrameSync(
            sources,
            notify,
            realtime=cfg.realtime,
            sync_timeout_s=sync_timeout,
            clock=clock,
            deadline_s=self.deadline_ms / 1e3 if cfg.deadline_aware_sync and cfg.sync_timeout_s is None else None,
            silent_after=cfg.silent_after_sets,
        )
        schedule = contextlib.ExitStack()  # priority/pinning of the loop, onnxruntime's and the cameras' threads
        summary.scheduling = schedule.enter_context(self._scheduling(video)).to_dict()
        started = time.perf_counter()
        for source in sources:  # resize in each camera's thread: the training rule, off the critical path
            source.transform = functools.partial(resize_image, size_hw=model.size_hw)
            source.start()
        seen_ended: set[str] = set()
        try:
            while True:
                frames = sync.next_set()
                for source in sources:
                    if source.ended.is_set() and source.camera not in seen_ended:
                        seen_ended.add(source.camera)
                        if source.error:
                            summary.missing_cameras[source.camera] = source.error
                if frames is None:
                    break
                result = step.process(frames, set_complete=time.perf_counter())
                if result is None:  # stale set: nothing new
                    continue
                sync.processed((result.latency_ms["overhead"] + result.latency_ms["inference"]) / 1e3)
                for sink in sinks:
                    sink.write(result)
        finally:
            stop_event.set()
            for source in sources:
                source.join(timeout=2.0)
            for sink in sinks:
                sink.close()
            schedule.close()
        summary.wall_s = time.perf_counter() - started
        _fill_summary(summary, stats, step, video)
        summary.camera_timeouts = sync.timeouts
        summary.camera_events = sync.events
        for event in sync.events:
            if event["event"] == "silent":
                summary.missing_cameras.setdefault(
                    event["camera"],
                    f"no frame in {event['sets']} sets in a row from t={event['time']:.3f} s: no longer waited for",
                )
        if faults is not None:
            summary.injected = {
                "lost": sum(s.injected["lost"] for s in sources),
                "late": sum(s.injected["late"] for s in sources),
            }
        self.last_quality = quality
        if quality is not None and quality.records:
            summary.quality = quality.report()
        if jsonl is not None:
            jsonl.commit()
            atomic_write_json(Path(out_dir) / "summary.json", summary.to_dict())
        return summary

    def _scheduling(self, video: VideoOutput | None):
        """``deploy.runtime.scheduling.scheduled`` for this process's threads except the video writer's (drawing
        is not on the deadline path); camera threads started inside inherit it. A fast replay has no deadline (and
        would keep the cores busy): it runs at normal priority."""
        excluded = {video.sink.native_id} if video is not None else set()
        threads = [tid for tid in process_thread_ids() if tid not in excluded]
        priority = self.config.priority if self.config.realtime else "normal"
        return scheduled(priority, cores=self.config.cores, thread_ids=threads)

    def _sync_windows(self, clip: DriveClip | None) -> tuple[float, float, float]:
        """(sync tolerance, sync timeout, max gap before a state reset), seconds, from the config and the clip."""
        cfg = self.config
        period = cfg.period_s
        source_period = clip.frame_period_s if clip is not None else period
        cameras = [c for c in self.model.cameras if clip is not None and c in clip.sources]
        rig_spread = capture_spread_s(clip, cameras) if clip is not None else 0.0
        tolerance = (
            cfg.sync_tolerance_s if cfg.sync_tolerance_s is not None else rig_spread + 0.5 * max(period, source_period)
        )
        sync_timeout = cfg.sync_timeout_s if cfg.sync_timeout_s is not None else max(period, source_period)
        return tolerance, sync_timeout, cfg.max_gap_periods * max(period, source_period)


def _fill_summary(summary: RuntimeSummary, stats: RunStats, step: FrameStep, video: VideoOutput | None) -> None:
    """Counts, drop figures, stage statistics and the video's fate of a finished run into ``summary``."""
    for name, value in stats.counts().items():
        setattr(summary, name, value)
    summary.stale_sets = step.stale_sets
    total = summary.frames_processed + summary.frames_dropped
    summary.drop_percent = 100.0 * summary.frames_dropped / total if total else 0.0
    summary.drop_filtered_peak_percent = 100.0 * step.drop_filter.peak
    summary.drop_alerts = step.drop_filter.alerts
    summary.stages_ms = stats.stages_ms()
    if video is not None:
        summary.video = str(video.path) if video.error is None else None
        summary.video_error = None if video.error is None else repr(video.error)


def capture_spread_s(clip: DriveClip, cameras: list[str]) -> float:
    """Median over frames of (latest - earliest) capture time of ``cameras`` (s): the rig's rolling timing."""
    if len(cameras) < 2:
        return 0.0
    times = np.stack([clip.camera_timestamps[name] for name in cameras])
    return float(np.median(times.max(axis=0) - times.min(axis=0)))
