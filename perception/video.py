"""Video I/O: lazy frame readers for video files and image-sequence folders, container frame times (PyAV), and atomic
video writers (H.264 through PyAV)."""

from __future__ import annotations

import contextlib
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
                yield self._read_image(image_path)
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
            return self._read_image(self._images[index])
        assert self._capture is not None
        if self.frame_count > 0 and not 0 <= index < self.frame_count:
            raise IndexError(f"{self.path}: frame {index} out of range 0..{self.frame_count - 1}")
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = self._capture.read()
        if not ok:
            raise VideoError(f"{self.path}: cannot decode frame {index} (truncated or corrupt video)")
        return frame

    def _read_image(self, image_path: Path) -> np.ndarray:
        """One image of an image sequence; every image must have the first one's size (a sequence is a video)."""
        import cv2

        frame = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if frame is None:
            raise VideoError(f"{self.path}: cannot decode image {image_path.name}")
        if frame.shape[:2] != (self.height, self.width):
            raise VideoError(
                f"{self.path}: image {image_path.name} is {frame.shape[1]}x{frame.shape[0]}, the first image "
                f"{self._images[0].name} is {self.width}x{self.height}: an image sequence needs one size "
                "(independent images of several sizes are still images, not a sequence)"
            )
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


def frame_times(path: str | os.PathLike) -> np.ndarray | None:
    """Presentation times (s, first frame at 0) of a video file's frames, from the container's timestamps (PyAV,
    packets only: nothing is decoded), in presentation order. None when the container has no timestamps for its
    frames. Right for variable-frame-rate files (phones, dash cams), where ``i / fps`` drifts."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            pts = [packet.pts for packet in container.demux(stream) if packet.size > 0]
            time_base = stream.time_base  # read while the container is open (a closed one's stream reads freed memory)
    except (av.FFmpegError, OSError) as error:
        raise VideoError(f"{path}: cannot read the container's frame timestamps: {error}") from error
    if not pts or any(p is None for p in pts) or time_base is None:
        return None
    times = np.sort(np.asarray(pts, dtype=np.float64)) * float(time_base)
    return times - times[0]


def presentation_times(path: str | os.PathLike, count: int, fps: float) -> np.ndarray:
    """Frame times (s) of a plain video or image sequence with ``count`` frames: a video's container timestamps
    (``frame_times``), an image folder's ``frames.csv`` column ``timestamp`` when it has one, else ``i / fps``
    (logged when a video's timestamps cannot be used: missing, repeated, or not one per frame)."""
    import logging

    path = Path(path)
    fallback = np.arange(count) / fps
    times = None
    if path.is_dir():
        table = path / "frames.csv"
        if table.is_file():
            import csv

            with open(table, newline="") as stream:
                rows = list(csv.DictReader(stream))
            if rows and "timestamp" in rows[0]:
                try:
                    times = np.array([float(row["timestamp"]) for row in rows], dtype=np.float64)
                except ValueError as error:
                    raise VideoError(f"{table}: column 'timestamp': expected numbers ({error})") from error
                if len(times) != count:
                    raise VideoError(f"{table}: {len(times)} timestamps for {count} images")
                if np.any(np.diff(times) <= 0):
                    raise VideoError(f"{table}: column 'timestamp': expected increasing times")
        return fallback if times is None else times
    times = frame_times(path)
    problem = None
    if times is None:
        problem = "the container has no frame timestamps"
    elif len(times) != count:
        problem = f"the container stamps {len(times)} frames, the video has {count}"
    elif np.any(np.diff(times) <= 0):
        problem = "the container repeats frame timestamps"
    if problem is not None:
        logging.getLogger("perception").warning("%s: %s: frame i is at i / %.3f s", path, problem, fps)
        return fallback
    return times


ODD_SIZE_MODES = ("pad", "exact", "error")
H264_SUFFIXES = (".mp4", ".mov", ".mkv")


class VideoWriter:
    """Writes BGR frames to a video through a temporary file renamed on close, with PyAV: H.264 (libx264, yuv420p:
    plays in browsers, Rerun and Foxglove) for .mp4/.mov/.mkv, VP9 for .webm, Motion-JPEG (any size) for .avi.

    ``size`` (width, height) in pixels; None opens the file on the first frame, with that frame's size (the one
    place that does "open the writer on the first frame"). A frame of another size is an error, or is resized to
    the video's size with ``resize_mismatched``. Closing a writer that got no frame writes no file. As a context
    manager it closes when the block succeeds and drops the partial file when it raises.

    H.264 in 4:2:0 needs an even width and height. ``odd_size`` says what happens to an odd one (e.g. 1242x375):
    ``pad`` (default: one black column/row added at the right/bottom, logged; for pictures to look at),
    ``exact`` (4:4:4 H.264 keeps the size; FFmpeg/OpenCV decode it, browsers do not: for data such as clip camera
    videos) or ``error``. Nothing is ever cropped. ``crf``/``preset``: libx264 quality and speed (the defaults, on
    synthetic 384x224 frames: the PSNR of OpenCV's mp4v at 0.8x its size, about 4x its encoding time).
    ``faststart``: the MP4 index first (streams while it downloads; the file is rewritten once at close).
    ``write(frame, time_s=...)`` stamps frames with their own times (variable frame rate; not in .avi); otherwise
    frame i is at i / fps.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        size: tuple[int, int] | None = None,
        *,
        resize_mismatched: bool = False,
        odd_size: str = "pad",
        crf: int = 23,
        preset: str = "veryfast",
        faststart: bool = True,
    ) -> None:
        if odd_size not in ODD_SIZE_MODES:
            raise ValueError(f"VideoWriter.odd_size: expected one of {ODD_SIZE_MODES}, found {odd_size!r}")
        suffix = Path(path).suffix.lower()
        if suffix not in (*H264_SUFFIXES, ".webm", ".avi"):
            raise VideoError(
                f"{path}: cannot write {suffix!r} videos: expected one of {(*H264_SUFFIXES, '.webm', '.avi')}"
            )
        self.path = Path(path)
        self.fps = float(fps)
        if not self.fps > 0:
            raise ValueError(f"VideoWriter.fps: expected a positive frame rate, found {fps}")
        self.resize_mismatched = resize_mismatched
        self.odd_size, self.crf, self.preset, self.faststart = odd_size, crf, preset, faststart
        self.size: tuple[int, int] | None = None  # of the frames given
        self.stored_size: tuple[int, int] | None = None  # in the file (padded when odd and odd_size="pad")
        self.frames_written = 0
        self._pending: PendingFile | None = None
        self._container = None  # PyAV container
        self._frame_indexed = False  # .avi: frame i at i / fps
        self._time_base = None
        self._stream = None
        if size is not None:
            self._open((int(size[0]), int(size[1])))

    def _open(self, size: tuple[int, int]) -> None:
        import logging
        from fractions import Fraction

        import av

        self._pending = PendingFile(self.path, suffix=self.path.suffix)
        self.size = self.stored_size = size
        width, height = size
        suffix = self.path.suffix.lower()
        codec = {".webm": "libvpx-vp9", ".avi": "mjpeg"}.get(suffix, "libx264")
        pixel_format = "yuvj420p" if codec == "mjpeg" else "yuv420p"  # JPEG takes odd sizes, H.264/VP9 4:2:0 not
        if (width % 2 or height % 2) and codec != "mjpeg":
            if self.odd_size == "error":
                self._pending.abort()
                raise VideoError(
                    f"{self.path}: frame size {width}x{height} is odd; H.264/VP9 4:2:0 needs an even width and "
                    "height (pad or crop the frames, or write odd_size='pad' / 'exact')"
                )
            if self.odd_size == "pad":
                self.stored_size = (width + width % 2, height + height % 2)
                logging.getLogger("perception").info(
                    "%s: %dx%d frames padded to %dx%d (H.264 4:2:0 needs even sizes)", self.path, width, height,
                    *self.stored_size,
                )  # fmt: skip
            else:
                pixel_format = "yuv444p"
        rate = Fraction(self.fps).limit_denominator(1_000_000)
        self._frame_indexed = codec == "mjpeg"  # AVI has no presentation times: frame i at i / fps
        self._time_base = 1 / rate if self._frame_indexed else Fraction(1, 90_000)
        try:
            self._container = av.open(
                str(self._pending.temporary), "w", format="webm" if codec == "libvpx-vp9" else None,
                options={"movflags": "+faststart"} if self.faststart and suffix in (".mp4", ".mov") else {},
            )  # fmt: skip
            self._stream = self._container.add_stream(codec, rate=rate)
            self._stream.width, self._stream.height = self.stored_size
            self._stream.pix_fmt = pixel_format
            self._stream.codec_context.time_base = self._time_base
            if codec == "libx264":
                self._stream.options = {"crf": str(self.crf), "preset": self.preset}
            elif codec == "libvpx-vp9":
                self._stream.options = {"crf": str(self.crf), "b": "0"}
        except (av.FFmpegError, ValueError) as error:
            self._abort_av()
            raise VideoError(f"{self.path}: cannot open a {codec} writer: {error}") from error

    def write(self, frame: np.ndarray, *, time_s: float | None = None) -> None:
        """Append one BGR uint8 frame (H, W, 3); ``time_s``: its presentation time (s) for variable frame rates."""
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
        self._encode(frame, time_s)
        self.frames_written += 1

    def _encode(self, frame: np.ndarray, time_s: float | None) -> None:

        import av

        if self.stored_size != self.size:
            padded = np.zeros((self.stored_size[1], self.stored_size[0], 3), np.uint8)
            padded[: frame.shape[0], : frame.shape[1]] = frame
            frame = padded
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")
        picture.time_base = self._time_base
        if self._frame_indexed or time_s is None:
            picture.pts = int(round(self.frames_written / self.fps / self._time_base))
        else:
            picture.pts = int(round(float(time_s) / self._time_base))
        try:
            for packet in self._stream.encode(picture):
                self._container.mux(packet)
        except av.FFmpegError as error:
            raise VideoError(f"{self.path}: encoding frame {self.frames_written} failed: {error}") from error

    def close(self) -> None:
        """Finish the file and move it into place (nothing is written when no frame came)."""
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
            self._pending.commit()

    def _abort_av(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):  # a half-written container may not close cleanly; it is deleted
                self._container.close()
            self._container = None

    def abort(self) -> None:
        """Drop the partial file."""
        self._abort_av()
        if self._pending is not None:
            self._pending.abort()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
