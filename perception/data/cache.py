"""Frame cache: decode and resize every frame of a camera ONCE into a memory-mapped uint8 RGB array on disk.

Frames are prepared by ``perception.model_input.prepare_image`` (the rule every path shares).
Key = (resolved clip path, camera, video file/folder identity (mtime_ns, size), target resolution, format version,
input rule version),
so an edited clip gets a fresh entry. Entries are ``.npy`` files written to a temporary name and renamed, so
concurrent workers or runs never read half an entry; the array is reopened read-only with ``mmap_mode="r"``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from perception.atomic import atomic_path
from perception.clip import DriveClip
from perception.model_input import MODEL_INPUT_VERSION, prepare_image

CACHE_FORMAT_VERSION = 1
CACHE_ENV = "FLEETVISION_FRAME_CACHE"


def default_cache_dir() -> Path:
    """``$FLEETVISION_FRAME_CACHE`` or ``~/.cache/fleetvision/frames``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "fleetvision" / "frames"


def _source_identity(source: Path) -> str:
    """mtime_ns and size of a video file, or of every image in an image folder."""
    if source.is_file():
        stat = source.stat()
        return f"{stat.st_mtime_ns}:{stat.st_size}"
    entries = sorted(p for p in source.iterdir() if p.is_file())
    digest = hashlib.sha1()
    for entry in entries:
        stat = entry.stat()
        digest.update(f"{entry.name}:{stat.st_mtime_ns}:{stat.st_size};".encode())
    return digest.hexdigest()


class FrameCache:
    """Decoded, resized RGB frames per (clip, camera, resolution) as memory-mapped ``(F, H, W, 3)`` uint8 arrays."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self._open: dict[str, np.ndarray] = {}
        self.decoded_entries = 0  # entries this instance had to decode (for tests and logs)

    def key(self, clip: DriveClip, camera: str, size_hw: tuple[int, int]) -> str:
        """Stable cache key of one camera stream of ``clip`` at ``size_hw`` (height, width) pixels."""
        source = clip.sources[camera]
        text = "|".join(
            [
                str(CACHE_FORMAT_VERSION),
                str(Path(clip.path).resolve()),
                camera,
                _source_identity(source),
                f"{size_hw[0]}x{size_hw[1]}",
                str(clip.num_frames),
                f"input{MODEL_INPUT_VERSION}",
            ]
        )
        return hashlib.sha1(text.encode()).hexdigest()

    def path_for(self, clip: DriveClip, camera: str, size_hw: tuple[int, int]) -> Path:
        key = self.key(clip, camera, size_hw)
        return self.root / key[:2] / f"{clip.name}-{camera}-{size_hw[0]}x{size_hw[1]}-{key[:16]}.npy"

    def frames(self, clip: DriveClip, camera: str, size_hw: tuple[int, int]) -> np.ndarray:
        """Read-only memory map (F, H, W, 3) uint8 RGB of camera ``camera``; decodes on first use."""
        path = self.path_for(clip, camera, size_hw)
        cached = self._open.get(str(path))
        if cached is not None:
            return cached
        if not path.is_file():
            self._build(clip, camera, size_hw, path)
        array = np.load(path, mmap_mode="r")
        expected = (clip.num_frames, size_hw[0], size_hw[1], 3)
        if array.shape != expected or array.dtype != np.uint8:
            raise ValueError(
                f"{path}: cache entry has shape {array.shape} {array.dtype}, expected {expected} uint8; delete it"
            )
        self._open[str(path)] = array
        return array

    def _build(self, clip: DriveClip, camera: str, size_hw: tuple[int, int], path: Path) -> None:
        height, width = size_hw
        with atomic_path(path) as temporary:
            array = np.lib.format.open_memmap(
                temporary, mode="w+", dtype=np.uint8, shape=(clip.num_frames, height, width, 3)
            )
            count = 0
            for frame in clip.frames(cameras=[camera]):
                array[frame.index] = prepare_image(frame.images[camera], size_hw)
                count += 1
            if count != clip.num_frames:
                raise ValueError(f"{clip.sources[camera]}: decoded {count} frames, frames.csv lists {clip.num_frames}")
            array.flush()
            del array
        self.decoded_entries += 1

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_open"] = {}  # memory maps are reopened in each worker process
        return state
