"""Plain video / image folder import to a one-camera clip, with nominal or calibrated intrinsics."""

import numpy as np
import pytest
import yaml

from perception.clip import ClipError, DriveClip
from perception.importers.cli import main
from perception.importers.video import import_video
from perception.rig import Camera, Rig
from perception.video import VideoWriter


@pytest.fixture()
def small_video(tmp_path):
    path = tmp_path / "drive.mp4"
    with VideoWriter(path, 15.0, (96, 64)) as writer:
        for i in range(12):
            frame = np.zeros((64, 96, 3), np.uint8)
            frame[:, (i * 7) % 96] = 255
            writer.write(frame)
    return path


def test_video_import_with_nominal_K(small_video, tmp_path):
    clip = DriveClip.open(import_video(small_video, tmp_path / "clip", progress=False))
    clip.validate(deep=True)
    camera = clip.rig["camera"]
    assert clip.num_frames == 12 and (camera.width, camera.height) == (96, 64)
    np.testing.assert_allclose(camera.K, [[96, 0, 48], [0, 96, 32], [0, 0, 1]])
    np.testing.assert_allclose(np.diff(clip.timestamps), 1 / 15, atol=1e-6)
    np.testing.assert_allclose(clip.world_from_ego, np.repeat(np.eye(4)[None], 12, axis=0))


def test_image_folder_with_camera_yaml_rescaled(small_video, tmp_path):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i:04d}.png"), np.full((64, 96, 3), 40 * i, np.uint8))
    calibrated = Camera(
        "dashcam",
        192,
        128,
        [[150.0, 0, 97], [0, 151, 63], [0, 0, 1]],
        distortion_model="radtan",
        distortion=[-0.2, 0.05, 0.0, 0.0, 0.0],
    )
    (tmp_path / "camera.yaml").write_text(yaml.safe_dump(Rig([calibrated]).to_dict()))
    code = main(
        [
            "video",
            str(folder),
            "--out",
            str(tmp_path / "clip"),
            "--fps",
            "5",
            "--camera-yaml",
            str(tmp_path / "camera.yaml"),
            "--format",
            "jpg",
        ]
    )
    assert code == 0
    clip = DriveClip.open(tmp_path / "clip")
    camera = clip.rig["camera"]
    np.testing.assert_allclose(
        [camera.K[0, 0], camera.K[1, 2]], [75.0, (63 + 0.5) * 0.5 - 0.5]
    )  # pixel-centre convention
    assert camera.distortion_model == "radtan" and camera.distortion[0] == pytest.approx(-0.2)
    np.testing.assert_allclose(clip.timestamps, np.arange(5) / 5)


@pytest.mark.shared_data
def test_real_dashcam_video_imports(tmp_path):
    from pathlib import Path

    video = Path(__file__).resolve().parents[2] / "../shared/data/udacity_dashcam/test_video.mp4"
    if not video.is_file():
        pytest.skip(f"shared dash-cam video not found at {video}")
    clip = DriveClip.open(import_video(video, tmp_path / "clip", max_frames=5, progress=False))
    assert clip.num_frames == 5 and clip.rig["camera"].width == 1280
    assert clip.read_frame(4).images["camera"].std() > 10


def test_bad_aspect_camera_yaml_is_refused(small_video, tmp_path):
    (tmp_path / "camera.yaml").write_text(
        yaml.safe_dump(Rig([Camera("c", 100, 100, [[99.0, 0, 50], [0, 99, 50], [0, 0, 1]])]).to_dict())
    )
    with pytest.raises(ClipError, match="same aspect ratio"):
        import_video(small_video, tmp_path / "clip", camera_yaml=tmp_path / "camera.yaml", progress=False)


def test_variable_frame_rate_video_keeps_its_presentation_times(tmp_path):
    """A phone-style VFR file (frames 20-150 ms apart): frames.csv gets the container's times, not i / fps."""
    times = np.array([0.0, 0.033, 0.066, 0.1, 0.2, 0.22, 0.37, 0.4, 0.55, 0.6])
    path = tmp_path / "phone.mp4"
    with VideoWriter(path, 30.0, (64, 48)) as writer:
        for i, t in enumerate(times):
            writer.write(np.full((48, 64, 3), 20 * i, np.uint8), time_s=t)
    assert (
        main(
            [
                "video",
                str(path),
                "--out",
                str(tmp_path / "clip"),
            ]
        )
        == 0
    )
    clip = DriveClip.open(tmp_path / "clip")
    np.testing.assert_allclose(clip.timestamps, times, atol=1e-4)  # container time base 1/90000 s or coarser
    np.testing.assert_allclose(clip.camera_timestamps["camera"], times, atol=1e-4)
    assert (
        main(
            [
                "video",
                str(path),
                "--out",
                str(tmp_path / "forced"),
                "--fps",
                "10",
            ]
        )
        == 0
    )
    np.testing.assert_allclose(DriveClip.open(tmp_path / "forced").timestamps, np.arange(10) / 10)


def test_odd_frame_size_is_kept_not_cropped(tmp_path):
    """1242x375 (KITTI): OpenCV's mp4v writer used to crop it and 'perception check' then refused the clip."""
    from perception.check import main as check_main
    from perception.video import VideoReader

    source = tmp_path / "kitti.avi"
    frames = [np.full((375, 1242, 3), 10 * i, np.uint8) for i in range(4)]
    for frame, k in zip(frames, range(4)):
        frame[:, -1] = 255  # the last column is content, not padding
        frame[-1, :] = 200 + k
    with VideoWriter(source, 10.0) as writer:
        for frame in frames:
            writer.write(frame)
    assert (
        main(
            [
                "video",
                str(source),
                "--out",
                str(tmp_path / "clip"),
            ]
        )
        == 0
    )
    assert check_main([str(tmp_path / "clip")]) == 0
    with VideoReader(tmp_path / "clip" / "cameras" / "camera.mp4") as reader:
        decoded = list(reader)
        assert (reader.width, reader.height) == (1242, 375)
    assert len(decoded) == 4 and abs(int(decoded[2][100, -1, 0]) - 255) <= 8  # last column still there
    with VideoWriter(tmp_path / "preview.mp4", 10.0) as writer:  # pictures to look at: padded, logged, not cropped
        writer.write(frames[0])
    assert writer.stored_size == (1242, 376) and writer.size == (1242, 375)
