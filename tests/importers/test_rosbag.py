"""``perception import rosbag``: a synthetic clip round trip through ROS 1 and ROS 2 (MCAP) bags, the real RealSense
and Spot recordings in ../shared/data/ros, and the errors a user acts on."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags is not installed (pip install fleetvision[robot])")

from perception.clip import DriveClip
from perception.geometry import transform_points
from perception.importers.cli import main
from perception.importers.rosbag import (
    BagImportError,
    camera_from_info,
    camera_names,
    decode_image,
    distortion_from_info,
    import_rosbag,
    sibling_info,
)
from perception.importers.tf_tree import BODY_FROM_OPTICAL, TfTree, TransformError
from perception.rig import Rig

sys.path.insert(0, str(Path(__file__).parent))
from bag_writer import write_clip_as_bag

ROOT = Path(__file__).resolve().parents[2]
ROS_DATA = ROOT / "../shared/data/ros"
REALSENSE = ROS_DATA / "realsense_d435" / "single_depth_color_640x480.bag"
SPOT_RAW = ROS_DATA / "spot_cameras" / "raw.bag"
SPOT_COMPRESSED = ROS_DATA / "spot_cameras" / "compressed.bag"
T0 = 1_700_000_000.0
COMPRESSED, BGR = ("front_narrow",), ("front_main",)


def _real(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"real robot log not found at {path} (shared data folder absent)")
    return path


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> dict[str, Path]:
    """A 4-camera synthetic clip (radtan, pinhole x2, fisheye) and the same clip as a ROS 1 bag and a ROS 2 MCAP bag."""
    from perception.sim.generate import generate_clip

    root = tmp_path_factory.mktemp("rosbag")
    rig = Rig.load(ROOT / "configs/rigs/front_3cam.yaml").resized(192, 112)
    fisheye = Rig.load(ROOT / "configs/rigs/front_fisheye_1cam.yaml").resized(160, 120).cameras[0]
    fisheye.name = "fisheye"
    clip = generate_clip(root / "clip", Rig([*rig.cameras, fisheye]), frames=5, seed=3, image_format="png")
    options = {"compressed": COMPRESSED, "bgr": BGR, "t0": T0, "chunk_bytes": 200_000}
    ros1 = write_clip_as_bag(clip, root / "clip.bag", **options)
    ros2 = write_clip_as_bag(clip, root / "clip_ros2", ros2=True, **options)
    sqlite = write_clip_as_bag(clip, root / "clip_sqlite", ros2=True, storage="sqlite3", **options)
    broken = write_clip_as_bag(clip, root / "broken.bag", omit_info=("front_main",), omit_links=("front_wide",))
    gappy = write_clip_as_bag(clip, root / "gappy.bag", skip_images=(("front_main", 2),))
    bags = {"ros1": ros1, "ros2": ros2, "mcap": next(ros2.glob("*.mcap")), "sqlite3": sqlite}
    bags |= {"broken": broken, "gappy": gappy}
    return {"clip": clip, **bags}


def _project(clip: DriveClip, camera: str, index: int, points_world: np.ndarray) -> np.ndarray:
    """World points in ``camera``'s pixels at its capture time of frame ``index`` (the clip's rig, times, poses)."""
    ego_from_world = np.linalg.inv(clip.pose_at(float(clip.camera_timestamps[camera][index])))
    return clip.rig[camera].project(transform_points(clip.rig[camera].camera_from_ego @ ego_from_world, points_world))[
        0
    ]


def _world_corners(clip: DriveClip, index: int) -> np.ndarray:
    boxes = clip.labels.frames[index].boxes3d
    return transform_points(clip.world_from_ego[index], boxes.corners().reshape(-1, 3))


@pytest.mark.parametrize("source", ["ros1", "ros2", "mcap", "sqlite3"])
def test_round_trip_gives_the_same_rig_pixels_and_projected_boxes(synth, source, tmp_path):
    out = tmp_path / "imported"
    argv = ["rosbag", str(synth[source]), "--out", str(out), "--reference-camera", "front_wide", "--no-progress"]
    assert main(argv) == 0
    original, imported = DriveClip.open(synth["clip"]), DriveClip.open(out)
    imported.validate(deep=True)
    assert sorted(imported.rig.names) == sorted(original.rig.names)
    for camera in original.rig:
        back = imported.rig[camera.name]
        assert (back.width, back.height, back.distortion_model) == (
            camera.width,
            camera.height,
            camera.distortion_model,
        )
        np.testing.assert_allclose(back.K, camera.K, atol=1e-6)
        np.testing.assert_allclose(back.distortion, camera.distortion, atol=1e-6)
        np.testing.assert_allclose(back.ego_from_camera, camera.ego_from_camera, atol=1e-6)
        np.testing.assert_allclose(
            imported.camera_timestamps[camera.name], original.camera_timestamps[camera.name] + T0, atol=1e-6
        )
    np.testing.assert_allclose(imported.timestamps, original.timestamps + T0, atol=1e-6)
    assert imported.num_frames == original.num_frames == 5
    for frame_in, frame_out in zip(original.frames(), imported.frames()):
        for name, image in frame_in.images.items():
            if name in COMPRESSED:  # JPEG (quality 95) original bytes kept: close, not equal
                assert np.abs(frame_out.images[name].astype(int) - image).mean() < 3.0
            else:
                np.testing.assert_array_equal(frame_out.images[name], image)
        corners_world = _world_corners(original, frame_in.index)
        for camera in original.rig:
            expected = _project(original, camera.name, frame_in.index, corners_world)
            found = _project(imported, camera.name, frame_in.index, corners_world)
            assert np.isfinite(expected).any()
            np.testing.assert_allclose(found, expected, atol=1e-3, equal_nan=True)
    # the poses stream was imported, world origin included (odom frame = the clip's world)
    np.testing.assert_allclose(imported.world_from_ego, original.world_from_ego, atol=1e-6)


def test_compressed_images_keep_their_original_bytes(synth, tmp_path):
    from rosbags.highlevel import AnyReader

    out = tmp_path / "clip"
    import_rosbag([synth["ros1"]], out, progress=False)
    with AnyReader([synth["ros1"]]) as reader:
        connection = next(c for c in reader.connections if c.topic == "/front_narrow/image_raw/compressed")
        first = next(reader.messages(connections=[connection]))
        data = bytes(reader.deserialize(first[2], connection.msgtype).data)
    assert (out / "cameras" / "front_narrow" / "000000.jpg").read_bytes() == data


def test_max_skew_drops_frames_and_reports_it(synth, tmp_path, capsys):
    # front_main lost its image of frame 2: its nearest images are 100 ms away from front_wide's, over 50 ms
    argv = ["rosbag", str(synth["gappy"]), "--out", str(tmp_path / "a"), "--reference-camera", "front_wide"]
    assert main([*argv, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "frames: 4 (reference camera front_wide)" in out
    assert "dropped 1 reference images: no front_main image within 50 ms" in out
    assert "skew front_main - front_wide: median 8.0 ms, max 8.0 ms" in out
    clip = DriveClip.open(tmp_path / "a")
    original = DriveClip.open(synth["clip"])
    np.testing.assert_allclose(clip.timestamps, original.timestamps[[0, 1, 3, 4]] + T0, atol=1e-6)
    # cameras are 8 ms apart: within 10 ms of front_wide there is no fisheye image (24 ms): no frame at all
    with pytest.raises(BagImportError, match="max-skew-ms 10.*fisheye 24.0 ms"):
        import_rosbag([synth["ros1"]], tmp_path / "b", reference_camera="front_wide", max_skew_ms=10, progress=False)


def test_camera_without_camera_info_and_missing_transform_are_named(synth, tmp_path, capsys):
    bag = str(synth["broken"])
    # automatic choice: front_main (no CameraInfo) is skipped with a note; front_wide has no tf chain
    assert main(["rosbag", bag, "--out", str(tmp_path / "a"), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "front_wide_optical_frame" in error and "missing edge: 'base_link' -> 'front_wide_link'" in error
    assert "sensor_mount" in error and "--rig" in error
    # explicitly chosen camera without CameraInfo: name the topic, suggest --rig
    argv = ["rosbag", bag, "--out", str(tmp_path / "b"), "--cameras", "/front_main/image_raw=main", "--no-progress"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "/front_main/image_raw: no sensor_msgs/CameraInfo for camera 'main'" in error and "--rig" in error
    # --base-frame that is not in the tree: list the frames
    argv = ["rosbag", str(synth["ros1"]), "--out", str(tmp_path / "c"), "--base-frame", "chassis", "--no-progress"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "frame 'chassis' is not in the bag's tf tree" in error and "base_link" in error and "odom" in error
    # a rig supplies what the bag lacks
    rig = DriveClip.open(synth["clip"]).rig
    rig.subset(["front_main", "front_wide"]).save(tmp_path / "rig.yaml")
    argv = ["rosbag", bag, "--out", str(tmp_path / "d"), "--rig", str(tmp_path / "rig.yaml"), "--no-progress"]
    assert main(argv) == 0
    imported = DriveClip.open(tmp_path / "d")
    assert sorted(imported.rig.names) == ["fisheye", "front_main", "front_narrow", "front_wide"]
    np.testing.assert_allclose(imported.rig["front_main"].K, rig["front_main"].K)
    np.testing.assert_allclose(imported.rig["front_wide"].ego_from_camera, rig["front_wide"].ego_from_camera)


def test_truncated_bags_are_refused_unless_salvaged(synth, tmp_path, capsys):
    for name in ("ros1", "mcap"):
        source = synth[name]
        data = source.read_bytes()
        cut = tmp_path / f"cut{source.suffix}"
        cut.write_bytes(data[: int(len(data) * 0.7)])
        assert main(["rosbag", str(cut), "--out", str(tmp_path / f"{name}_a"), "--no-progress"]) == 2
        error = capsys.readouterr().err
        assert "truncated or not indexed" in error and "--salvage" in error, error
        argv = ["rosbag", str(cut), "--out", str(tmp_path / f"{name}_b"), "--salvage", "--no-progress"]
        assert main(argv) == 0, capsys.readouterr().err
        assert "salvaged" in capsys.readouterr().out
        salvaged, original = DriveClip.open(tmp_path / f"{name}_b"), DriveClip.open(synth["clip"])
        assert 1 <= salvaged.num_frames < original.num_frames
        first = next(salvaged.frames())
        np.testing.assert_array_equal(first.images["front_wide"], next(original.frames()).images["front_wide"])
    # a ROS 1 bag whose recorder was killed before writing the index (index_pos 0)
    data = bytearray(synth["ros1"].read_bytes())
    at = data.index(b"index_pos=") + len(b"index_pos=")
    data[at : at + 8] = bytes(8)
    unindexed = tmp_path / "unindexed.bag"
    unindexed.write_bytes(bytes(data))
    assert main(["rosbag", str(unindexed), "--out", str(tmp_path / "u_a"), "--no-progress"]) == 2
    assert "not indexed" in capsys.readouterr().err
    assert main(["rosbag", str(unindexed), "--out", str(tmp_path / "u_b"), "--salvage", "--no-progress"]) == 0
    assert DriveClip.open(tmp_path / "u_b").num_frames == 5  # every chunk was complete


def test_bag_without_image_topics_lists_its_topics(tmp_path, capsys):
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    bag = tmp_path / "imu_only.bag"
    with Writer(bag) as writer:
        connection = writer.add_connection("/status", "std_msgs/msg/String", typestore=store)
        message = store.types["std_msgs/msg/String"](data="ok")
        writer.write(connection, 1, store.serialize_ros1(message, "std_msgs/msg/String"))
    assert main(["rosbag", str(bag), "--out", str(tmp_path / "clip"), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "no image topics" in error and "/status (std_msgs/msg/String)" in error


# ------------------------------------------------------------------------------------------ real recordings
@pytest.mark.shared_data
def test_realsense_d435_imports_with_its_device_frame(tmp_path, capsys):
    from rosbags.highlevel import AnyReader

    bag = _real(REALSENSE)
    assert main(["rosbag", str(bag), "--out", str(tmp_path / "a"), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "frame 'base_link' is not in the bag's tf tree" in error and "device_0_link" in error
    argv = ["rosbag", str(bag), "--out", str(tmp_path / "clip"), "--base-frame", "device_0_link", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "skipped depth topic /device_0/sensor_0/Depth_0/image/data" in out
    clip = DriveClip.open(tmp_path / "clip")
    assert clip.rig.names == ["Color_0"] and clip.num_frames == 1
    camera = clip.rig["Color_0"]
    assert (camera.width, camera.height, camera.distortion_model) == (640, 480, "none")
    with AnyReader([bag]) as reader:
        wanted = [c for c in reader.connections if c.topic.startswith("/device_0/sensor_1/Color_0/")]
        messages = {c.topic: reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(connections=wanted)}
    info = messages["/device_0/sensor_1/Color_0/info/camera_info"]
    np.testing.assert_allclose(camera.K, np.asarray(info.K).reshape(3, 3))
    image = messages["/device_0/sensor_1/Color_0/image/data"]
    assert clip.timestamps[0] == pytest.approx(image.header.stamp.sec + image.header.stamp.nanosec * 1e-9, abs=1e-6)
    rgb = np.asarray(image.data).reshape(480, 640, 3)
    np.testing.assert_array_equal(clip.read_frame(0).images["Color_0"], rgb[..., ::-1])
    # the stream extrinsic (rs2: reference stream -> colour, OpenCV axes) composed with the body axes of device_0_link
    t = messages["/device_0/sensor_1/Color_0/tf/0"].translation
    colour_from_reference = np.eye(4)
    colour_from_reference[:3, 3] = [t.x, t.y, t.z]
    expected_origin = BODY_FROM_OPTICAL @ np.linalg.inv(colour_from_reference)[:3, 3]
    np.testing.assert_allclose(camera.ego_from_camera[:3, 3], expected_origin, atol=1e-3)
    np.testing.assert_allclose(camera.ego_from_camera[:3, 2], [1, 0, 0], atol=0.02)  # looks forward (+x)


SPOT_RIG = """schema_version: 1
cameras:
- {name: hand_color, width: 640, height: 480, K: [[552.0, 0, 320.0], [0, 552.0, 240.0], [0, 0, 1]],
   ego_from_camera: {translation: [0.8, 0.0, 0.4], rotation_wxyz: [0.5, -0.5, 0.5, -0.5]}}
