"""The auto-labelling job: walk the inputs, label each clip (``autolabel.labeler``), write its outputs atomically
with a ``done`` marker (``autolabel.outputs``; resumable), record failures, show progress.

Per input, outputs land in ``LABEL_DIR/<input path relative to VIDEO_DIR>/``: ``labels.json`` (ClipLabels with
provenance), exporter files (``coco.json``, ``mot/``, ``cvat/``, ``yolo/``), optional ``preview.mp4`` and ``done``.
Exit code 3 (``EXIT_SOME_FAILED``) when some inputs failed; they are listed in ``LABEL_DIR/failures.json``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autolabel.jobconfig import Job
from autolabel.labeler import ClipLabeler
from autolabel.outputs import (
    DATASET_FOLDER,
    DONE_FILE,
    FAILURES_FILE,
    JOB_FILE,
    clean_stale_partials,
    input_fingerprint,
    is_done,
    lock_label_folder,
    why_not_done,
    write_clip_outputs,
    write_failures,
    write_job_config,
    write_job_record,
)  # fmt: skip
from autolabel.sources import ImageSet, Source, discover_sources, open_source
from perception.atomic import path_inside
from perception.clip import ClipError
from perception.errors import InputError, one_line
from perception.labels import make_provenance
from perception.video import VIDEO_EXTENSIONS

__all__ = [
    "DONE_FILE",
    "EXIT_OK",
    "EXIT_SOME_FAILED",
    "FAILURES_FILE",
    "JOB_FILE",
    "ClipLabeler",
    "ClipResult",
    "JobSummary",
    "clean_stale_partials",
    "is_done",
    "label_source",
    "run_job",
    "write_clip_outputs",
    "write_failures",
    "write_job_record",
]  # fmt: skip

log = logging.getLogger("autolabel")

EXIT_OK = 0
EXIT_SOME_FAILED = 3  # some inputs could not be labelled; see LABEL_DIR/failures.json
INPUT_ERRORS = (InputError, OSError)  # a bad input (ClipError, VideoError, LabelsError, ...) or an unreadable file


def _failure_reason(error: Exception) -> str:
    """One line for failures.json; errors that are not about the input are marked as unexpected."""
    if isinstance(error, INPUT_ERRORS):
        return f"{type(error).__name__}: {one_line(error)}"
    log.debug("unexpected error", exc_info=error)
    return f"unexpected {type(error).__name__}: {one_line(error)} (rerun with --debug for the traceback)"


@dataclass
class ClipResult:
    """What happened to one input: status 'labelled' | 'skipped' | 'failed', frames labelled, reason if failed."""

    source: Source
    status: str
    frames: int = 0
    reason: str | None = None
    seconds: float = 0.0


@dataclass
class JobSummary:
    """All inputs' results; ``exit_code`` is 3 when any input failed."""

    results: list[ClipResult] = field(default_factory=list)
    dataset: Any = None  # autolabel.exporters.dataset.DatasetSummary when the job exports yolo/coco

    @property
    def failed(self) -> list[ClipResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        return EXIT_SOME_FAILED if self.failed else EXIT_OK

    def counts(self) -> dict[str, int]:
        out = {"labelled": 0, "skipped": 0, "failed": 0}
        for result in self.results:
            out[result.status] += 1
        return out


def _created_timestamp() -> str | None:
    """ISO time from SOURCE_DATE_EPOCH (reproducible outputs), else None (keep make_provenance's clock)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return None
    import datetime as dt

    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).isoformat(timespec="seconds")


@dataclass
class _Streamed:
    """A clip whose frames went through the teacher; ``finish`` completes its labels."""

    source: Source
    clip: Any
    finish: Any
    start: float
    fingerprint: dict


def _start_source(source: Source, out_root: Path, *, job: Job, redo: str | None = "") -> ClipResult | _Streamed:
    """Skip (done), fail (bad input) or stream the input through the teacher. ``redo``: ``why_not_done``'s answer
    when the caller has it already (None = done)."""
    start = time.perf_counter()
    if redo == "":
        redo = why_not_done(Path(out_root) / source.relative, job.config_sha256, source)
    if redo is None:
        return ClipResult(source, "skipped")
    if redo != "not labelled yet":
        log.info("relabelling %s: %s", source.relative.as_posix(), redo)
    try:
        fingerprint = input_fingerprint(source)  # before reading: a change while labelling shows on the next run
        clip = open_source(source)
        if isinstance(clip, ImageSet):
            labels = _label_stills(clip, job)
            return _Streamed(source, clip, lambda: labels, start, fingerprint)
        return _Streamed(source, clip, job.labeler.label_deferred(clip), start, fingerprint)
    except Exception as error:  # one input never stops the batch: logged, listed in failures.json
        log.warning("failed: %s: %s", source.path, error)
        return ClipResult(source, "failed", reason=_failure_reason(error), seconds=time.perf_counter() - start)


def _label_stills(images: ImageSet, job: Job) -> Any:
    """Per-image labels of still images (``autolabel.stills``) with the job's teacher and classes."""
    from autolabel.stills import label_stills

    labeler = job.labeler
    if not getattr(labeler.teacher, "predicts_2d", True):
        raise ClipError(f"{images.path}: teacher {labeler.teacher_info.name} predicts 3D boxes only: still images "
                        "need a 2D teacher")  # fmt: skip
    return label_stills(
        images, teacher=labeler.teacher, class_lookup=labeler.class_lookup, classes=labeler.classes,
        min_score=job.images.min_score, batch_size=labeler.batch_size, progress=labeler.frame_progress,
    )  # fmt: skip


def _frames_labelled(clip: Any) -> int:
    return clip.num_frames if isinstance(clip, ImageSet) else clip.num_frames * len(clip.rig)


def _complete_source(streamed: _Streamed, out_root: Path, *, job: Job) -> ClipResult:
    """Finish tracking/refinement, add provenance, write the clip's outputs atomically."""
    try:
        return _write_source(streamed, out_root, job=job)
    except Exception as error:  # one input never stops the batch: logged, listed in failures.json
        log.warning("failed: %s: %s", streamed.source.path, error)
        seconds = time.perf_counter() - streamed.start
        return ClipResult(streamed.source, "failed", reason=_failure_reason(error), seconds=seconds)
    finally:
        streamed.finish = None  # drop the chain's per-frame tracks


def _write_source(streamed: _Streamed, out_root: Path, *, job: Job) -> ClipResult:
    source, clip = streamed.source, streamed.clip
    labels = streamed.finish()
    streamed.finish = None  # drop the chain's per-frame tracks before writing
    info = job.teacher_info
    provenance = make_provenance(
        "autolabel",
        f"fleetvision autolabel ({info.name})",
        teacher=info.name,
        weights_sha256=info.weights_sha256,
        config_sha256=job.config_sha256,
        input=(source.input or source.relative).as_posix(),
        input_kind=source.kind,
    )
    created = _created_timestamp()
    if created is not None:
        provenance["created"] = created
    labels.provenance = provenance
    write_clip_outputs(
        labels,
        clip,
        path_inside(out_root, source.relative),  # an input's name never leaves LABEL_DIR
        export=job.export,
        preview=job.preview,
        config_sha256=job.config_sha256,
        source=source,
        fingerprint=streamed.fingerprint,
    )
    return ClipResult(source, "labelled", frames=_frames_labelled(clip), seconds=time.perf_counter() - streamed.start)


def label_source(source: Source, out_root: Path, *, job: Job) -> ClipResult:
    """Label one input (skip if done with the same config); input errors become a 'failed' result."""
    started = _start_source(source, out_root, job=job)
    if isinstance(started, ClipResult):
        return started
    return _complete_source(started, out_root, job=job)


class _Progress:
    """tqdm bars: clips (done/total) and frames (rate, ETA per clip)."""

    def __init__(self, total_clips: int, enabled: bool) -> None:
        self.enabled = enabled
        self.clips = None
        self.frames = None
        if enabled:
            from tqdm import tqdm

            self._tqdm = tqdm
            self.clips = tqdm(total=total_clips, desc="clips", unit="clip", position=0)

    def start_clip(self, name: str, total_frames: int | None) -> None:
        if self.enabled:
            if self.frames is not None:
                self.frames.close()
            self.frames = self._tqdm(total=total_frames, desc=name[-30:], unit="frame", position=1, leave=False)

    def frames_done(self, count: int) -> None:
        if self.frames is not None:
            self.frames.update(count)

    def clip_done(self) -> None:
        if self.clips is not None:
            self.clips.update(1)

    def close(self) -> None:
        for bar in (self.frames, self.clips):
            if bar is not None:
                bar.close()


def _frame_count_hint(source: Source) -> int | None:
    """Frames to expect (for the progress bar) from headers only; None when unknown (never decodes the video)."""
    try:
        if source.kind in ("clip", "stills"):
            return _frames_labelled(open_source(source))
        from perception.video import VideoReader

        with VideoReader(source.path) as reader:
            return reader.frame_count if reader.frame_count > 0 else None
    except INPUT_ERRORS:
        return None


def run_job(
    input_root: str | os.PathLike,
    out_root: str | os.PathLike,
    job: Job,
    *,
    progress: bool = True,
    sources: Sequence[Source] | None = None,
) -> JobSummary:
    """Label every input under ``input_root`` into ``out_root`` (single process); writes failures.json and the
    resolved job config (config.yaml). The label folder is locked for the whole job (``LabelFolderBusy``)."""
    out_root = Path(out_root)
    if sources is None:
        sources = discover_sources(input_root, exclude=[out_root], image_mode=job.images.mode)
    if not sources:
        raise InputError(
            f"{input_root}: expected videos ({', '.join(VIDEO_EXTENSIONS)}), image folders or drive clips, found none"
        )
    with lock_label_folder(out_root):
        return _run_locked(input_root, out_root, job, progress=progress, sources=sources)


def _run_locked(
    input_root: str | os.PathLike, out_root: Path, job: Job, *, progress: bool, sources: Sequence[Source]
) -> JobSummary:
    clean_stale_partials(out_root)
    write_job_record(input_root, out_root)
    write_job_config(out_root, job.config_yaml, job.config_sha256)
    config_sha256 = job.config_sha256
    bars = _Progress(len(sources), progress)
    job.labeler.frame_progress = bars.frames_done
    summary = JobSummary()
    # Clip k's last tracking/refinement window and its output writing run in a background thread while clip k+1
    # streams through the teacher; results keep the input order.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="complete") as completer:
        pending = None
        try:
            for source in sources:
                redo = why_not_done(out_root / source.relative, config_sha256, source)
                if progress and redo is not None:
                    bars.start_clip(source.relative.as_posix(), _frame_count_hint(source))
                started = _start_source(source, out_root, job=job, redo=redo)
                if pending is not None:
                    summary.results.append(pending.result())
                    bars.clip_done()
                    pending = None
                if isinstance(started, ClipResult):
                    summary.results.append(started)
                    bars.clip_done()
                else:
                    pending = completer.submit(_complete_source, started, out_root, job=job)
            if pending is not None:
                summary.results.append(pending.result())
                bars.clip_done()
        finally:
            bars.close()
    write_failures(out_root, summary.failed)
    summary.dataset = write_job_dataset(input_root, out_root, job, progress=progress)
    return summary


def write_job_dataset(input_root: str | os.PathLike, out_root: Path, job: Job, *, progress: bool = False) -> Any:
    """The job's YOLO / COCO training dataset over every finished clip (``LABEL_DIR/dataset``) when ``export``
    names yolo or coco; None otherwise or when no clip is finished. Reused as is when no label changed."""
    from autolabel.exporters.dataset import DATASET_FORMATS, write_dataset

    formats = [name for name in job.export if name in DATASET_FORMATS]
    if not formats:
        return None
    root = Path(input_root).resolve()
    try:
        return write_dataset(
            out_root, Path(out_root) / DATASET_FOLDER, formats=formats, progress=progress,
            input_root=root.parent if root.is_file() else root,
        )  # fmt: skip
    except FileNotFoundError as error:  # nothing finished (every input failed): nothing to export
        log.warning("no dataset written: %s", error)
        return None
