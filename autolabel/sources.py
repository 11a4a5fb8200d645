"""Input discovery (videos, image folders, drive clips under one root) and streaming frame prefetch."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from perception.clip import DriveClip, Frame
from perception.errors import InputError
from perception.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

__all__ = ["Source", "discover_sources", "open_source", "prefetch_batches"]

SOURCE_KINDS = ("video", "images", "clip")


@dataclass(frozen=True)
class Source:
    """One input to label: its path, its output folder relative to LABEL_DIR, its kind, and its path relative to the
    input root (``input``, with extension; recorded in provenance so ``autolabel review`` finds the frames)."""

    path: Path
    relative: Path
    kind: str
    input: Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"Source.kind: expected one of {SOURCE_KINDS}, found {self.kind!r}")

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "relative": self.relative.as_posix(),
            "kind": self.kind,
            "input": None if self.input is None else self.input.as_posix(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Source:
        return cls(
            Path(data["path"]),
            Path(data["relative"]),
            data["kind"],
            None if data.get("input") is None else Path(data["input"]),
        )


def _is_clip_folder(folder: Path) -> bool:
    """A drive clip, whole or broken: it holds rig.yaml or frames.csv (a broken one fails when opened and is listed
    in failures.json, instead of its camera folders being labelled as unrelated image sequences)."""
    return (folder / "rig.yaml").exists() or (folder / "frames.csv").exists()


def _has_images(names: Sequence[str]) -> bool:
    return any(Path(name).suffix.lower() in IMAGE_EXTENSIONS for name in names)


def discover_sources(root: str | os.PathLike, *, exclude: Sequence[str | os.PathLike] = ()) -> list[Source]:
    """Every video file, image-sequence folder and clip folder under ``root`` (sorted, deterministic).

    Clip folders (rig.yaml + frames.csv) are not descended into; hidden folders and ``exclude`` paths are skipped.
    Output folders mirror the input tree: ``a/b/run.mp4`` -> ``a/b/run``; a name clash (``run.mp4`` and
    ``run.avi``) keeps the extension (``run.mp4``, ``run.avi``).
    """
    root = Path(root).resolve()
    excluded = {Path(p).resolve() for p in exclude}
    if root.is_file():
        if root.suffix.lower() not in VIDEO_EXTENSIONS:
            raise InputError(f"{root}: expected a folder or a video file ({'/'.join(VIDEO_EXTENSIONS)})")
        return [Source(root, Path(root.stem), "video", Path(root.name))]
    if not root.is_dir():
        raise InputError(f"{root}: expected an input folder or a video file, found nothing")
    if _is_clip_folder(root):
        return [Source(root, Path(root.name), "clip", Path("."))]
    found: list[Source] = []
    for folder, subfolders, files in os.walk(root):
        here = Path(folder)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and (here / d).resolve() not in excluded)
        relative = here.relative_to(root)
        if here != root and _is_clip_folder(here):
            found.append(Source(here, relative, "clip", relative))
            subfolders[:] = []
            continue
        if here != root and _has_images(files):
            found.append(Source(here, relative, "images", relative))
        videos = sorted(f for f in files if Path(f).suffix.lower() in VIDEO_EXTENSIONS and not f.startswith("."))
        stems = [Path(f).stem for f in videos]
        for name in videos:
            clash = stems.count(Path(name).stem) > 1 or (here / Path(name).stem).is_dir()
            found.append(Source(here / name, relative / (name if clash else Path(name).stem), "video", relative / name))
    if _has_images(os.listdir(root)):
        found.append(Source(root, Path(root.name), "images", Path(".")))
    return sorted(found, key=lambda s: s.relative.as_posix())


def open_source(source: Source) -> DriveClip:
    """A ``DriveClip`` for the source (one-camera view for videos and image folders); raises ClipError."""
    if source.kind == "clip":
        return DriveClip.open(source.path)
    return DriveClip.from_video(source.path)


_END = object()


def prefetch_batches(
    clip: DriveClip, batch_size: int, *, queue_frames: int = 16, cameras: Sequence[str] | None = None
) -> Iterator[list[Frame]]:
    """Yield lists of up to ``batch_size`` frames, decoded in a background thread through a bounded queue.

    Memory stays constant (at most ``queue_frames`` decoded frames wait); decoding overlaps with the caller's
    inference (OpenCV and ONNX Runtime release the GIL). Decoder errors are re-raised in the caller.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, found {batch_size}")
    frames: queue.Queue = queue.Queue(maxsize=max(queue_frames, batch_size))
    stop = threading.Event()

    def decode() -> None:
        try:
            for frame in clip.frames(cameras=cameras):
                while not stop.is_set():
                    try:
                        frames.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            item: object = _END
        except BaseException as error:  # handed to the consumer
            item = error
        while not stop.is_set():
            try:
                frames.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    worker = threading.Thread(target=decode, name=f"decode-{clip.name}", daemon=True)
    worker.start()
    batch: list[Frame] = []
    try:
        while True:
            item = frames.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            batch.append(item)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
    finally:
        stop.set()
        worker.join(timeout=5.0)
