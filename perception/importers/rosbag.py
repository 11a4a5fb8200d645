"""ROS 1 bags, ROS 2 bags (sqlite3 or MCAP storage) and plain MCAP files to a drive clip, without a ROS install.

Cameras. Every ``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` topic is a candidate. Chosen
automatically: the image topics with a sibling ``sensor_msgs/CameraInfo`` (the nearest ``camera_info`` topic up the
image topic's namespace: ``/cam/image_raw/compressed`` -> ``/cam/camera_info``, and librealsense's
``/device_0/sensor_1/Color_0/image/data`` -> ``/device_0/sensor_1/Color_0/info/camera_info``), plus, with ``--rig``,
the image topics whose camera name the rig holds; when one camera has a raw and a compressed topic the raw one is
used. ``--cameras TOPIC[=NAME] ...`` chooses explicitly. A camera's name is NAME, else its topic without generic
parts (``image_raw``, ``image``, ``compressed``, ``data`` ...): ``/spot/camera/hand_color/image`` -> ``hand_color``.
Depth streams (``16UC1``/``32FC1``, ``mono16`` on a topic named ``*depth*``, ``compressedDepth`` and 16-bit PNG
depth) are skipped with a note: a drive clip's cameras hold colour or grey images.

Images. ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8``, ``mono16`` (kept as its high byte), ``bayer_*8`` and
``yuv422`` raw images, JPEG or PNG compressed images. With ``--format auto`` (default) compressed images keep their
original bytes in the clip and raw images are stored losslessly as PNG; ``png``/``jpg``/``mp4`` re-encode all.

Calibration (DESIGN.md, "Robot-log conventions"). From the camera's first ``CameraInfo``: ``K`` (row-major 3x3) and
``D`` by ``distortion_model``: ``plumb_bob`` (k1 k2 p1 p2 k3) and ``rational_polynomial`` (8 coefficients) become
our ``radtan``, ``equidistant`` (k1..k4) our ``fisheye``, an all-zero ``D`` ``none``. Images on a topic with
``rect`` in its name are rectified already: ``K`` is the 3x3 block of ``P``, there is no distortion and the
camera frame is rotated by ``R``; elsewhere ``K`` and ``D`` are used and ``P`` is ignored (the import says which).
Binning and ROI are applied to ``K``. Without a ``CameraInfo`` the camera of the same name in ``--rig`` is used.

Extrinsics. ``ego_from_camera`` is the tf chain from ``--base-frame`` (default ``base_link``, REP 103 body axes:
x forward, y left, z up) to the camera's frame (``CameraInfo`` header's ``frame_id``, else the image's; by REP 103
an optical frame, OpenCV axes), composed through every intermediate frame of ``/tf_static`` (and of ``/tf`` at the
camera's first capture time when a link moves). librealsense recordings carry each stream's extrinsic as a
``geometry_msgs/Transform`` on ``/device_N/sensor_M/<stream>/tf/G`` (the rs2 extrinsic from the device's reference
stream to this stream, OpenCV axes); they join the tree as ``device_N_link`` (body axes at the reference stream,
like realsense-ros's ``camera_link``) -> ``device_N/sensor_M/<stream>``, the frame of that stream's images.
Without a chain the camera's ``ego_from_camera`` in ``--rig`` is used.

Time. Each image's ``header.stamp`` is its capture time (the bag's receive time is ignored), in seconds on the
Unix clock as recorded, so viewer exports line up with the original bag. Frames: one per image of the reference
camera (``--reference-camera``, default the first camera); every other camera contributes its image nearest in
time, which must lie within ``--max-skew-ms``, or the frame is dropped (counted in the report); an image is used
by one frame at most. The frame's reference time is the reference camera's stamp.

Ego poses (REP 105). ``world_from_ego`` comes from ``--odom-topic`` (``nav_msgs/Odometry``), else the ``/tf``
chain ``--odom-frame`` (default ``odom``) -> ``--base-frame`` when it moves, else the bag's only Odometry topic;
the samples near the clip go to ``poses.csv`` and the frame poses are interpolated at the reference times. With
none of these the poses are identity (said so).
"""

from __future__ import annotations

import os
import re
import shutil
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perception.clip import ClipError, ClipWriter
from perception.errors import InputError
from perception.geometry import interpolate_pose, invert_se3, se3
from perception.importers.bagfile import BagError, BagFile, BagTopic, describe_topics
from perception.importers.tf_tree import (
    BODY_FROM_OPTICAL,
    TfTree,
    TransformError,
    frame_name,
    pose_from_msg,
    transform_from_msg,
)
from perception.rig import Camera, Rig, RigError

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
TF_MESSAGES = ("tf2_msgs/msg/TFMessage", "tf/msg/tfMessage")  # tf2, and the older ROS 1 tf package
TRANSFORM = "geometry_msgs/msg/Transform"
ODOMETRY = "nav_msgs/msg/Odometry"
GENERIC_PARTS = {
    "image",
    "image_raw",
    "image_rect",
    "image_color",
    "image_rect_color",
    "image_mono",
    "image_rect_mono",
    "image_rect_raw",
    "compressed",
    "compresseddepth",
    "theora",
    "data",
    "raw",
}
DEPTH_ENCODINGS = {"16uc1", "32fc1", "16sc1", "32fc", "16uc"}
REALSENSE_STREAM = re.compile(r"^/(device_\d+)/(sensor_\d+)/([^/]+)/")
REALSENSE_EXTRINSIC = re.compile(r"^/(device_\d+)/(sensor_\d+)/([^/]+)/tf/\d+$")
BAYER = {"bayer_rggb8": "COLOR_BayerBG2BGR", "bayer_bggr8": "COLOR_BayerRG2BGR", "bayer_gbrg8": "COLOR_BayerGR2BGR"}
BAYER["bayer_grbg8"] = "COLOR_BayerGB2BGR"  # cv_bridge's mapping (OpenCV names Bayer patterns by the second row)
RAW_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8uc1", "8uc3", "mono16", "yuv422", "uyvy", "yuyv")


