"""Test helper: write a drive clip as a robot log (ROS 1 bag, or ROS 2 bag with MCAP storage) with rosbags' writers.

What a ROS driver stack would record for the clip:
  /tf_static                 base_link -> sensor_mount -> <cam>_link (body axes) -> <cam>_optical_frame (REP 103)
  /tf (ROS 1)                odom -> base_link at every pose sample of the clip
  /odom (ROS 2)              nav_msgs/Odometry odom -> base_link at every pose sample
  /<cam>/camera_info         CameraInfo: K, D (radtan 5 -> plumb_bob, 8 -> rational_polynomial, fisheye -> equidistant)
  /<cam>/image_raw           Image rgb8 (bgr8 for the cameras in ``bgr``), or
  /<cam>/image_raw/compressed  CompressedImage JPEG for the cameras in ``compressed``
Header stamps are the clip's times + ``t0`` seconds; each message's receive (log) time is its stamp + 7 ms, so a
reader that used log times instead of stamps would be caught.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from perception.clip import DriveClip
from perception.geometry import invert_se3, matrix_to_quat, se3, yaw_matrix

BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
BASE_FROM_MOUNT = se3(yaw_matrix(0.3), [1.1, -0.2, 1.3])
RECEIVE_DELAY_NS = 7_000_000


def _typestore(ros2: bool):
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    if ros2:
        return get_typestore(Stores.ROS2_HUMBLE)
    store = get_typestore(Stores.ROS1_NOETIC)
    store.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage"))
    return store


def _poses(clip_path: Path) -> list[tuple[float, np.ndarray]]:
    clip = DriveClip.open(clip_path)
    table = clip_path / "poses.csv"
    if not table.is_file():
        return [(float(t), pose) for t, pose in zip(clip.timestamps, clip.world_from_ego)]
    from perception.geometry import quat_to_matrix

    with table.open() as stream:
        rows = list(csv.DictReader(stream))
    return [
        (
            float(r["timestamp"]),
            se3(quat_to_matrix([float(r[k]) for k in ("qw", "qx", "qy", "qz")]), [float(r[k]) for k in "xyz"]),
        )
        for r in rows
    ]


def write_clip_as_bag(
    clip_path: Path,
    out: Path,
    *,
    ros2: bool = False,
    storage: str = "mcap",
    compressed: tuple[str, ...] = (),
    bgr: tuple[str, ...] = (),
    t0: float = 1_700_000_000.0,
    jpeg_quality: int = 95,
    omit_info: tuple[str, ...] = (),
    omit_links: tuple[str, ...] = (),
    chunk_bytes: int | None = None,
    skip_images: tuple[tuple[str, int], ...] = (),
) -> Path:
    """Write the clip at ``clip_path`` to ``out`` (a .bag file, or a ROS 2 bag folder with one .mcap or .db3 file).

    ``omit_info`` cameras get no CameraInfo, ``omit_links`` cameras no ``sensor_mount -> <cam>_link`` edge;
    ``chunk_bytes`` closes chunks at that size (rosbags' default is 1 MiB) so a cut file keeps whole chunks;
    ``skip_images`` leaves out the images (camera, frame index) listed, as a dropped camera frame would.
    """
    import cv2

    clip = DriveClip.open(clip_path)
    store = _typestore(ros2)
    T = store.types
    Time, Header = T["builtin_interfaces/msg/Time"], T["std_msgs/msg/Header"]
    Vector3, Quaternion = T["geometry_msgs/msg/Vector3"], T["geometry_msgs/msg/Quaternion"]

    def ns(t: float) -> int:
        return int(round((t + t0) * 1e9))

    def header(t_ns: int, frame: str):
        stamp = Time(sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000)
        return Header(stamp=stamp, frame_id=frame) if ros2 else Header(seq=0, stamp=stamp, frame_id=frame)

    def transform(matrix: np.ndarray):
        w, x, y, z = matrix_to_quat(matrix[:3, :3])
        t = matrix[:3, 3]
        return T["geometry_msgs/msg/Transform"](
            translation=Vector3(x=float(t[0]), y=float(t[1]), z=float(t[2])),
            rotation=Quaternion(x=float(x), y=float(y), z=float(z), w=float(w)),
        )

    def stamped(t_ns: int, parent: str, child: str, matrix: np.ndarray):
        return T["geometry_msgs/msg/TransformStamped"](
            header=header(t_ns, parent), child_frame_id=child, transform=transform(matrix)
        )

    messages: list[tuple[str, str, int, object]] = []  # topic, msgtype, log time ns, message
    t_start = ns(float(clip.timestamps[0])) - 1_000_000
    statics = [stamped(t_start, "base_link", "sensor_mount", BASE_FROM_MOUNT)]
    for camera in clip.rig:
        base_from_link = camera.ego_from_camera @ se3(BODY_FROM_OPTICAL.T, np.zeros(3))
        mount_from_link = invert_se3(BASE_FROM_MOUNT) @ base_from_link
        if camera.name not in omit_links:
            statics.append(stamped(t_start, "sensor_mount", f"{camera.name}_link", mount_from_link))
        statics.append(
            stamped(t_start, f"{camera.name}_link", f"{camera.name}_optical_frame", se3(BODY_FROM_OPTICAL, np.zeros(3)))
        )
    messages.append(("/tf_static", "tf2_msgs/msg/TFMessage", t_start, T["tf2_msgs/msg/TFMessage"](transforms=statics)))
    for t, world_from_ego in _poses(clip_path):
        t_ns = ns(t)
        if ros2:
            w, x, y, z = matrix_to_quat(world_from_ego[:3, :3])
            p = world_from_ego[:3, 3]
            pose = T["geometry_msgs/msg/Pose"](
                position=T["geometry_msgs/msg/Point"](x=float(p[0]), y=float(p[1]), z=float(p[2])),
                orientation=Quaternion(x=float(x), y=float(y), z=float(z), w=float(w)),
            )
            odometry = T["nav_msgs/msg/Odometry"](
                header=header(t_ns, "odom"),
                child_frame_id="base_link",
                pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
                twist=T["geometry_msgs/msg/TwistWithCovariance"](
                    twist=T["geometry_msgs/msg/Twist"](
                        linear=Vector3(x=0.0, y=0.0, z=0.0), angular=Vector3(x=0.0, y=0.0, z=0.0)
                    ),
                    covariance=np.zeros(36),
                ),
            )
            messages.append(("/odom", "nav_msgs/msg/Odometry", t_ns + RECEIVE_DELAY_NS, odometry))
        else:
            tf = T["tf2_msgs/msg/TFMessage"](transforms=[stamped(t_ns, "odom", "base_link", world_from_ego)])
            messages.append(("/tf", "tf2_msgs/msg/TFMessage", t_ns + RECEIVE_DELAY_NS, tf))
    distortion_names = {("radtan", 4): "plumb_bob", ("radtan", 5): "plumb_bob", ("radtan", 8): "rational_polynomial"}
    for camera in clip.rig:
        if camera.name in omit_info:
            continue
        model = "plumb_bob" if camera.distortion_model == "none" else "equidistant"
        if camera.distortion_model == "radtan":
            model = distortion_names[("radtan", len(camera.distortion))]
        d = camera.distortion if camera.distortion_model != "none" else np.zeros(5)
        K = camera.K
        P = np.concatenate([K, np.zeros((3, 1))], axis=1)
        fields = {"d": d, "k": K.reshape(-1), "r": np.eye(3).reshape(-1), "p": P.reshape(-1)}
        if not ros2:
            fields = {key.upper(): value for key, value in fields.items()}
        t_ns = ns(float(clip.camera_timestamps[camera.name][0]))
        info = T["sensor_msgs/msg/CameraInfo"](
            header=header(t_ns, f"{camera.name}_optical_frame"),
            height=camera.height,
            width=camera.width,
            distortion_model=model,
            binning_x=0,
            binning_y=0,
            roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
            **fields,
        )
        messages.append((f"/{camera.name}/camera_info", "sensor_msgs/msg/CameraInfo", t_ns, info))
    for frame in clip.frames():
        for name, image in frame.images.items():
            if (name, frame.index) in skip_images:
                continue
            t_ns = ns(frame.camera_timestamps[name])
            head = header(t_ns, f"{name}_optical_frame")
            if name in compressed:
                ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                assert ok
                message = T["sensor_msgs/msg/CompressedImage"](
                    header=head, format="bgr8; jpeg compressed bgr8", data=np.frombuffer(encoded.tobytes(), np.uint8)
                )
                messages.append(
                    (
                        f"/{name}/image_raw/compressed",
                        "sensor_msgs/msg/CompressedImage",
                        t_ns + RECEIVE_DELAY_NS,
                        message,
                    )
                )
                continue
            pixels = image if name in bgr else image[..., ::-1]
            message = T["sensor_msgs/msg/Image"](
                header=head,
                height=image.shape[0],
                width=image.shape[1],
                encoding="bgr8" if name in bgr else "rgb8",
                is_bigendian=0,
                step=image.shape[1] * 3,
                data=np.ascontiguousarray(pixels).reshape(-1),
            )
            messages.append((f"/{name}/image_raw", "sensor_msgs/msg/Image", t_ns + RECEIVE_DELAY_NS, message))
    messages.sort(key=lambda item: item[2])
    out = Path(out)
    if ros2:
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        writer = Writer(out, version=9, storage_plugin=plugin)
        serialize = store.serialize_cdr
    else:
        from rosbags.rosbag1 import Writer

        writer = Writer(out)
        serialize = store.serialize_ros1
        if chunk_bytes:
            writer.chunk_threshold = chunk_bytes
    with writer:
        connections = {}
        for topic, msgtype, _, _ in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=store)
        for topic, msgtype, log_time, message in messages:
            writer.write(connections[topic], log_time, serialize(message, msgtype))
            if ros2 and storage == "mcap" and chunk_bytes and writer.storage.chunk.bio.tell() > chunk_bytes:
                writer.storage.close_chunk()  # rosbags' MCAP storage has no chunk-size option
    return out