- {name: hand_mono, width: 224, height: 171, K: [[210.0, 0, 112.0], [0, 210.0, 85.5], [0, 0, 1]],
   ego_from_camera: {translation: [0.8, 0.05, 0.4], rotation_wxyz: [0.5, -0.5, 0.5, -0.5]}}
- {name: frontleft, width: 640, height: 480, K: [[330.0, 0, 320.0], [0, 330.0, 240.0], [0, 0, 1]],
   distortion: {model: fisheye, coefficients: [-0.03, 0.002, 0.0, 0.0]},
   ego_from_camera: {translation: [0.4, 0.05, 0.0], rotation_wxyz: [0.5, -0.5, 0.5, -0.5]}}
"""


@pytest.mark.shared_data
@pytest.mark.parametrize("path", [SPOT_RAW, SPOT_COMPRESSED], ids=["raw", "compressed"])
def test_spot_without_camera_info_fails_clearly_or_imports_with_a_rig(path, tmp_path, capsys):
    bag = _real(path)
    assert main(["rosbag", str(bag), "--out", str(tmp_path / "a"), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "no image topic has a sensor_msgs/CameraInfo" in error and "--rig" in error
    assert "/spot/camera/hand_color/image" in error and "hand_color" in error
    rig = tmp_path / "spot_rig.yaml"
    rig.write_text(SPOT_RIG)
    # the cameras were captured up to ~1.3 s apart: the default 50 ms skew finds no frame and says so
    assert main(["rosbag", str(bag), "--out", str(tmp_path / "b"), "--rig", str(rig), "--no-progress"]) == 2
    assert "--max-skew-ms" in capsys.readouterr().err
    argv = [
        "rosbag",
        str(bag),
        "--out",
        str(tmp_path / "c"),
        "--rig",
        str(rig),
        "--max-skew-ms",
        "2000",
        "--no-progress",
    ]
    assert main(argv) == 0
    assert "skipped depth topic /spot/depth/frontleft/image" in capsys.readouterr().out
    clip = DriveClip.open(tmp_path / "c")
    assert sorted(clip.rig.names) == ["frontleft", "hand_color", "hand_mono"]
    assert clip.rig["frontleft"].distortion_model == "fisheye"
    frame = clip.read_frame(0)
    assert frame.images["hand_mono"].shape == (171, 224, 3)
    gray = frame.images["frontleft"]
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])  # mono8 -> grey BGR
    colour = frame.images["hand_color"].reshape(-1, 3).astype(int)
    assert np.abs(colour[:, 0] - colour[:, 2]).mean() > 5  # a colour image (the scene has red and blue objects)
    # a single camera chosen by topic needs no skew
    topic = next(t for t in _image_topics(bag) if "hand_color" in t)
    argv = ["rosbag", str(bag), "--out", str(tmp_path / "d"), "--rig", str(rig), "--cameras", f"{topic}=hand_color"]
    assert main(argv) == 0


def _image_topics(bag: Path) -> list[str]:
    from rosbags.highlevel import AnyReader

    with AnyReader([bag]) as reader:
        return [c.topic for c in reader.connections if c.msgtype.endswith("Image")]


# ------------------------------------------------------------------------------------------ units
def test_camera_names_and_sibling_camera_info():
    topics = ["/cam_front/image_raw", "/cam_front/image_raw/compressed", "/left/cam/image", "/right/cam/image"]
    names = camera_names(topics)
    assert names["/cam_front/image_raw"] == "cam_front" and names["/left/cam/image"] == "left_cam"
    assert names["/right/cam/image"] == "right_cam"
    infos = [
        "/cam_front/camera_info",
        "/stereo/left/camera_info",
        "/stereo/right/camera_info",
        "/d/s/C_0/info/camera_info",
    ]
    assert sibling_info("/cam_front/image_raw/compressed", infos) == "/cam_front/camera_info"
    assert sibling_info("/stereo/left/image_rect", infos) == "/stereo/left/camera_info"
    assert sibling_info("/d/s/C_0/image/data", infos) == "/d/s/C_0/info/camera_info"
    assert sibling_info("/stereo/image", infos) is None  # two candidates, none the namespace's own
    assert sibling_info("/image_raw", ["/camera_info"]) == "/camera_info"


def _info(model: str, d: list[float], **extra):
    return SimpleNamespace(distortion_model=model, d=d, **extra)


def test_camera_info_distortion_models_map_to_ours():
    assert distortion_from_info(_info("plumb_bob", [0.1, -0.2, 0.001, 0.002, 0.05]), "/c")[0] == "radtan"
    model, coefficients = distortion_from_info(_info("rational_polynomial", [0.1, -0.2, 0, 0, 0.05, 0.1, 0, 0]), "/c")
    assert model == "radtan" and len(coefficients) == 8
    model, coefficients = distortion_from_info(_info("equidistant", [0.02, -0.01, 0.002, -0.0005]), "/c")
    assert model == "fisheye" and coefficients.tolist() == [0.02, -0.01, 0.002, -0.0005]
    assert distortion_from_info(_info("Brown Conrady", [0, 0, 0, 0, 0]), "/c")[0] == "none"
    with pytest.raises(BagImportError, match="distortion_model.*'double_sphere'.*--rig"):
        distortion_from_info(_info("double_sphere", [0.5, 0.6]), "/cam/camera_info")


def test_rectified_topics_use_p_and_r():
    from perception.importers.rosbag import ImageStream

    angle = 0.1
    R = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    K = [500.0, 0, 320, 0, 500, 240, 0, 0, 1]
    P = [480.0, 0, 310, -48.0, 0, 480, 235, 0, 0, 0, 1, 0]
    info = _info("plumb_bob", [0.1, 0, 0, 0, 0], k=K, p=P, r=R.reshape(-1), width=640, height=480)
    stream = ImageStream("/stereo/right/image_rect", "sensor_msgs/msg/Image", width=640, height=480)
    camera, camera_from_rectified, note = camera_from_info("right", stream, info)
    np.testing.assert_allclose(camera.K, [[480, 0, 310], [0, 480, 235], [0, 0, 1]])
    assert camera.distortion_model == "none" and "rectified" in note
    np.testing.assert_allclose(camera_from_rectified[:3, :3], R.T)
    unrectified = ImageStream("/stereo/right/image_raw", "sensor_msgs/msg/Image", width=640, height=480)
    camera, _, note = camera_from_info("right", unrectified, info)
    assert camera.K[0, 0] == 500 and camera.distortion_model == "radtan" and "P ignored" in note
    with pytest.raises(BagImportError, match="uncalibrated"):
        camera_from_info(
            "x", unrectified, _info("plumb_bob", [], k=[0.0] * 9, p=[0.0] * 12, r=[0.0] * 9, width=640, height=480)
        )


def test_tf_tree_composes_chains_and_names_missing_edges():
    from perception.geometry import se3, yaw_matrix

    tf = TfTree()
    base_from_mount = se3(yaw_matrix(0.5), [1.0, 0.0, 1.5])
    mount_from_link = se3(yaw_matrix(-0.2), [0.1, 0.2, 0.0])
    tf.add("base_link", "mount", base_from_mount)
    tf.add("/mount", "cam_link", mount_from_link)  # ROS 1 leading slash
    tf.add("cam_link", "cam_optical_frame", se3(BODY_FROM_OPTICAL, np.zeros(3)))
    tf.add("odom", "base_link", se3(np.eye(3), [0.0, 0, 0]), t_ns=0)
    tf.add("odom", "base_link", se3(np.eye(3), [10.0, 0, 0]), t_ns=1_000_000_000)
    expected = base_from_mount @ mount_from_link @ se3(BODY_FROM_OPTICAL, np.zeros(3))
    np.testing.assert_allclose(tf.lookup("base_link", "cam_optical_frame"), expected, atol=1e-12)
    np.testing.assert_allclose(tf.lookup("cam_optical_frame", "base_link"), np.linalg.inv(expected), atol=1e-12)
    np.testing.assert_allclose(tf.lookup("odom", "base_link", 250_000_000)[:3, 3], [2.5, 0, 0])
    assert tf.moving_edges("odom", "cam_optical_frame") == ["base_link"]
    tf.add("arm", "gripper_optical_frame", np.eye(4))
    with pytest.raises(TransformError, match="missing edge: 'base_link' -> 'arm'"):
        tf.lookup("base_link", "gripper_optical_frame")


def test_decode_image_encodings():
    import cv2

    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    header = SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=0))

    def message(encoding: str, data: np.ndarray, step: int, big_endian: int = 0):
        raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        fields = {"height": 6, "width": 8, "step": step, "is_bigendian": big_endian}
        return SimpleNamespace(header=header, encoding=encoding, data=raw, **fields)

    image = "sensor_msgs/msg/Image"
    np.testing.assert_array_equal(decode_image(message("rgb8", bgr[..., ::-1], 24), image, "/c")[0], bgr)
    padded = np.zeros((6, 32), np.uint8)
    padded[:, :24] = bgr.reshape(6, 24)
    np.testing.assert_array_equal(decode_image(message("bgr8", padded, 32), image, "/c")[0], bgr)
    rgba = np.concatenate([bgr[..., ::-1], np.full((6, 8, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(decode_image(message("rgba8", rgba, 32), image, "/c")[0], bgr)
    mono16 = (np.arange(48, dtype=np.uint16) * 1000).reshape(6, 8)
    out = decode_image(message("mono16", mono16.astype(">u2"), 16, big_endian=1), image, "/c")[0]
    np.testing.assert_array_equal(out[..., 1], (mono16 >> 8).astype(np.uint8))
    bayer = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert decode_image(message("bayer_rggb8", bayer, 8), image, "/c")[0].shape == (6, 8, 3)
    with pytest.raises(BagImportError, match="encoding.*'32SC4'"):
        decode_image(message("32SC4", np.zeros((6, 8 * 16), np.uint8), 128), image, "/c")


def test_existing_output_is_not_replaced_without_overwrite(synth, tmp_path):
    out = tmp_path / "clip"
    out.mkdir()
    with pytest.raises(BagImportError, match="--overwrite"):
        import_rosbag([synth["ros1"]], out, progress=False)
    import_rosbag([synth["ros1"]], out, overwrite=True, progress=False)
    assert DriveClip.open(out).num_frames == 5
    shutil.rmtree(out)
