"""A clip with its labels as one Rerun recording (``.rrd``): open it with ``rerun out.rrd``.

Entities (the clip's world frame: right-handed, z up; cameras in OpenCV axes, ``RDF``):

  world                                ViewCoordinates RIGHT_HAND_Z_UP (static)
  world/trajectory                     LineStrips3D through the ego positions of every frame (static)
  world/ego                            Transform3D ``world_from_ego`` at each frame's reference time
  world/ego/boxes/<source>             Boxes3D: centre, half size, yaw; label ``class #track [score]``, class colour
  world/cameras/<camera>               Pinhole (K, resolution; static) under Transform3D ``world_from_camera`` at the
                                       camera's capture time
  world/cameras/<camera>/image         EncodedImage (the clip's JPEG/PNG bytes, or JPEG from its video)
  world/cameras/<camera>/boxes/<source>  Boxes2D (xyxy pixels)
  bev/<source>                         SegmentationImage of the BEV maps (value = channel index + 1, later on top)

``<source>`` is ``ground_truth``, ``autolabel``/``model`` (a ``--labels`` file) or ``deploy_run``. Timelines:
``frame`` (clip frame index) and ``time`` (the clip clock: a timestamp for Unix times, else a duration).
Rerun's pinhole has no lens distortion: 3D boxes drawn in a radtan or fisheye camera's view ignore it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from perception.atomic import atomic_write_bytes
from perception.clip import DriveClip
from perception.export.scene import LabelSource, box_label, class_rgb, scene_frames, yaw_quaternion_xyzw
from perception.labels import Boxes2D

EPOCH_THRESHOLD_S = 1e8  # clip times above this are Unix seconds (1973+), below it a clock starting near 0


def _set_time(rec, index: int, t: float) -> None:
    rec.set_time("frame", sequence=int(index))
    if t > EPOCH_THRESHOLD_S:
        rec.set_time("time", timestamp=float(t))
    else:
        rec.set_time("time", duration=float(t))


def _transform(rr, a_from_b: np.ndarray):
    return rr.Transform3D(translation=a_from_b[:3, 3], mat3x3=a_from_b[:3, :3])


def export_rerun(
    clip: DriveClip,
    out: str | os.PathLike,
    sources: Sequence[LabelSource],
    *,
    max_frames: int | None = None,
    images: bool = True,
    jpeg_quality: int = 85,
    progress: bool = True,
) -> dict:
    """Write ``out`` (.rrd) atomically; return counts (frames, cameras, boxes per source)."""
    import rerun as rr
    from tqdm import tqdm

    rec = rr.RecordingStream("fleetvision", recording_id=f"{clip.name}")
    rec.set_log_time_enabled(False)
    memory = rec.memory_recording()
    rec.send_recording_name(clip.name)
    rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
    stop = clip.num_frames if max_frames is None else min(clip.num_frames, int(max_frames))
    positions = clip.world_from_ego[:stop, :3, 3]
    rec.log("world/trajectory", rr.LineStrips3D([positions], colors=[[255, 255, 255]], radii=0.05), static=True)
    for camera in clip.rig:
        rec.log(
            f"world/cameras/{camera.name}",
            rr.Pinhole(
                image_from_camera=camera.K,
                resolution=[camera.width, camera.height],
                camera_xyz=rr.ViewCoordinates.RDF,
                image_plane_distance=1.0,
            ),
            static=True,
        )
    for source in sources:
        bev = source.labels.bev
        if bev is not None:
            from perception.viz import MAP_COLORS

            infos = [rr.AnnotationInfo(id=0, label="none", color=[24, 24, 24])]
            for c, channel in enumerate(bev.channels):
                b, g, r = MAP_COLORS.get(channel, (128, 128, 128))
                infos.append(rr.AnnotationInfo(id=c + 1, label=channel, color=[r, g, b]))
            rec.log(f"bev/{source.name}", rr.AnnotationContext(infos), static=True)
    with_2d = {s.name: {c for f in s.labels.frames for c in f.boxes2d} for s in sources}
    empty_2d = Boxes2D.empty()
    counts = {source.name: 0 for source in sources}
    for frame in tqdm(
        scene_frames(clip, max_frames=stop, images=images, jpeg_quality=jpeg_quality),
        total=stop,
        desc=f"rerun {clip.name}",
        unit="frame",
        disable=not progress,
    ):
        _set_time(rec, frame.index, frame.t)
        rec.log("world/ego", _transform(rr, frame.world_from_ego))
        for source in sources:
            labels = source.labels.frames[frame.index]
            boxes = labels.boxes3d
            counts[source.name] += len(boxes)
            rec.log(
                f"world/ego/boxes/{source.name}",
                rr.Boxes3D(
                    centers=boxes.center,
                    half_sizes=boxes.size / 2,
                    quaternions=[rr.Quaternion(xyzw=q) for q in yaw_quaternion_xyzw(boxes.yaw)],
                    labels=[box_label(boxes, i, source.labels.classes, source.predicted) for i in range(len(boxes))],
                    colors=[class_rgb(c) for c in boxes.class_id],
                    class_ids=boxes.class_id,
                ),
            )
            bev = source.labels.bev
            if bev is not None and frame.index < len(bev.data):
                mask = np.zeros(bev.grid.shape, np.uint8)
                for c in range(len(bev.channels)):
                    mask[bev.data[frame.index, c] > 0] = c + 1
                rec.log(f"bev/{source.name}", rr.SegmentationImage(mask))
        for view in frame.cameras.values():
            _set_time(rec, frame.index, view.t)
            path = f"world/cameras/{view.name}"
            rec.log(path, _transform(rr, view.world_from_camera))
            if view.image is not None:
                rec.log(f"{path}/image", rr.EncodedImage(contents=view.image, media_type=view.media_type))
            for source in sources:
                if view.name not in with_2d[source.name]:
                    continue
                boxes2d = source.labels.frames[frame.index].boxes2d.get(view.name, empty_2d)  # empty clears the last
                rec.log(
                    f"{path}/boxes/{source.name}",
                    rr.Boxes2D(
                        array=boxes2d.xyxy,
                        array_format=rr.Box2DFormat.XYXY,
                        labels=[
                            box_label(boxes2d, i, source.labels.classes, source.predicted) for i in range(len(boxes2d))
                        ],
                        colors=[class_rgb(c) for c in boxes2d.class_id],
                        class_ids=boxes2d.class_id,
                    ),
                )
    rec.flush()
    atomic_write_bytes(Path(out), memory.drain_as_bytes())
    return {"frames": stop, "cameras": len(clip.rig), "boxes3d": counts}


__all__ = ["export_rerun"]
