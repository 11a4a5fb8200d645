"""A clip with its labels as an MCAP file of Foxglove schemas: open it in Foxglove beside the original robot log.

Topics (``<prefix>`` is ``/fleetvision`` unless ``topic_prefix`` says otherwise; message times are the clip's
times, which for an imported robot log are the recorded ``header.stamp`` values, so both files share a timeline):

  /tf                                  FrameTransforms: ``world_frame -> base_frame`` (``world_from_ego``) at every
                                       frame's reference time and every capture time, ``base_frame -> <camera>``
                                       (``ego_from_camera``, optical axes) with each frame
  <prefix>/<camera>/image/compressed   CompressedImage (JPEG/PNG) at the capture time, ``frame_id`` the camera
  <prefix>/<camera>/calibration        CameraCalibration: K, D (plumb_bob / rational_polynomial / kannala_brandt),
                                       R = I, P = [K | 0]
  <prefix>/<camera>/annotations/<source>  ImageAnnotations: 2D boxes (line loops) and their labels
  <prefix>/boxes/<source>              SceneUpdate: one cube per 3D box in ``base_frame`` at the reference time,
                                       with a ``class #track [score]`` text; earlier boxes are deleted
  <prefix>/ego_path                    SceneUpdate: the ego trajectory as a line strip in ``world_frame``
  <prefix>/bev/<source>                Grid: the BEV maps (one uint8 field per channel) in ``base_frame``

Camera frame ids are ``<camera_frame_prefix><camera>`` so they do not collide with the original log's frames.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from perception.atomic import atomic_write_bytes
from perception.clip import DriveClip
from perception.export.scene import LabelSource, box_label, class_rgb, scene_frames
from perception.geometry import matrix_to_quat, yaw_matrix
from perception.labels import Boxes2D

FOXGLOVE_DISTORTION = {("radtan", 4): "plumb_bob", ("radtan", 5): "plumb_bob", ("radtan", 8): "rational_polynomial"}


def _ns(t: float) -> int:
    return max(int(round(t * 1e9)), 0)


def export_foxglove(
    clip: DriveClip,
    out: str | os.PathLike,
    sources: Sequence[LabelSource],
    *,
    max_frames: int | None = None,
    images: bool = True,
    jpeg_quality: int = 85,
    topic_prefix: str = "/fleetvision",
    world_frame: str = "odom",
    base_frame: str = "base_link",
    camera_frame_prefix: str = "fleetvision/",
    progress: bool = True,
) -> dict:
    """Write ``out`` (.mcap) atomically; return counts (frames, messages per topic)."""
    import foxglove
    from foxglove import channels as ch
    from foxglove import messages as fm
    from tqdm import tqdm

    def timestamp(t: float):
        ns = _ns(t)
        return fm.Timestamp(sec=ns // 1_000_000_000, nsec=ns % 1_000_000_000)

    def vector(v) -> object:
        return fm.Vector3(x=float(v[0]), y=float(v[1]), z=float(v[2]))

    def quaternion(rotation: np.ndarray) -> object:
        w, x, y, z = matrix_to_quat(rotation)
        return fm.Quaternion(x=float(x), y=float(y), z=float(z), w=float(w))

    def color(rgb: tuple[int, int, int], alpha: float) -> object:
        return fm.Color(r=rgb[0] / 255, g=rgb[1] / 255, b=rgb[2] / 255, a=alpha)

    def frame_transform(t: float, parent: str, child: str, parent_from_child: np.ndarray) -> object:
        return fm.FrameTransform(
            timestamp=timestamp(t),
            parent_frame_id=parent,
            child_frame_id=child,
            translation=vector(parent_from_child[:3, 3]),
            rotation=quaternion(parent_from_child[:3, :3]),
        )

    prefix = "/" + topic_prefix.strip("/") if topic_prefix.strip("/") else ""
    camera_frames = {camera.name: f"{camera_frame_prefix}{camera.name}" for camera in clip.rig}
    buffer = io.BytesIO()
    context = foxglove.Context()
    writer = foxglove.open_mcap(buffer, context=context)
    counts: dict[str, int] = {}

    def channel(kind, topic: str):
        counts.setdefault(topic, 0)
        return kind(topic, context=context)

    tf = channel(ch.FrameTransformsChannel, "/tf")
    image_topics = {n: channel(ch.CompressedImageChannel, f"{prefix}/{n}/image/compressed") for n in clip.rig.names}
    calibration_topics = {n: channel(ch.CameraCalibrationChannel, f"{prefix}/{n}/calibration") for n in clip.rig.names}
    annotation_topics = {
        (n, s.name): channel(ch.ImageAnnotationsChannel, f"{prefix}/{n}/annotations/{s.name}")
        for n in clip.rig.names
        for s in sources
    }
    box_topics = {s.name: channel(ch.SceneUpdateChannel, f"{prefix}/boxes/{s.name}") for s in sources}
    bev_topics = {
        s.name: channel(ch.GridChannel, f"{prefix}/bev/{s.name}") for s in sources if s.labels.bev is not None
    }
    path_topic = channel(ch.SceneUpdateChannel, f"{prefix}/ego_path")

    def log(chan, message, t: float) -> None:
        chan.log(message, log_time=_ns(t))
        counts[chan.topic()] += 1

    with_2d = {s.name: {c for f in s.labels.frames for c in f.boxes2d} for s in sources}
    empty_2d = Boxes2D.empty()
    calibrations = {}
    for camera in clip.rig:
        model = "plumb_bob"
        coefficients = [0.0] * 5
        if camera.distortion_model == "radtan":
            model = FOXGLOVE_DISTORTION[("radtan", len(camera.distortion))]
            coefficients = [*camera.distortion.tolist(), *[0.0] * (5 - len(camera.distortion))]
        elif camera.distortion_model == "fisheye":
            model, coefficients = "kannala_brandt", camera.distortion.tolist()
        P = np.concatenate([camera.K, np.zeros((3, 1))], axis=1)
        calibrations[camera.name] = dict(
            frame_id=camera_frames[camera.name],
            width=camera.width,
            height=camera.height,
            distortion_model=model,
            D=[float(v) for v in coefficients],
            K=camera.K.reshape(-1).tolist(),
            R=np.eye(3).reshape(-1).tolist(),
            P=P.reshape(-1).tolist(),
        )

    stop = clip.num_frames if max_frames is None else min(clip.num_frames, int(max_frames))
    points = [fm.Point3(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in clip.world_from_ego[:stop, :3, 3]]
    line = fm.LinePrimitive(
        type=fm.LinePrimitiveLineType.LineStrip, thickness=0.1, points=points, color=color((255, 255, 255), 1.0)
    )
    t_first = float(min(clip.timestamps[0], *[clip.camera_timestamps[n][0] for n in clip.rig.names]))
    path_entity = fm.SceneEntity(timestamp=timestamp(t_first), frame_id=world_frame, id="ego_path", lines=[line])
    log(path_topic, fm.SceneUpdate(entities=[path_entity]), t_first)
    for frame in tqdm(
        scene_frames(clip, max_frames=stop, images=images, jpeg_quality=jpeg_quality),
        total=stop,
        desc=f"foxglove {clip.name}",
        unit="frame",
        disable=not progress,
    ):
        transforms = [frame_transform(frame.t, world_frame, base_frame, frame.world_from_ego)]
        transforms += [frame_transform(frame.t, base_frame, camera_frames[c.name], c.ego_from_camera) for c in clip.rig]
        log(tf, fm.FrameTransforms(transforms=transforms), frame.t)
        for source in sources:
            boxes = source.labels.frames[frame.index].boxes3d
            entities = []
            for i in range(len(boxes)):
                rgb = class_rgb(int(boxes.class_id[i]))
                pose = fm.Pose(
                    position=vector(boxes.center[i]), orientation=quaternion(yaw_matrix(float(boxes.yaw[i])))
                )
                top = boxes.center[i] + [0.0, 0.0, boxes.size[i][2] / 2 + 0.3]
                text_pose = fm.Pose(position=vector(top), orientation=fm.Quaternion(x=0, y=0, z=0, w=1))
                alpha = 0.35 if source.predicted else 0.5
                cube = fm.CubePrimitive(pose=pose, size=vector(boxes.size[i]), color=color(rgb, alpha))
                text = fm.TextPrimitive(
                    pose=text_pose,
                    billboard=True,
                    font_size=14.0,
                    scale_invariant=True,
                    color=color(rgb, 1.0),
                    text=box_label(boxes, i, source.labels.classes, source.predicted),
                )
                metadata = [
                    fm.KeyValuePair(key="track_id", value=str(int(boxes.track_id[i]))),
                    fm.KeyValuePair(key="score", value=f"{float(boxes.score[i]):.3f}"),
                ]
                entities.append(
                    fm.SceneEntity(
                        timestamp=timestamp(frame.t),
                        frame_id=base_frame,
                        id=f"{source.name}/{i}",
                        cubes=[cube],
                        texts=[text],
                        metadata=metadata,
                    )
                )
            deletion = fm.SceneEntityDeletion(timestamp=timestamp(frame.t), type=fm.SceneEntityDeletionType.All)
            log(box_topics[source.name], fm.SceneUpdate(deletions=[deletion], entities=entities), frame.t)
            bev = source.labels.bev
            if bev is not None and frame.index < len(bev.data):
                log(bev_topics[source.name], _grid(fm, bev, frame.index, base_frame, timestamp(frame.t)), frame.t)
        for view in frame.cameras.values():
            ego_at_capture = frame_transform(view.t, world_frame, base_frame, clip.pose_at(view.t))
            log(tf, fm.FrameTransforms(transforms=[ego_at_capture]), view.t)
            stamp = timestamp(view.t)
            if view.image is not None:
                fmt = "png" if view.media_type == "image/png" else "jpeg"
                log(
                    image_topics[view.name],
                    fm.CompressedImage(timestamp=stamp, frame_id=camera_frames[view.name], data=view.image, format=fmt),
                    view.t,
                )
            log(calibration_topics[view.name], fm.CameraCalibration(timestamp=stamp, **calibrations[view.name]), view.t)
            for source in sources:
                if view.name not in with_2d[source.name]:
                    continue
                boxes2d = source.labels.frames[frame.index].boxes2d.get(view.name, empty_2d)  # empty clears the last
                outlines, texts = [], []
                for i, (x1, y1, x2, y2) in enumerate(boxes2d.xyxy.tolist()):
                    rgb = class_rgb(int(boxes2d.class_id[i]))
                    corners = [
                        fm.Point2(x=x1, y=y1),
                        fm.Point2(x=x2, y=y1),
                        fm.Point2(x=x2, y=y2),
                        fm.Point2(x=x1, y=y2),
                    ]
                    outlines.append(
                        fm.PointsAnnotation(
                            timestamp=stamp,
                            type=fm.PointsAnnotationType.LineLoop,
                            points=corners,
                            outline_color=color(rgb, 1.0),
                            thickness=2.0,
                        )
                    )
                    texts.append(
                        fm.TextAnnotation(
                            timestamp=stamp,
                            position=fm.Point2(x=x1, y=max(y1 - 4.0, 0.0)),
                            text=box_label(boxes2d, i, source.labels.classes, source.predicted),
                            font_size=12.0,
                            text_color=color(rgb, 1.0),
                            background_color=color((0, 0, 0), 0.6),
                        )
                    )
                log(
                    annotation_topics[(view.name, source.name)],
                    fm.ImageAnnotations(points=outlines, texts=texts),
                    view.t,
                )
    writer.close()
    atomic_write_bytes(Path(out), buffer.getvalue())
    return {"frames": stop, "cameras": len(clip.rig), "messages": counts}


def _grid(fm, bev, index: int, base_frame: str, stamp) -> object:
    """One frame's BEV rasters as a Foxglove Grid in the ego frame.

    Our raster: row 0 = forward edge (x_max), column 0 = left edge (y_max). Foxglove's grid: columns along +x and
    rows along +y of its pose; so the data is flipped on both axes and transposed, and the pose sits at
    (x_min, y_min) with the ego frame's orientation.
    """
    grid = bev.grid
    data = np.ascontiguousarray(np.transpose(bev.data[index][:, ::-1, ::-1], (2, 1, 0)))  # (y cells, x cells, C)
    channels = len(bev.channels)
    fields = [
        fm.PackedElementField(name=name, offset=c, type=fm.PackedElementFieldNumericType.Uint8)
        for c, name in enumerate(bev.channels)
    ]
    return fm.Grid(
        timestamp=stamp,
        frame_id=base_frame,
        pose=fm.Pose(
            position=fm.Vector3(x=float(grid.x_min), y=float(grid.y_min), z=0.0),
            orientation=fm.Quaternion(x=0, y=0, z=0, w=1),
        ),
        column_count=int(data.shape[1]),
        cell_size=fm.Vector2(x=float(grid.resolution), y=float(grid.resolution)),
        row_stride=int(data.shape[1] * channels),
        cell_stride=channels,
        fields=fields,
        data=data.tobytes(),
    )


__all__ = ["export_foxglove"]
