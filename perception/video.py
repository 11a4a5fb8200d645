"""Video I/O: lazy frame readers for video files and image-sequence folders, and atomic video writers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from perception.atomic import PendingFile
from perception.errors import InputError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


class VideoError(InputError, RuntimeError):
    """A video or image sequence cannot be read (missing, unreadable, truncated)."""


def image_file_problem(path: Path) -> str | None:
    """Why an image file is damaged, judged from its first and last bytes (a truncated JPEG still decodes, with grey
    where the data ends), or None when it looks whole. PNG: signature and IEND chunk; JPEG: SOI and EOI markers."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg"):
        return None
    with open(path, "rb") as stream:
        head = stream.read(8)
        stream.seek(max(0, Path(path).stat().st_size - 64))
        tail = stream.read()
    if suffix == ".png":
        whole = head.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" in tail[-16:]
    else:
        whole = head.startswith(b"\xff\xd8") and b"\xff\xd9" in tail
    kind = "PNG" if suffix == ".png" else "JPEG"
    return None if whole else f"{path}: expected a whole {kind} file, found a damaged or truncated one"


def image_files(folder: Path) -> list[Path]:
    """Image files of a folder, in name order."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


class VideoReader:
    """Reads BGR uint8 frames (H, W, 3) lazily from a video file or an image folder; constant memory."""

    def __init__(self, path: str | os.PathLike, fps: float | None = None) -> None:
        import cv2

        self.path = Path(path)
        self._images: list[Path] | None = None
        self._capture = None
        if self.path.is_dir():
            self._images = image_files(self.path)
            if not self._images:
                raise VideoError(f"{self.path}: image folder holds no {'/'.join(IMAGE_EXTENSIONS)} files")
            first = cv2.imread(str(self._images[0]), cv2.IMREAD_COLOR)
            if first is None:
                raise VideoError(f"{self.path}: cannot decode image {self._images[0].name}")
            self.height, self.width = first.shape[:2]
            self.frame_count = len(self._images)
            self.fps = float(fps or 10.0)
            return
        if not self.path.is_file():
            raise VideoError(f"{self.path}: video file not found")
        if self.path.stat().st_size == 0:
            raise VideoError(f"{self.path}: video file is empty (0 bytes)")
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise VideoError(f"{self.path}: cannot open video (unsupported codec or corrupt container)")
        self._capture = capture
        self.width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else -1  # -1: the container does not declare it
        declared_fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps or (declared_fps if declared_fps and declared_fps > 0 else 10.0))
        if self.width <= 0 or self.height <= 0:
            raise VideoError(f"{self.path}: video declares no frame size (corrupt header)")

    def __len__(self) -> int:
        return max(self.frame_count, 0)

    def __iter__(self) -> Iterator[np.ndarray]:
        import cv2

        if self._images is not None:
            for image_path in self._images:
                frame = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
                if frame is None:
                    raise VideoError(f"{self.path}: cannot decode image {image_path.name}")
                yield frame
            return
        capture = cv2.VideoCapture(str(self.path))
        index = 0
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                yield frame
                index += 1
        finally:
            capture.release()
        if self.frame_count > 0 and index < self.frame_count:
            last = str(index - 1) if index else "none"
            raise VideoError(
                f"{self.path}: truncated or corrupt video: declares {self.frame_count} frames, decoded {index} "
                f"(last good frame: {last})"
            )

    def read(self, index: int) -> np.ndarray:
        """Random access to frame ``index`` (seeks; prefer iteration for sequential reads)."""
        import cv2

        if self._images is not None:
            if not 0 <= index < len(self._images):
                raise IndexError(f"{self.path}: frame {index} out of range 0..{len(self._images) - 1}")
            frame = cv2.imread(str(self._images[index]), cv2.IMREAD_COLOR)
            if frame is None:
                raise VideoError(f"{self.path}: cannot decode image {self._images[index].name}")
            return frame
        assert self._capture is not None
        if self.frame_count > 0 and not 0 <= index < self.frame_count:
            raise IndexError(f"{self.path}: frame {index} out of range 0..{self.frame_count - 1}")
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = self._capture.read()
        if not ok:
            raise VideoError(f"{self.path}: cannot decode frame {index} (truncated or corrupt video)")
        return frame

    def count_decodable(self) -> int:
        """Decode the whole source and return how many frames decode (stops quietly at the first failure)."""
        try:
            return sum(1 for _ in self)
        except VideoError as error:
            text = str(error)
            return int(text.split("decoded ")[1].split(" ")[0]) if "decoded " in text else 0

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoWriter:
    """Writes BGR frames to a video (mp4v for .mp4/.mov, MJPG for .avi) through a temporary file renamed on close.

    ``size`` (width, height) in pixels; None opens the file on the first frame, with that frame's size (the one
    place that does "open the writer on the first frame"). A frame of another size is an error, or is resized to
    the video's size with ``resize_mismatched``. Closing a writer that got no frame writes no file. As a context
    manager it closes when the block succeeds and drops the partial file when it raises.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        size: tuple[int, int] | None = None,
        *,
        resize_mismatched: bool = False,
    ) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self.resize_mismatched = resize_mismatched
        self.size: tuple[int, int] | None = None
        self.frames_written = 0
        self._pending: PendingFile | None = None
        self._writer = None
        if size is not None:
            self._open((int(size[0]), int(size[1])))

    def _open(self, size: tuple[int, int]) -> None:
        import cv2

        self._pending = PendingFile(self.path, suffix=self.path.suffix)
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
        self.size = size
        self._writer = cv2.VideoWriter(str(self._pending.temporary), fourcc, self.fps, size)
        if not self._writer.isOpened():
            self._pending.abort()
            raise VideoError(f"{self.path}: OpenCV cannot open a video writer for this extension")

    def write(self, frame: np.ndarray) -> None:
        """Append one BGR uint8 frame (H, W, 3)."""
        if self.size is None:
            self._open((frame.shape[1], frame.shape[0]))
        if frame.shape[1] != self.size[0] or frame.shape[0] != self.size[1]:
            if not self.resize_mismatched:
                raise VideoError(
                    f"{self.path}: frame size {frame.shape[1]}x{frame.shape[0]} != video size "
                    f"{self.size[0]}x{self.size[1]}"
                )
            import cv2

            frame = cv2.resize(frame, self.size)
        self._writer.write(np.ascontiguousarray(frame))
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file and move it into place (nothing is written when no frame came)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            self._pending.commit()

    def abort(self) -> None:
        """Drop the partial file."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._pending is not None:
            self._pending.abort()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
