"""Labelling one clip: the teacher on streamed frame batches, then tracking + offline refinement (2D per camera via
``autolabel.offline``, or 3D in the world frame via ``autolabel.tracking3d``), as ``ClipLabels``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np

from autolabel.jobconfig import TeacherInfo
from autolabel.multicam import CrossCameraConfig, associate_cameras, lift_tracks, tracks_to_boxes3d
from autolabel.offline import OfflineLabelConfig, label_video_detections
from autolabel.sources import predict_in_flight, prefetch_batches
from autolabel.tracking3d import Tracker3DConfig, project_boxes_to_cameras, track_and_refine_3d
from perception.clip import ClipError, DriveClip
from perception.labels import DRIVING_CLASSES, Boxes2D, ClipLabels, FrameLabels

__all__ = ["ClipLabeler"]


class ClipLabeler:
    """Labels one ``DriveClip``: teacher on streamed batches, then tracking + offline refinement.

    2D teachers: each camera is labelled on its own (single-camera chain of ``autolabel.offline``), then the tracks
    are lifted to the ground plane with the rig geometry and associated across cameras (``autolabel.multicam``): one
    id per object over all cameras, and a 3D box per track where the lifted track is consistent. With
    ``multicam.enabled`` False ids are only unique per camera (one object seen by two cameras gets two ids).
    3D teachers (fleetvision BEV checkpoints): one 3D box set per frame, tracked in the world frame
    (``autolabel.tracking3d``), projected into each camera as 2D boxes with the same track ids.
    """

    def __init__(
        self,
        *,
        teacher: Any,
        teacher_info: TeacherInfo,
        classes: Sequence[str] = DRIVING_CLASSES,
        refine: OfflineLabelConfig | None = None,
        tracking3d: Tracker3DConfig | None = None,
        multicam: CrossCameraConfig | None = None,
        batch_size: int = 8,
        queue_frames: int = 16,
        window_frames: int = 600,
        window_overlap: int = 60,
        frame_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.teacher = teacher
        self.teacher_info = teacher_info
        self.classes = list(classes)
        names = list(getattr(teacher, "class_names", []))
        missing = [name for name in names if name not in self.classes]
        if missing:  # a box of a class outside the list would have no output class id
            raise ValueError(f"ClipLabeler: teacher classes {missing} are not in classes {self.classes}")
        self.class_lookup = np.array([self.classes.index(n) for n in names], dtype=np.int64)
        self.refine = refine or OfflineLabelConfig()
        self.tracking3d = tracking3d or Tracker3DConfig()
        self.multicam = multicam or CrossCameraConfig()
        self.batch_size = batch_size
        self.queue_frames = queue_frames
        self.window_frames = window_frames
        self.window_overlap = window_overlap
        self.frame_progress = frame_progress or (lambda n: None)

    def _map(self, detections: Boxes2D, frame: int, score_floor: float = 0.0) -> Boxes2D:
        """Output class ids, frame index, and boxes below ``score_floor`` dropped (memory grows with frames x boxes)."""
        detections = detections[detections.score >= score_floor]
        class_id = self.class_lookup[detections.class_id] if len(detections) else detections.class_id
        return detections.with_fields(class_id=class_id, frame=np.full(len(detections), frame, np.int64))

    def _camera_stream(
        self, clip: DriveClip, camera: str, score_floor: float
    ) -> Iterator[tuple[int, np.ndarray, Boxes2D]]:
        """(frame index, BGR image, teacher detections) in order; the teacher runs on batches of decoded frames."""
        batches = prefetch_batches(clip, self.batch_size, queue_frames=self.queue_frames, cameras=[camera])
        in_flight = int(getattr(self.teacher, "parallel_batches", 1))
        for batch, images, outputs in predict_in_flight(
            self.teacher.predict_batch, batches, lambda frame: frame.images[camera], in_flight=in_flight
        ):
            self.frame_progress(len(batch))
            for frame, image, detections in zip(batch, images, outputs):
                yield frame.index, image, self._map(detections, frame.index, score_floor)

    def label_camera_2d(self, clip: DriveClip, camera: str, *, defer: bool = False):
        """Teacher + offline chain on one camera: per-frame tracks (ids unique in the camera) and uncertainty (F,)
        (with ``defer``: a function returning them, called after the frames were consumed).

        Three stages overlap: decoding (thread, ``prefetch_batches``), the teacher (this thread), and the offline
        chain (``autolabel.offline``; per-window threads fed through bounded queues: camera motion and appearance
        while frames stream, tracking and refinement when a window's last frame has passed). Long videos are cut
        into overlapping windows (``window_frames``, ``window_overlap``) with ids stitched, so memory is bounded.
        """
        from autolabel.windows import StreamEndedEarly, run_windowed_chain

        config = self.refine
        # no stage of the chain reads boxes under the tracker's low score or the rescue pass's floor: drop them early
        score_floor = min(config.low_score, config.extend_min_score)
        uses_frames = bool(config.camera_motion or config.appearance)
        frame_rate = 1.0 / clip.frame_period_s  # the chain's durations are scaled to the video's rate
        chain = partial(label_video_detections, class_names=self.classes, frame_rate=frame_rate)
        try:
            return run_windowed_chain(
                chain, self._camera_stream(clip, camera, score_floor), clip.num_frames, config,
                window=self.window_frames, overlap=self.window_overlap, uses_frames=uses_frames,
                queue_frames=self.queue_frames, defer=defer,
            )  # fmt: skip
        except StreamEndedEarly as error:
            raise ClipError(f"{clip.sources[camera]}: {error}") from error

    def label_2d_deferred(self, clip: DriveClip) -> Callable[[], ClipLabels]:
        """Stream every camera through the teacher now; the returned function finishes the offline chains and
        assembles the ClipLabels (ids associated across cameras, see ``_assemble_2d``)."""
        finishers = [(camera, self.label_camera_2d(clip, camera, defer=True)) for camera in clip.rig.names]
        return lambda: self._assemble_2d(clip, finishers)

    def _assemble_2d(self, clip: DriveClip, finishers: list[tuple[str, Callable]]) -> ClipLabels:
        per_camera: dict[str, list[Boxes2D]] = {}
        uncertainty = np.zeros(clip.num_frames)
        for camera, finish in finishers:
            per_frame, camera_uncertainty = finish()
            image_size = (clip.rig[camera].width, clip.rig[camera].height)
            # smoothing may push a box past the border: clip to the image, drop what is left under a pixel
            per_camera[camera] = [
                tracks[np.argsort(tracks.track_id, kind="stable")].with_fields(image_size=image_size).clipped(1.0)
                for tracks in per_frame
            ]
            per_frame.clear()  # the clipped copies live on; free the chain's output before the next camera finishes
            uncertainty = np.maximum(uncertainty, camera_uncertainty)
        boxes3d: list | None = None
        if self.multicam.enabled:
            lifted = [
                track for camera in per_camera for track in lift_tracks(clip, camera, per_camera[camera], self.multicam)
            ]
            global_ids = associate_cameras(lifted, self.multicam, classes=self.classes, camera_order=list(per_camera))
            if self.multicam.boxes3d:
                boxes3d = tracks_to_boxes3d(lifted, global_ids, clip, self.classes, self.multicam)
        else:  # unique ids across cameras, in order of first appearance per camera
            global_ids, next_id = {}, 1
            for camera, per_frame in per_camera.items():
                unique = np.unique(np.concatenate([d.track_id for d in per_frame] + [np.zeros(0, np.int64)]))
                for t in unique[unique >= 0]:
                    global_ids[(camera, int(t))] = next_id
                    next_id += 1
        frames = [FrameLabels() for _ in range(clip.num_frames)]
        for camera, per_frame in per_camera.items():
            for index, tracks in enumerate(per_frame):
                frames[index].boxes2d[camera] = Boxes2D(
                    xyxy=tracks.xyxy,
                    class_id=tracks.class_id,
                    score=tracks.score,
                    track_id=np.array([global_ids.get((camera, int(t)), -1) for t in tracks.track_id], dtype=np.int64),
                    image_size=tracks.image_size,
                )
        for index, frame in enumerate(frames):
            frame.uncertainty = float(uncertainty[index])
            if boxes3d is not None:
                frame.boxes3d = boxes3d[index]
        return ClipLabels(self.classes, frames, {})

    # ------------------------------------------------------------------ 3D
    def label_3d(self, clip: DriveClip) -> ClipLabels:
        """Teacher over the clip frame by frame (stateful), world-frame tracking and refinement, 2D projections."""
        self.teacher.reset()
        batches = prefetch_batches(clip, self.batch_size, queue_frames=self.queue_frames)
        frames = (frame for batch in batches for frame in batch)
        per_frame = self.teacher.predict_clip(clip, frames, progress=self.frame_progress)
        per_frame = [
            dataclasses.replace(boxes, class_id=self.class_lookup[boxes.class_id]) if len(boxes) else boxes
            for boxes in per_frame
        ]
        if len(per_frame) != clip.num_frames:
            raise ClipError(f"{clip.path}: decoded {len(per_frame)} frames, expected {clip.num_frames}")
        tracked, frame_uncertainty = track_and_refine_3d(
            per_frame, clip.world_from_ego, clip.timestamps, classes=self.classes, config=self.tracking3d
        )
        frames = []
        for index, boxes in enumerate(tracked):
            boxes2d = project_boxes_to_cameras(boxes, clip, index)
            frames.append(FrameLabels(boxes, boxes2d, float(frame_uncertainty[index])))
        return ClipLabels(self.classes, frames, {})

    def label_deferred(self, clip: DriveClip) -> Callable[[], ClipLabels]:
        """Run the teacher over the clip now; the returned function finishes tracking/refinement (2D chains' last
        windows) and returns the ClipLabels, so a job can stream the next clip meanwhile."""
        if self.teacher_info.predicts_3d and getattr(self.teacher, "supports_clip", lambda _: True)(clip):
            labels = self.label_3d(clip)
            return lambda: labels
        if getattr(self.teacher, "predicts_2d", True):
            return self.label_2d_deferred(clip)
        raise ClipError(
            f"{clip.path}: teacher {self.teacher_info.name} predicts 3D boxes for cameras "
            f"{getattr(self.teacher, 'cameras', '?')} only, and the clip has cameras {clip.rig.names}"
        )
