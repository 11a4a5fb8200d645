"""Videos written through PyAV: H.264 yuv420p (what browsers, Rerun and Foxglove play), odd sizes padded / kept /
refused but never cropped, presentation times for variable frame rates, Motion-JPEG AVI at any size."""

from __future__ import annotations

import av
import numpy as np
import pytest

from perception.video import VideoError, VideoReader, VideoWriter, frame_times, presentation_times


def _stream_info(path) -> tuple[str, str, int, int]:
    with av.open(str(path)) as container:
        context = container.streams.video[0].codec_context
        return context.name, context.pix_fmt, context.width, context.height


def _frames(width: int, height: int, count: int = 5) -> list[np.ndarray]:
    frames = []
    for i in range(count):
        frame = np.full((height, width, 3), 30 * i, np.uint8)
        frame[:, -1] = 250  # content in the last column and row: cropping would lose it
        frame[-1, :] = 250
        frames.append(frame)
    return frames


def test_mp4_is_h264_yuv420p_with_the_index_first(tmp_path) -> None:
    path = tmp_path / "preview.mp4"
    with VideoWriter(path, 12.0) as writer:
        for frame in _frames(64, 48):
            writer.write(frame)
    assert _stream_info(path) == ("h264", "yuv420p", 64, 48)
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # faststart: plays while it downloads
    with VideoReader(path) as reader:
        decoded = list(reader)
    assert len(decoded) == 5 and abs(int(decoded[3][10, 10, 1]) - 90) <= 4  # frame 3's grey level (30 * 3)
    np.testing.assert_allclose(frame_times(path), np.arange(5) / 12.0, atol=1e-4)


def test_odd_sizes_pad_exact_or_error_never_crop(tmp_path) -> None:
    frames = _frames(63, 37)
    with VideoWriter(tmp_path / "pad.mp4", 10.0) as writer:  # pictures: padded by one black column / row
        for frame in frames:
            writer.write(frame)
    assert writer.size == (63, 37) and writer.stored_size == (64, 38)
    assert _stream_info(tmp_path / "pad.mp4") == ("h264", "yuv420p", 64, 38)
    with VideoReader(tmp_path / "pad.mp4") as reader:
        first = next(iter(reader))
    assert first[:37, 62].min() > 200 and first[:, 63].max() < 40  # the last real column kept, padding black
    with VideoWriter(tmp_path / "exact.mp4", 10.0, odd_size="exact") as writer:  # data: 4:4:4 keeps the size
        for frame in frames:
            writer.write(frame)
    assert _stream_info(tmp_path / "exact.mp4") == ("h264", "yuv444p", 63, 37)
    with VideoReader(tmp_path / "exact.mp4") as reader:
        assert (reader.width, reader.height) == (63, 37) and next(iter(reader))[36, :].min() > 200
    with (
        pytest.raises(VideoError, match=r"frame size 63x37 is odd"),
        VideoWriter(tmp_path / "refused.mp4", 10.0, odd_size="error") as writer,
    ):
        writer.write(frames[0])
    assert not (tmp_path / "refused.mp4").exists()
    with VideoWriter(tmp_path / "any.avi", 10.0) as writer:  # Motion-JPEG takes odd sizes as they are
        for frame in frames:
            writer.write(frame)
    with VideoReader(tmp_path / "any.avi") as reader:
        assert (reader.width, reader.height, reader.frame_count) == (63, 37, 5)


def test_variable_frame_rate_times_round_trip(tmp_path) -> None:
    times = [0.0, 0.04, 0.05, 0.12, 0.3, 0.31]
    with VideoWriter(tmp_path / "vfr.mp4", 25.0) as writer:
        for frame, t in zip(_frames(32, 24, 6), times):
            writer.write(frame, time_s=t)
    np.testing.assert_allclose(frame_times(tmp_path / "vfr.mp4"), times, atol=1e-4)
    np.testing.assert_allclose(presentation_times(tmp_path / "vfr.mp4", 6, 25.0), times, atol=1e-4)
    # a count that does not match the container's stamps falls back to i / fps (logged)
    np.testing.assert_allclose(presentation_times(tmp_path / "vfr.mp4", 7, 25.0), np.arange(7) / 25.0)


def test_image_folder_timestamps_from_frames_csv(tmp_path) -> None:
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.zeros((8, 8, 3), np.uint8))
    np.testing.assert_allclose(presentation_times(tmp_path, 3, 10.0), [0.0, 0.1, 0.2])
    (tmp_path / "frames.csv").write_text("index,timestamp\n0,5.0\n1,5.25\n2,5.3\n")
    np.testing.assert_allclose(presentation_times(tmp_path, 3, 10.0), [5.0, 5.25, 5.3])
    (tmp_path / "frames.csv").write_text("index,timestamp\n0,5.0\n1,4.0\n2,5.3\n")
    with pytest.raises(VideoError, match="frames.csv: column 'timestamp': expected increasing times"):
        presentation_times(tmp_path, 3, 10.0)