class BagImportError(InputError):
    """Bad input for the rosbag importer; the message names the bag, the topic or field, expected, found, a hint."""


# ---------------------------------------------------------------------------------------------------- decoding
def _field(message: Any, *names: str) -> Any:
    """A message field under its ROS 2 name or its ROS 1 name (``k``/``K``, ``d``/``D``)."""
    for name in names:
        if hasattr(message, name):
            return getattr(message, name)
    raise AttributeError(f"message has none of the fields {names}")


def stamp_ns(message: Any) -> int:
    """``header.stamp`` in nanoseconds."""
    stamp = message.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def is_depth(topic: str, msgtype: str, message: Any) -> bool:
    """Depth images are not camera images: 16/32-bit single-channel encodings, compressedDepth, *depth* mono16."""
    named_depth = "depth" in topic.lower()
    if msgtype == COMPRESSED:
        fmt = str(message.format).lower()
        return "compresseddepth" in fmt or fmt.split(";")[0].strip() in DEPTH_ENCODINGS or (named_depth and "16" in fmt)
    encoding = str(message.encoding).lower()
    return encoding in DEPTH_ENCODINGS or (encoding == "mono16" and named_depth)


def decode_image(message: Any, msgtype: str, topic: str) -> tuple[np.ndarray, str | None]:
    """A BGR uint8 image from an Image or CompressedImage message, and the compressed file extension (or None)."""
    import cv2

    if msgtype == COMPRESSED:
        data = np.frombuffer(bytes(message.data), np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if image is None:
            raise BagImportError(
                f"{topic}: CompressedImage at stamp {stamp_ns(message) / 1e9:.6f} s: expected JPEG or PNG bytes, "
                f"found {data.size} bytes OpenCV cannot decode (format {message.format!r})"
            )
        extension = ".png" if bytes(message.data[:4]) == b"\x89PNG" else ".jpg"
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        return np.ascontiguousarray(image), extension
    encoding = str(message.encoding).lower()
    height, width, step = int(message.height), int(message.width), int(message.step)
    raw = np.frombuffer(bytes(message.data), np.uint8)
    if raw.size < step * height or step == 0:
        raise BagImportError(
            f"{topic}: Image at stamp {stamp_ns(message) / 1e9:.6f} s: expected step*height = {step * height} bytes "
            f"of {encoding}, found {raw.size}"
        )
    rows = raw[: step * height].reshape(height, step)

    def plane(channels: int, itemsize: int = 1) -> np.ndarray:
        pixels = rows[:, : width * channels * itemsize]
        if itemsize == 2:
            big_endian = bool(message.is_bigendian)
            pixels = pixels.copy().view(">u2" if big_endian else "<u2")
        return pixels.reshape(height, width, channels) if channels > 1 else pixels.reshape(height, width)

    if encoding in ("bgr8", "8uc3"):
        return np.ascontiguousarray(plane(3)), None
    if encoding == "rgb8":
        return np.ascontiguousarray(plane(3)[..., ::-1]), None
    if encoding == "bgra8":
        return np.ascontiguousarray(plane(4)[..., :3]), None
    if encoding == "rgba8":
        return np.ascontiguousarray(plane(4)[..., 2::-1]), None
    if encoding in ("mono8", "8uc1"):
        return cv2.cvtColor(np.ascontiguousarray(plane(1)), cv2.COLOR_GRAY2BGR), None
    if encoding == "mono16":
        return cv2.cvtColor((plane(1, 2) >> 8).astype(np.uint8), cv2.COLOR_GRAY2BGR), None
    if encoding in BAYER:
        return cv2.cvtColor(np.ascontiguousarray(plane(1)), getattr(cv2, BAYER[encoding])), None
    if encoding in ("yuv422", "uyvy", "yuyv", "yuv422_yuy2"):
        code = cv2.COLOR_YUV2BGR_UYVY if encoding in ("yuv422", "uyvy") else cv2.COLOR_YUV2BGR_YUY2
        return cv2.cvtColor(np.ascontiguousarray(plane(2)), code), None
    raise BagImportError(
        f"{topic}: Image field 'encoding': expected one of {', '.join(RAW_ENCODINGS + tuple(BAYER))}, "
        f"found {message.encoding!r}; hint: leave this topic out of --cameras"
    )


# ---------------------------------------------------------------------------------------------------- cameras
@dataclass
class ImageStream:
    """One image topic of the bag, as seen in the metadata pass."""

    topic: str
    msgtype: str
    stamps: list[int] = field(default_factory=list)  # header stamps (ns), in bag order
    first: Any = None  # first message
    width: int = 0
    height: int = 0
    encoding: str = ""
    frame_id: str = ""
    depth: bool = False
    info_topic: str | None = None
    name: str = ""

    @property
    def compressed(self) -> bool:
        return self.msgtype == COMPRESSED


def name_parts(topic: str) -> list[str]:
    """A topic's meaningful parts: generic trailing parts (``image_raw``, ``compressed``, ...) removed."""
    parts = [p for p in topic.strip("/").split("/") if p]
    while len(parts) > 1 and parts[-1].lower() in GENERIC_PARTS:
        parts.pop()
    return [re.sub(r"[^A-Za-z0-9_.-]", "_", p) for p in parts] or ["camera"]


def camera_names(topics: Sequence[str]) -> dict[str, str]:
    """Unique camera names: each topic's last meaningful part, more parts joined by ``_`` where names collide."""
    depth = dict.fromkeys(topics, 1)
    while True:
        names = {t: "_".join(name_parts(t)[-depth[t] :]) for t in topics}
        clashes = [t for t in topics if list(names.values()).count(names[t]) > 1]
        growable = [t for t in clashes if depth[t] < len(name_parts(t))]
        if not clashes or not growable:
            break
        for topic in growable:
            depth[topic] += 1
    seen: dict[str, int] = defaultdict(int)
    for topic in topics:  # still equal (same parts): number them
        seen[names[topic]] += 1
        if seen[names[topic]] > 1:
            names[topic] = f"{names[topic]}_{seen[names[topic]]}"
    return names


def expected_info_topic(topic: str) -> str:
    """Where a driver would publish the CameraInfo of an image topic (for error messages)."""
    parts = [p for p in topic.strip("/").split("/") if p]
    while len(parts) > 1 and parts[-1].lower() in GENERIC_PARTS:
        parts.pop()
    return "/" + "/".join(parts) + "/camera_info"


def sibling_info(topic: str, info_topics: Sequence[str]) -> str | None:
    """The nearest ``CameraInfo`` topic up the image topic's namespace (None if none or ambiguous)."""
    parts = [p for p in topic.strip("/").split("/") if p]
    for k in range(len(parts) - 1, 0, -1):
        prefix = "/" + "/".join(parts[:k])
        candidates = [t for t in info_topics if t.startswith(prefix + "/")]
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            return f"{prefix}/camera_info" if f"{prefix}/camera_info" in candidates else None
    return "/camera_info" if "/camera_info" in info_topics else None


def _realsense_frame(topic: str) -> str | None:
    match = REALSENSE_STREAM.match(topic)
    return f"{match.group(1)}/{match.group(2)}/{match.group(3)}" if match else None


def distortion_from_info(info: Any, topic: str) -> tuple[str, np.ndarray]:
    """Our distortion (model, coefficients) from a CameraInfo's ``distortion_model`` and ``D``."""
    model = str(info.distortion_model).strip().lower().replace(" ", "_").replace("-", "_")
    d = np.asarray(_field(info, "d", "D"), dtype=np.float64).reshape(-1)
    if d.size == 0 or not np.any(d):
        return "none", np.zeros(0)
    if model in ("plumb_bob", "brown_conrady", "radtan"):
        if d.size in (4, 5):
            return "radtan", d
        if d.size > 5 and not np.any(d[5:]):
            return "radtan", d[:5]
    elif model == "rational_polynomial" and d.size >= 5 and not np.any(d[8:]):
        coefficients = np.zeros(8)
        coefficients[: min(d.size, 8)] = d[:8]
        return "radtan", coefficients
    elif model in ("equidistant", "fisheye", "kannala_brandt") and d.size >= 4 and not np.any(d[4:]):
        return "fisheye", d[:4]
    raise BagImportError(
        f"{topic}: CameraInfo field 'distortion_model': expected plumb_bob (5 coefficients), rational_polynomial (8) "
        f"or equidistant (4), found {info.distortion_model!r} with D = {d.round(6).tolist()}; "
        f"hint: pass --rig rig.yaml with this camera's calibration"
    )


def camera_from_info(name: str, stream: ImageStream, info: Any) -> tuple[Camera, np.ndarray, str]:
    """(Camera with identity extrinsics, camera_from_rectified rotation 4x4, a note on what was used)."""
    topic = stream.info_topic or stream.topic
    K = np.array(_field(info, "k", "K"), dtype=np.float64).reshape(3, 3)
    P = np.array(_field(info, "p", "P"), dtype=np.float64).reshape(3, 4)
    R = np.array(_field(info, "r", "R"), dtype=np.float64).reshape(3, 3)
    rectified = any("rect" in part.lower() for part in stream.topic.split("/"))
    camera_from_used = np.eye(4)
    if rectified and np.any(P[:, :3]):
        K, model, coefficients = P[:, :3].copy(), "none", np.zeros(0)
        if np.any(R):
            camera_from_used = se3(R.T, np.zeros(3))
        note = f"rectified images ({stream.topic}): K from CameraInfo P, no distortion"
    else:
        model, coefficients = distortion_from_info(info, topic)
        note = f"K and D ({model}) from {topic}" + (" (P ignored)" if np.any(P) else "")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise BagImportError(
            f"{topic}: CameraInfo field 'K': expected positive focal lengths, found {K.round(3).tolist()} "
            f"(an uncalibrated camera publishes zeros); hint: pass --rig rig.yaml with camera {name!r}"
        )
    width, height = int(info.width) or stream.width, int(info.height) or stream.height
    roi = getattr(info, "roi", None)
    if roi is not None and roi.width and roi.height and (roi.width, roi.height) != (width, height):
        K[0, 2] -= roi.x_offset
        K[1, 2] -= roi.y_offset
        width, height = int(roi.width), int(roi.height)
    bin_x, bin_y = max(int(getattr(info, "binning_x", 0)), 1), max(int(getattr(info, "binning_y", 0)), 1)
    if bin_x > 1 or bin_y > 1:  # image_geometry's convention: fx, cx / binning_x; fy, cy / binning_y
        K[0, :] /= bin_x
        K[1, :] /= bin_y
        width, height = width // bin_x, height // bin_y
    if (width, height) != (stream.width, stream.height):
        raise BagImportError(
            f"{topic}: CameraInfo describes {width}x{height} pixels (after binning/ROI), the images on "
            f"{stream.topic} are {stream.width}x{stream.height}: expected the same size; hint: pass --rig rig.yaml"
        )
    K[2] = [0.0, 0.0, 1.0]
    return Camera(name, width, height, K, np.eye(4), model, coefficients), camera_from_used, note


# ---------------------------------------------------------------------------------------------------- report
@dataclass
class ImportReport:
    """What the import did: the clip, its cameras and where their calibration came from, frames, skew, notes."""

    path: Path
    cameras: dict[str, dict[str, str]]
    frames: int
    reference: str
    skew_ms: dict[str, tuple[float, float]]
    dropped: dict[str, int]
    poses: str
    notes: list[str]

    def lines(self) -> list[str]:
        out = [
            f"bag camera {name}: {', '.join(f'{k} {v}' for k, v in info.items())}"
            for name, info in self.cameras.items()
        ]
        out.append(f"frames: {self.frames} (reference camera {self.reference})")
        for name, (p50, worst) in self.skew_ms.items():
            out.append(f"skew {name} - {self.reference}: median {p50:.1f} ms, max {worst:.1f} ms")
        out += [f"dropped {count} reference images: {reason}" for reason, count in self.dropped.items() if count]
        out.append(f"ego poses: {self.poses}")
        out += [f"note: {note}" for note in self.notes]
        return out


# ---------------------------------------------------------------------------------------------------- importer
def _parse_camera_specs(specs: Sequence[str] | None) -> list[tuple[str, str | None]]:
    parsed = []
    for spec in specs or []:
        topic, _, name = spec.partition("=")
        parsed.append(("/" + topic.strip().lstrip("/"), name.strip() or None))
    return parsed


def _interpolate(times: np.ndarray, poses: np.ndarray, t: float) -> np.ndarray:
    """world_from_ego at ``t`` in a pose stream (constant-velocity extrapolation outside, as DriveClip.pose_at)."""
    if len(times) == 1:
        return poses[0].copy()
    i = int(np.clip(np.searchsorted(times, t) - 1, 0, len(times) - 2))
    return interpolate_pose(poses[i], poses[i + 1], float((t - times[i]) / (times[i + 1] - times[i])))


def import_rosbag(
    bags: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    cameras: Sequence[str] | None = None,
    rig: str | os.PathLike | None = None,
    base_frame: str = "base_link",
    odom_frame: str = "odom",
    odom_topic: str | None = None,
    reference_camera: str | None = None,
    max_skew_ms: float = 50.0,
    image_format: str = "auto",
    max_frames: int | None = None,
    salvage: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> ImportReport:
    """Write a drive clip from a robot log (see the module docstring for every convention)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise BagImportError(f"{out}: already exists; hint: pass --overwrite to replace it")
    if image_format not in ("auto", "png", "jpg", "mp4"):
        raise BagImportError(f"--format: expected auto, png, jpg or mp4, found {image_format!r}")
    if max_skew_ms <= 0:
        raise BagImportError(f"--max-skew-ms: expected a positive number of milliseconds, found {max_skew_ms}")
    rig_cameras = Rig.load(rig) if rig is not None else None
    base_frame = frame_name(base_frame)
    with BagFile(bags, salvage=salvage) as bag:
        notes = [bag.salvage_note] if bag.salvage_note else []
        streams, infos, tf, odometry = _scan(bag, odom_topic, progress)
        chosen = _choose_cameras(bag, streams, infos, cameras, rig_cameras, notes)
        rig_out, camera_report = _build_rig(bag, chosen, infos, tf, rig_cameras, rig, base_frame, notes)
        reference = reference_camera or rig_out.names[0]
        if reference not in rig_out.names:
            raise BagImportError(
                f"--reference-camera: expected one of the imported cameras {rig_out.names}, found {reference!r}"
            )
        by_name = {stream.name: stream for stream in chosen}
        frames, skew, dropped = _group_frames(bag, by_name, rig_out.names, reference, max_skew_ms)
        if max_frames is not None:
            frames = frames[: max(int(max_frames), 1)]
        pose_times, pose_stream, pose_note = _ego_poses(
            bag, tf, odometry, odom_topic, odom_frame, base_frame, frames, by_name, reference
        )
        path = _write(
            bag, out, rig_out, by_name, frames, reference, pose_times, pose_stream, image_format, overwrite, progress
        )
    return ImportReport(path, camera_report, len(frames), reference, skew, dropped, pose_note, notes)


def _scan(bag: BagFile, odom_topic: str | None, progress: bool) -> tuple[dict, dict, TfTree, dict]:
    """The metadata pass: image stamps and first messages, first CameraInfo per topic, the tf tree, odometry."""
    from tqdm import tqdm

    topics = bag.topics
    streams = {t: ImageStream(t, info.msgtype) for t, info in topics.items() if info.msgtype in (IMAGE, COMPRESSED)}
    if not streams:
        raise BagImportError(
            f"{bag.name}: no image topics: expected sensor_msgs/Image or sensor_msgs/CompressedImage, "
            f"found topics: {describe_topics(topics)}"
        )
    wanted = set(streams)
    wanted |= {t for t, info in topics.items() if info.msgtype in (CAMERA_INFO, ODOMETRY, *TF_MESSAGES)}
    wanted |= {t for t, info in topics.items() if info.msgtype == TRANSFORM and REALSENSE_EXTRINSIC.match(t)}
    infos: dict[str, Any] = {}
    odometry: dict[str, list[Any]] = defaultdict(list)
    tf = TfTree()
    total = sum(max(topics[t].count, 0) for t in wanted) or None
    for topic, msgtype, _, message in tqdm(
        bag.messages(wanted), total=total, desc="reading bag", unit="msg", disable=not progress
    ):
        if topic in streams:
            stream = streams[topic]
            stream.stamps.append(stamp_ns(message))
            if stream.first is None:
                stream.first = message
                stream.frame_id = frame_name(message.header.frame_id)
                stream.depth = is_depth(topic, msgtype, message)
                if msgtype == IMAGE:
                    stream.width, stream.height, stream.encoding = (
                        int(message.width),
                        int(message.height),
                        message.encoding,
                    )
                else:
                    stream.encoding = str(message.format)
                    if not stream.depth:
                        image, _ = decode_image(message, msgtype, topic)
                        stream.height, stream.width = image.shape[:2]
        elif msgtype == CAMERA_INFO:
            infos.setdefault(topic, message)
        elif msgtype in TF_MESSAGES:
            tf.add_tf_message(message, static=topic.rstrip("/").endswith("tf_static"))
        elif msgtype == TRANSFORM:  # librealsense stream extrinsic: rs2 extrinsic reference -> stream, OpenCV axes
            match = REALSENSE_EXTRINSIC.match(topic)
            assert match is not None
            stream_from_reference = transform_from_msg(message)
            device_link = f"{match.group(1)}_link"
            body_from_reference = se3(BODY_FROM_OPTICAL, np.zeros(3))
            stream_frame = f"{match.group(1)}/{match.group(2)}/{match.group(3)}"
            tf.add(device_link, stream_frame, body_from_reference @ invert_se3(stream_from_reference))
        elif msgtype == ODOMETRY and (odom_topic is None or topic == odom_topic):
            odometry[topic].append(message)
    return streams, infos, tf, odometry


def _choose_cameras(
    bag: BagFile,
    streams: dict[str, ImageStream],
    infos: dict[str, Any],
    specs: Sequence[str] | None,
    rig_cameras: Rig | None,
    notes: list[str],
) -> list[ImageStream]:
    info_topics = sorted(infos)
    for stream in streams.values():
        stream.info_topic = sibling_info(stream.topic, info_topics)
    image_topics = {t: BagTopic(t, s.msgtype, len(s.stamps)) for t, s in streams.items()}
    parsed = _parse_camera_specs(specs)
    if parsed:
        chosen = []
        for topic, _ in parsed:
            if topic not in streams:
                raise BagImportError(
                    f"{bag.name}: --cameras: topic {topic!r} is not an image topic of the bag; "
                    f"image topics: {describe_topics(image_topics)}"
                )
            stream = streams[topic]
            if not stream.stamps:
                raise BagImportError(f"{bag.name}: --cameras: topic {topic!r} holds no messages")
            if stream.depth:
                raise BagImportError(
                    f"{topic}: field 'encoding': expected a colour or grey image for a camera, found depth "
                    f"{stream.encoding!r}; hint: leave depth topics out of --cameras"
                )
            chosen.append(stream)
        names = camera_names([s.topic for s in chosen])
        for (topic, name), stream in zip(parsed, chosen):
            stream.name = name or names[topic]
        if len({s.name for s in chosen}) != len(chosen):
            raise BagImportError(f"--cameras: expected unique camera names, found {[s.name for s in chosen]}")
        return chosen

    usable = [s for s in streams.values() if s.stamps]
    for stream in usable:
        if stream.depth:
            notes.append(
                f"skipped depth topic {stream.topic} ({stream.encoding}): clip cameras hold colour/grey images"
            )
    usable = [s for s in usable if not s.depth]
    names = camera_names([s.topic for s in usable])
    rig_names = set(rig_cameras.names) if rig_cameras is not None else set()

    def matches_rig(stream: ImageStream) -> str | None:
        parts = name_parts(stream.topic)
        return next(("_".join(parts[-k:]) for k in range(1, len(parts) + 1) if "_".join(parts[-k:]) in rig_names), None)

    candidates = []
    for stream in sorted(usable, key=lambda s: s.topic):
        rig_name = matches_rig(stream)
        if stream.info_topic is not None or rig_name is not None:
            stream.name = rig_name or names[stream.topic]
            candidates.append(stream)
    chosen, seen = [], {}
    for stream in sorted(candidates, key=lambda s: (s.compressed, s.topic)):  # raw before compressed
        key = stream.info_topic or stream.name
        if key in seen:
            notes.append(f"skipped {stream.topic}: same camera as {seen[key]} (raw images preferred)")
            continue
        seen[key] = stream.topic
        chosen.append(stream)
    chosen.sort(key=lambda s: s.topic)
    without_info = [s.topic for s in usable if s not in chosen and s.info_topic is None]
    if not chosen:
        if not usable:
            raise BagImportError(
                f"{bag.name}: no camera image topics: the image topics hold only depth or no messages "
                f"({describe_topics(image_topics)})"
            )
        example = expected_info_topic(usable[0].topic)
        raise BagImportError(
            f"{bag.name}: no image topic has a sensor_msgs/CameraInfo (expected a sibling camera_info topic such as "
            f"{example}); found image topics without one: {', '.join(without_info)}; hint: pass --rig rig.yaml with "
            f"cameras named {sorted({names[s.topic] for s in usable})} (or --cameras TOPIC=NAME with --rig)"
        )
    for topic in without_info:
        notes.append(f"skipped {topic}: no CameraInfo (name it in --rig or --cameras with --rig to import it)")
    if len({s.name for s in chosen}) != len(chosen):
        names = camera_names([s.topic for s in chosen])
        for stream in chosen:
            stream.name = names[stream.topic]
    return chosen


def _build_rig(
    bag: BagFile,
    chosen: list[ImageStream],
    infos: dict[str, Any],
    tf: TfTree,
    rig_cameras: Rig | None,
    rig_path: str | os.PathLike | None,
    base_frame: str,
    notes: list[str],
) -> tuple[Rig, dict[str, dict[str, str]]]:
    from perception.importers.video import load_camera_yaml

    cameras, report = [], {}
    for stream in chosen:
        name, topic = stream.name, stream.topic
        in_rig = rig_cameras is not None and name in rig_cameras.names
        info = infos.get(stream.info_topic) if stream.info_topic else None
        camera_from_used = np.eye(4)
        if info is not None:
            camera, camera_from_used, intrinsics = camera_from_info(name, stream, info)
        elif in_rig:
            assert rig_path is not None
            try:
                camera = load_camera_yaml(rig_path, stream.width, stream.height, name)
            except ClipError as error:
                raise BagImportError(f"{error}; camera {name!r} comes from {topic}") from None
            intrinsics = f"from {rig_path}"
        else:
            raise BagImportError(
                f"{topic}: no sensor_msgs/CameraInfo for camera {name!r} (expected a sibling topic such as "
                f"{expected_info_topic(topic)}, found none); hint: pass --rig rig.yaml with a camera named {name!r}"
            )
        frame = _realsense_frame(topic) or frame_name(getattr(info, "header", stream.first.header).frame_id)
        frame = frame or stream.frame_id
        try:
            if not frame:
                raise TransformError(f"the images on {topic} have no header.frame_id")
            t_first = min(stream.stamps)
            ego_from_camera = tf.lookup(base_frame, frame, t_first) @ camera_from_used
            moving = tf.moving_edges(base_frame, frame)
            extrinsics = f"tf {base_frame} -> {frame}" + (
                f" (moving links {moving}: /tf at first image)" if moving else ""
            )
        except TransformError as error:
            if not in_rig:
                raise BagImportError(
                    f"{bag.name}: camera {name!r} ({topic}, frame {frame!r}): {error}; hint: publish the missing "
                    f"transform on /tf_static, choose another --base-frame, or give ego_from_camera in --rig rig.yaml"
                ) from None
            assert rig_cameras is not None
            ego_from_camera = rig_cameras[name].ego_from_camera
            extrinsics = f"from {rig_path} (no tf chain {base_frame} -> {frame or '?'})"
        camera.ego_from_camera = ego_from_camera
        camera.name = name
        cameras.append(camera)
        size = f"{stream.width}x{stream.height}"
        report[name] = {"topic": topic, "image": f"{stream.encoding} {size}", "intrinsics": intrinsics}
        report[name]["extrinsics"] = extrinsics
    try:
        return Rig(cameras), report
    except RigError as error:
        raise BagImportError(str(error)) from None


def _group_frames(
    bag: BagFile, streams: dict[str, ImageStream], names: list[str], reference: str, max_skew_ms: float
) -> tuple[list[dict[str, tuple[int, int]]], dict[str, tuple[float, float]], dict[str, int]]:
    """Frames as {camera: (stamp ns, ordinal of the message in its topic)}, per-camera skew stats, drop counts."""
    order = {}
    for name in names:
        stamps = np.asarray(streams[name].stamps, dtype=np.int64)
        index = np.argsort(stamps, kind="stable")
        keep = np.concatenate([[True], np.diff(stamps[index]) > 0])  # a repeated stamp is one image
        order[name] = (stamps[index][keep], index[keep])
    limit = int(round(max_skew_ms * 1e6))
    dropped: dict[str, int] = defaultdict(int)
    closest: dict[str, int] = {}
    frames: list[dict[str, tuple[int, int]]] = []
    worst: list[int] = []
    for t_ref, ordinal in zip(*order[reference]):
        frame = {reference: (int(t_ref), int(ordinal))}
        skew, missing = 0, None
        for name in names:
            if name == reference:
                continue
            stamps, ordinals = order[name]
            j = int(np.searchsorted(stamps, t_ref))
            best = min((k for k in (j - 1, j) if 0 <= k < len(stamps)), key=lambda k: abs(stamps[k] - t_ref))
            dt = abs(int(stamps[best]) - int(t_ref))
            closest[name] = min(closest.get(name, dt), dt)
            if dt > limit:
                missing = missing or name
            frame[name] = (int(stamps[best]), int(ordinals[best]))
            skew = max(skew, dt)
        if missing is not None:
            dropped[f"no {missing} image within {max_skew_ms:g} ms"] += 1
            continue
        if frames and any(frames[-1][n][1] == frame[n][1] for n in names if n != reference):
            dropped["its image of another camera is closer to the neighbouring frame"] += 1
            if skew < worst[-1]:
                frames[-1], worst[-1] = frame, skew
            continue
        frames.append(frame)
        worst.append(skew)
    if not frames:
        nearest = ", ".join(f"{n} {closest[n] / 1e6:.1f} ms" for n in closest) or "none"
        raise BagImportError(
            f"{bag.name}: no frame has every camera within --max-skew-ms {max_skew_ms:g} of the reference camera "
            f"{reference!r} (closest found: {nearest}); hint: raise --max-skew-ms or choose fewer --cameras"
        )
    stats = {}
    for name in names:
        if name != reference:
            skews = np.array([abs(f[name][0] - f[reference][0]) for f in frames]) / 1e6
            stats[name] = (float(np.median(skews)), float(skews.max()))
    return frames, stats, dict(dropped)


def _ego_poses(
    bag: BagFile,
    tf: TfTree,
    odometry: dict[str, list[Any]],
    odom_topic: str | None,
    odom_frame: str,
    base_frame: str,
    frames: list[dict[str, tuple[int, int]]],
    streams: dict[str, ImageStream],
    reference: str,
) -> tuple[np.ndarray, np.ndarray, str]:
    """(times s, world_from_ego (N, 4, 4), a description of the source) of the ego-pose stream near the clip."""
    t_all = [t for frame in frames for t, _ in frame.values()]
    t_lo, t_hi = min(t_all) - 1_000_000_000, max(t_all) + 1_000_000_000
    samples: list[tuple[int, np.ndarray]] = []
    odom_frame = frame_name(odom_frame)
    odometry_topics = [t for t, info in bag.topics.items() if info.msgtype == ODOMETRY]
    if odom_topic is not None and odom_topic not in odometry_topics:
        raise BagImportError(
            f"{bag.name}: --odom-topic {odom_topic!r}: expected a nav_msgs/Odometry topic, found "
            f"{'type ' + bag.topics[odom_topic].msgtype if odom_topic in bag.topics else 'no such topic'}; "
            f"Odometry topics: {odometry_topics or 'none'}"
        )
    use_tf = odom_topic is None and odom_frame in tf and base_frame in tf
    if use_tf:
        try:
            times = tf.sample_times(odom_frame, base_frame)
        except TransformError:
            times = []
        use_tf = bool(times)
    if use_tf:
        samples = [(t, tf.lookup(odom_frame, base_frame, t)) for t in times]
        source = f"/tf chain {odom_frame} -> {base_frame}"
    elif odom_topic is not None or len(odometry_topics) == 1:
        topic = odom_topic or odometry_topics[0]
        for message in odometry[topic]:
            world_from_child = pose_from_msg(message.pose.pose)
            child = frame_name(message.child_frame_id) or base_frame
            if child != base_frame:
                try:
                    world_from_child = world_from_child @ tf.lookup(child, base_frame)
                except TransformError as error:
                    raise BagImportError(
                        f"{topic}: Odometry field 'child_frame_id' is {child!r}, not --base-frame {base_frame!r}, "
                        f"and {error}; hint: pass --base-frame {child}"
                    ) from None
            samples.append((stamp_ns(message), world_from_child))
        source = f"{topic} (nav_msgs/Odometry)"
    else:
        reason = f"several Odometry topics {odometry_topics}: pass --odom-topic" if odometry_topics else "none in bag"
        t_ref = np.array([f[reference][0] for f in frames], dtype=np.float64) / 1e9
        return (
            t_ref,
            np.repeat(np.eye(4)[None], len(t_ref), 0),
            (f"identity (no /tf chain {odom_frame} -> {base_frame}; nav_msgs/Odometry: {reason})"),
        )
    samples.sort(key=lambda item: item[0])
    near = [(t, pose) for t, pose in samples if t_lo <= t <= t_hi] or samples
    times, poses = [], []
    for t, pose in near:
        if not times or t > times[-1]:
            times.append(t)
            poses.append(pose)
    return np.asarray(times, dtype=np.float64) / 1e9, np.stack(poses), f"{len(times)} samples from {source}"


def _write(
    bag: BagFile,
    out: Path,
    rig: Rig,
    streams: dict[str, ImageStream],
    frames: list[dict[str, tuple[int, int]]],
    reference: str,
    pose_times: np.ndarray,
    pose_stream: np.ndarray,
    image_format: str,
    overwrite: bool,
    progress: bool,
) -> Path:
    """The image pass: decode the chosen messages and write the clip (original JPEG/PNG bytes with ``auto``)."""
    from tqdm import tqdm

    from perception.atomic import replace_directory

    wanted = {
        (streams[name].topic, ordinal): (index, name)
        for index, f in enumerate(frames)
        for name, (_, ordinal) in f.items()
    }
    originals = {name for name in rig.names if streams[name].compressed and image_format == "auto"}
    t_ref = np.array([f[reference][0] for f in frames], dtype=np.float64) / 1e9
    fps = float(1.0 / np.median(np.diff(t_ref))) if len(t_ref) > 1 else 10.0
    staging = out.with_name(f".{out.name}.import-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    target = staging / "clip" if originals else out
    writer_format = "png" if image_format == "auto" else image_format
    placeholders = {name: np.zeros((rig[name].height, rig[name].width, 3), np.uint8) for name in originals}
    pending: dict[int, dict[str, tuple[np.ndarray, bytes | None, str | None]]] = defaultdict(dict)
    ordinals: dict[str, int] = defaultdict(int)
    next_index, written = 0, 0
    topics = {streams[name].topic for name in rig.names}
    total = sum(len(streams[name].stamps) for name in rig.names)
    try:
        with ClipWriter(target, rig, fps=fps, image_format=writer_format, overwrite=overwrite) as writer:
            for topic, msgtype, _, message in tqdm(
                bag.messages(topics), total=total, desc=f"writing {out.name}", unit="img", disable=not progress
            ):
                key = (topic, ordinals[topic])
                ordinals[topic] += 1
                if key not in wanted:
                    continue
                index, name = wanted[key]
                image, extension = decode_image(message, msgtype, topic)
                camera = rig[name]
                if image.shape[:2] != (camera.height, camera.width):
                    raise BagImportError(
                        f"{topic}: image at stamp {stamp_ns(message) / 1e9:.6f} s is {image.shape[1]}x"
                        f"{image.shape[0]}, expected {camera.width}x{camera.height} like the topic's first image"
                    )
                original = bytes(message.data) if name in originals else None
                pending[index][name] = (placeholders.get(name, image), original, extension)
                while next_index < len(frames) and len(pending.get(next_index, {})) == len(rig):
                    entry = pending.pop(next_index)
                    frame = frames[next_index]
                    times = {n: frame[n][0] / 1e9 for n in rig.names}
                    world_from_ego = _interpolate(pose_times, pose_stream, float(t_ref[next_index]))
                    writer.add_frame(
                        {n: entry[n][0] for n in rig.names}, float(t_ref[next_index]), world_from_ego, times
                    )
                    for n in originals:
                        folder = staging / "originals" / n
                        folder.mkdir(parents=True, exist_ok=True)
                        (folder / f"{written:06d}{entry[n][2]}").write_bytes(entry[n][1] or b"")
                    next_index += 1
                    written += 1
            if next_index < len(frames):
                missing = sorted(set(rig.names) - set(pending.get(next_index, {})))
                raise BagImportError(
                    f"{bag.name}: frame {next_index} lacks images of {missing} in the image pass "
                    f"(the bag changed while reading?)"
                )
            for t, pose in zip(pose_times, pose_stream):
                writer.add_pose(float(t), pose)
        if originals:
            for name in originals:
                folder = target / "cameras" / name
                shutil.rmtree(folder)
                os.replace(staging / "originals" / name, folder)
            if out.exists() and not overwrite:
                raise BagImportError(f"{out}: already exists; hint: pass --overwrite to replace it")
            replace_directory(target, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def main_import(args: Any, log: Callable[[str], None] = print) -> ImportReport:
    """Run the import from parsed CLI arguments and print its report."""
    report = import_rosbag(
        args.bags,
        args.out,
        cameras=args.cameras,
        rig=args.rig,
        base_frame=args.base_frame,
        odom_frame=args.odom_frame,
        odom_topic=args.odom_topic,
        reference_camera=args.reference_camera,
        max_skew_ms=args.max_skew_ms,
        image_format=args.format,
        max_frames=args.max_frames,
        salvage=args.salvage,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    for line in report.lines():
        log(line)
    return report


__all__ = ["BagError", "BagImportError", "ImportReport", "camera_names", "import_rosbag", "sibling_info"]
