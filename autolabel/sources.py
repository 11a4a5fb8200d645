"""Input discovery (videos, image sequences, still images, drive clips under one root) and streaming frame prefetch.

Kinds of input:

- ``clip``: a drive-clip folder (rig.yaml + frames.csv), multi-camera, tracked.
- ``video``: a video file, one camera, tracked.
- ``images``: a folder of images that is a SEQUENCE (it holds a ``frames.csv``, or the job says
  ``images.mode: sequence``): one camera, frames in name order, tracked; every image must have the same size.
- ``stills``: a folder of images without ``frames.csv`` (or one image file): independent images, each of its own size,
  labelled one by one (no tracking, no track ids), ``ImageSet``.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from perception.clip import ClipError, DriveClip, Frame
from perception.errors import InputError
from perception.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, image_files

__all__ = [
    "ImageSet",
    "ImageSetConfig",
    "Source",
    "discover_sources",
    "open_input",
    "open_source",
    "predict_in_flight",
    "prefetch_batches",
]

log = logging.getLogger("autolabel")

SOURCE_KINDS = ("video", "images", "clip", "stills")
SEQUENCE_MARKER = "frames.csv"  # an image folder holding it is a sequence


@dataclass(frozen=True)
class ImageSetConfig:
    """The job's ``images`` section.

    Args:
        mode: stills (an image folder without frames.csv is a set of independent images, labelled one by one) or
            sequence (every image folder is a video: tracked)
        min_score: a still image keeps the teacher's boxes with at least this score
    """

    mode: Literal["stills", "sequence"] = "stills"
    min_score: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in ("stills", "sequence"):
            raise ValueError(f"images.mode: expected 'stills' or 'sequence', found {self.mode!r}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"images.min_score: expected a score in 0..1, found {self.min_score}")


class ImageSet:
    """Independent still images (a folder's images in name order, or one image file); each keeps its own size.

    Frame ``i`` of its labels is ``files[i]``; ``sizes[i]`` (width, height) is known once the image was decoded
    (``images``). One camera, named ``image``."""

    CAMERA = "image"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if self.path.is_file():
            if self.path.suffix.lower() not in IMAGE_EXTENSIONS:
                raise ClipError(f"{self.path}: expected an image file ({'/'.join(IMAGE_EXTENSIONS)})")
            self.files = [self.path]
        elif self.path.is_dir():
            self.files = image_files(self.path)
        else:
            raise ClipError(f"{self.path}: image file or folder not found")
        if not self.files:
            raise ClipError(f"{self.path}: holds no {'/'.join(IMAGE_EXTENSIONS)} images")
        self.sizes: list[tuple[int, int] | None] = [None] * len(self.files)
        self.errors: dict[int, str] = {}

    @property
    def name(self) -> str:
        return self.path.stem if self.path.is_file() else self.path.name

    @property
    def num_frames(self) -> int:
        return len(self.files)

    @property
    def cameras(self) -> list[str]:
        return [self.CAMERA]

    def read(self, index: int) -> np.ndarray | None:
        """BGR uint8 image ``index``, or None when it cannot be decoded (recorded in ``errors``)."""
        import cv2

        image = cv2.imread(str(self.files[index]), cv2.IMREAD_COLOR)
        if image is None:
            self.errors[index] = f"{self.files[index]}: cannot decode image"
            log.warning("skipped: %s", self.errors[index])
            return None
        self.sizes[index] = (int(image.shape[1]), int(image.shape[0]))
        return image

    def images(self) -> Iterator[tuple[int, np.ndarray]]:
        """(index, BGR image) of every decodable image, in order; undecodable ones are logged and skipped."""
        for index in range(len(self.files)):
            image = self.read(index)
            if image is not None:
                yield index, image

    def records(self, root: Path | None = None) -> list[dict]:
        """Per image: file (relative to ``root`` when given), width, height, and the error if it failed."""
        out = []
        for index, file in enumerate(self.files):
            size = self.sizes[index]
            name = file.relative_to(root).as_posix() if root is not None else file.name
            entry: dict = {"file": name, "width": None if size is None else size[0]}
            entry["height"] = None if size is None else size[1]
            if index in self.errors:
                entry["error"] = self.errors[index]
            out.append(entry)
        return out


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
    in failures.json, instead of its camera folders being labelled as unrelated image sequences). A frames.csv
    beside images is an image sequence's timestamps, not a clip."""
    if (folder / "rig.yaml").exists():
        return True
    return (folder / "frames.csv").exists() and not _has_images([p.name for p in folder.iterdir() if p.is_file()])


def _has_images(names: Sequence[str]) -> bool:
    return any(Path(name).suffix.lower() in IMAGE_EXTENSIONS for name in names)


def _image_folder_kind(folder: Path, mode: str) -> str:
    return "images" if mode == "sequence" or (folder / SEQUENCE_MARKER).is_file() else "stills"


def discover_sources(
    root: str | os.PathLike, *, exclude: Sequence[str | os.PathLike] = (), image_mode: str = "stills"
) -> list[Source]:
    """Every video file, image folder and clip folder under ``root`` (sorted, deterministic); see the module
    docstring for the kinds (``image_mode``: ``ImageSetConfig.mode``).

    Clip folders (rig.yaml + frames.csv) are not descended into; hidden folders and ``exclude`` paths are skipped.
    Output folders mirror the input tree: ``a/b/run.mp4`` -> ``a/b/run``; a name clash (``run.mp4`` and
    ``run.avi``) keeps the extension (``run.mp4``, ``run.avi``).
    """
    root = Path(root).resolve()
    excluded = {Path(p).resolve() for p in exclude}
    if root.is_file():
        if root.suffix.lower() in IMAGE_EXTENSIONS:
            return [Source(root, Path(root.stem), "stills", Path(root.name))]
        if root.suffix.lower() not in VIDEO_EXTENSIONS:
            raise InputError(
                f"{root}: expected a folder, a video file ({'/'.join(VIDEO_EXTENSIONS)}) or an image file "
                f"({'/'.join(IMAGE_EXTENSIONS)})"
            )
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
            found.append(Source(here, relative, _image_folder_kind(here, image_mode), relative))
        videos = sorted(f for f in files if Path(f).suffix.lower() in VIDEO_EXTENSIONS and not f.startswith("."))
        stems = [Path(f).stem for f in videos]
        for name in videos:
            clash = stems.count(Path(name).stem) > 1 or (here / Path(name).stem).is_dir()
            found.append(Source(here / name, relative / (name if clash else Path(name).stem), "video", relative / name))
    if _has_images(os.listdir(root)):
        found.append(Source(root, Path(root.name), _image_folder_kind(root, image_mode), Path(".")))
    return sorted(found, key=lambda s: s.relative.as_posix())


def open_input(path: str | os.PathLike, kind: str) -> DriveClip | ImageSet:
    """A ``DriveClip`` (clips; one-camera views of videos and image sequences) or an ``ImageSet`` (stills) for an
    input of the given kind; raises ClipError."""
    if kind == "clip":
        return DriveClip.open(path)
    if kind == "stills":
        return ImageSet(path)
    return DriveClip.from_video(path)


def open_source(source: Source) -> DriveClip | ImageSet:
    """``open_input`` of a discovered source."""
    return open_input(source.path, source.kind)


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


def predict_in_flight(
    predict: Callable[[list[np.ndarray]], list],
    batches: Iterable[list[Frame]],
    images: Callable[[Frame], np.ndarray],
    *,
    in_flight: int = 1,
) -> Iterator[tuple[list[Frame], list[np.ndarray], list]]:
    """(batch, its images, ``predict(images)``) in input order, with up to ``in_flight`` ``predict`` calls running at
    once in worker threads (1: inline). A teacher that runs one batch per core (``Teacher.parallel_batches``) keeps
    every core busy this way without intra-op thread hand-offs; decoding and tracking interleave on the same cores.
    An exception in ``predict`` is raised here, in order."""
    if in_flight <= 1:
        for batch in batches:
            batch_images = [images(frame) for frame in batch]
            yield batch, batch_images, predict(batch_images)
        return
    from concurrent.futures import ThreadPoolExecutor

    pending: collections.deque = collections.deque()
    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="teacher") as pool:
        try:
            for batch in batches:
                batch_images = [images(frame) for frame in batch]
                pending.append((batch, batch_images, pool.submit(predict, batch_images)))
                if len(pending) >= in_flight:
                    batch, batch_images, future = pending.popleft()
                    yield batch, batch_images, future.result()
            while pending:
                batch, batch_images, future = pending.popleft()
                yield batch, batch_images, future.result()
        finally:
            for _, _, future in pending:
                future.cancel()
