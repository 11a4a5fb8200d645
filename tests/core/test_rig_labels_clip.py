"""Rig files, label files and clip folders: round trips, streaming and the errors a user sees."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from perception.clip import ClipError, ClipWriter, DriveClip, find_clips
from perception.geometry import BevGrid, se3, yaw_matrix
from perception.labels import BevMaps, Boxes2D, Boxes3D, ClipLabels, FrameLabels, LabelsError, make_provenance
from perception.rig import Camera, Rig, RigError

FRONT = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)  # ego_R_camera for a forward camera


def small_rig() -> Rig:
    K = [[40.0, 0, 32], [0, 40.0, 24], [0, 0, 1]]
    back = yaw_matrix(np.pi) @ FRONT
    return Rig(
        [
            Camera("front", 64, 48, K, se3(FRONT, [1.5, 0, 1.5]), "radtan", [0.05, 0.0, 0.0, 0.0, 0.0]),
            Camera("back", 64, 48, K, se3(back, [-0.5, 0, 1.5])),
        ]
    )


def write_clip(path: Path, frames: int = 4, labels: bool = True) -> Path:
    rig = small_rig()
    grid = BevGrid(-8, 8, -8, 8, 1.0)
    frame_labels = [
        FrameLabels(
            Boxes3D([[6.0 + i, 0.5, 0.8]], [[4, 2, 1.6]], [0.1], velocity=[[2.0, 0]], class_id=[0], track_id=[7]),
            {"front": Boxes2D([[10, 10, 30, 30]], class_id=[0], visibility=[0.8])},
        )
        for i in range(frames)
    ]
    bev = BevMaps(grid, ["drivable", "lane"], np.ones((frames, 2, 16, 16), np.uint8))
    with ClipWriter(path, rig) as writer:
        for i in range(frames):
            image = np.full((48, 64, 3), 30 * i, np.uint8)
            writer.add_frame(
                {"front": image, "back": image},
                0.1 * i,
                se3(np.eye(3), [i, 0, 0]),
                {"front": 0.1 * i + 0.01, "back": 0.1 * i + 0.03},
            )
        if labels:
            writer.set_labels(
                ClipLabels(["car", "pedestrian"], frame_labels, make_provenance("ground_truth", "test"), bev)
            )
    return path


def test_rig_round_trip(tmp_path):
    rig = small_rig()
    rig.save(tmp_path / "rig.yaml")
    loaded = Rig.load(tmp_path / "rig.yaml")
    assert loaded.names == ["front", "back"]
    for a, b in zip(rig, loaded):
        np.testing.assert_allclose(a.K, b.K)
        np.testing.assert_allclose(a.ego_from_camera, b.ego_from_camera, atol=1e-9)
        np.testing.assert_allclose(a.distortion, b.distortion)


@pytest.mark.parametrize(
    "mutate, field, found",
    [
        (lambda c: c.update(K=[[1, 0], [0, 1]]), "cameras[0].K", "[[1, 0], [0, 1]]"),
        (lambda c: c["K"][0].__setitem__(0, -5.0), "cameras[0].K", "positive focal"),
        (lambda c: c.update(width=0), "cameras[0].width", "0"),
        (lambda c: c["ego_from_camera"].update(rotation_wxyz=[1, 1, 0, 0]), "rotation_wxyz", "unit quaternion"),
        (
            lambda c: c.update(ego_from_camera={"matrix": [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}),
            "cameras[0].ego_from_camera",
            "orthonormal",
        ),
        (lambda c: c.pop("K"), "cameras[0].K", "required"),
        (lambda c: c.update(distortion={"model": "kannala"}), "distortion.model", "kannala"),
        (lambda c: c.update(name="back"), "cameras[].name", "back"),
    ],
)
def test_malformed_rig_names_file_and_field(tmp_path, mutate, field, found):
    data = small_rig().to_dict()
    mutate(data["cameras"][0])
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RigError) as error:
        Rig.load(path)
    message = str(error.value)
    assert str(path) in message and field in message and found in message


def test_labels_round_trip_keeps_everything(tmp_path):
    clip = DriveClip.open(write_clip(tmp_path / "clip"))
    labels = clip.labels
    assert labels is not None and labels.classes == ["car", "pedestrian"]
    boxes = labels.frames[2].boxes3d
    np.testing.assert_allclose(boxes.center, [[8.0, 0.5, 0.8]])
    assert boxes.track_id.tolist() == [7] and boxes.velocity.tolist() == [[2.0, 0.0]]
    front = labels.frames[0].boxes2d["front"]
    assert np.isnan(front.truncation[0]) and abs(front.visibility[0] - 0.8) < 1e-6
    assert labels.bev is not None and labels.bev.data.shape == (4, 2, 16, 16)
    assert labels.provenance["source"] == "ground_truth"


def test_box_tables_validate_and_filter():
    boxes = Boxes3D(np.zeros((3, 3)), np.ones((3, 3)), np.zeros(3), class_id=[0, 1, 0], score=[0.9, 0.2, 0.5])
    kept = boxes[boxes.score > 0.4]
    assert len(kept) == 2 and kept.class_id.tolist() == [0, 0]
    assert len(Boxes3D.concat([boxes, kept])) == 5
    with pytest.raises(LabelsError, match="size"):
        Boxes3D(np.zeros((2, 3)), np.ones((3, 3)), np.zeros(2))


def test_clip_streams_frames_with_per_camera_timing(tmp_path):
    clip = DriveClip.open(write_clip(tmp_path / "clip"))
    assert find_clips(tmp_path) == [tmp_path / "clip"]
    frames = list(clip.frames(start=1))
    assert [f.index for f in frames] == [1, 2, 3]
    assert abs(frames[0].images["front"].mean() - 30) < 3
    assert frames[0].camera_timestamps == {"front": pytest.approx(0.11), "back": pytest.approx(0.13)}
    # the ego moves +10 m/s along x; the back camera is captured 30 ms after the reference time
    shift = clip.rig["back"].ego_from_camera @ clip.camera_from_ego(1, "back")  # ego(t_camera)_from_ego(t_ref)
    np.testing.assert_allclose(shift[:3, 3], [-0.3, 0, 0], atol=1e-9)
    clip.validate(deep=True)


def test_clip_errors_are_actionable(tmp_path):
    path = write_clip(tmp_path / "clip")
    (path / "cameras" / "back.mp4").unlink()
    with pytest.raises(ClipError, match="camera 'back' of rig.yaml has no video"):
        DriveClip.open(path)

    path = write_clip(tmp_path / "clip2")
    lines = (path / "frames.csv").read_text().splitlines()
    (path / "frames.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ClipError, match="holds 4 frames but frames.csv lists 3"):
        DriveClip.open(path)

    path = write_clip(tmp_path / "clip3")
    lines = (path / "frames.csv").read_text().splitlines()
    lines[2], lines[3] = lines[3].replace("2,", "1,", 1), lines[2].replace("1,", "2,", 1)
    (path / "frames.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ClipError, match="timestamps must increase"):
        DriveClip.open(path)

    path = write_clip(tmp_path / "clip4")
    text = (path / "labels.json").read_text().replace('"front":', '"left_repeater":')
    (path / "labels.json").write_text(text)
    with pytest.raises(ClipError, match="'left_repeater' is not in the clip's rig"):
        _ = DriveClip.open(path).labels


def test_lenient_clip_reports_unusable_cameras_and_keeps_the_rest(tmp_path):
    """The runtime's mode: cameras without a usable video are reported, not fatal; timing and poses as ever."""
    from perception.video import VideoWriter

    path = write_clip(tmp_path / "clip")
    strict = DriveClip.open(path)
    (path / "cameras" / "back.mp4").unlink()
    clip = DriveClip.open(path, lenient=True)
    assert list(clip.sources) == ["front"] and "camera 'back' of rig.yaml has no video" in clip.missing["back"]
    assert [f.index for f in clip.frames()] == [0, 1, 2, 3]  # default: the cameras that have video
    with pytest.raises(ClipError, match="camera 'back' cannot be read: .*has no video"):
        next(clip.frames(cameras=["front", "back"]))
    np.testing.assert_allclose(clip.camera_from_ego(1, "back"), strict.camera_from_ego(1, "back"))
    # a capture time of its own (a late frame of another index) moves the camera with the ego
    shift = clip.rig["back"].ego_from_camera @ clip.camera_from_ego(1, "back", capture_time=0.2)
    np.testing.assert_allclose(shift[:3, 3], [-1.0, 0, 0], atol=1e-9)
    assert clip.frame_period_s == pytest.approx(0.1)

    # a video of another size than rig.yaml is unusable (its K would be wrong): reported
    with VideoWriter(path / "cameras" / "back.mp4", 10.0, (32, 24)) as writer:
        for _ in range(4):
            writer.write(np.zeros((24, 32, 3), np.uint8))
    clip = DriveClip.open(path, lenient=True)
    assert "frame size 32x24 differs from rig.yaml camera 'back' (64x48)" in clip.missing["back"]

    # a short video is kept: reading reports where it ends
    with VideoWriter(path / "cameras" / "back.mp4", 10.0, (64, 48)) as writer:
        for _ in range(2):
            writer.write(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(ClipError, match="holds 2 frames but frames.csv lists 4"):
        DriveClip.open(path)
    clip = DriveClip.open(path, lenient=True)
    assert list(clip.sources) == ["front", "back"] and clip.missing == {}
    with pytest.raises(ClipError, match="ends after 2 frames"):
        list(clip.frames())

    # no t_<camera> column: captured at the frame's reference time
    table = (path / "frames.csv").read_text().splitlines()
    header = table[0].split(",")
    drop = header.index("t_back")
    (path / "frames.csv").write_text(
        "\n".join(",".join(v for i, v in enumerate(line.split(",")) if i != drop) for line in table) + "\n"
    )
    with pytest.raises(ClipError, match="missing columns \\['t_back'\\]"):
        DriveClip.open(path)
    np.testing.assert_array_equal(DriveClip.open(path, lenient=True).camera_timestamps["back"], clip.timestamps)


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with ClipWriter(tmp_path / "clip", small_rig()) as writer:
            image = np.zeros((48, 64, 3), np.uint8)
            writer.add_frame({"front": image, "back": image}, 0.0, np.eye(4))
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_plain_video_is_a_one_camera_clip(tmp_path):
    clip = DriveClip.from_video(write_clip(tmp_path / "clip") / "cameras" / "front.mp4", fps=10)
    assert clip.rig.names == ["camera"] and clip.num_frames == 4
    assert len(list(clip.frames())) == 4


def test_labels_can_come_from_another_file(tmp_path):
    path = write_clip(tmp_path / "clip")
    other = tmp_path / "pseudo" / "labels.json"
    labels = DriveClip.open(path).labels
    labels.frames[0].boxes3d.center[0, 0] = 42.0
    labels.provenance = make_provenance("autolabel", "test")
    labels.save(other)
    clip = DriveClip.open(path, labels_path=other)
    assert clip.labels.provenance["source"] == "autolabel" and clip.labels.frames[0].boxes3d.center[0, 0] == 42.0
    with pytest.raises(ClipError, match="not found"):
        DriveClip.open(path, labels_path=tmp_path / "missing.json")
