"""Offline auto-labelling of one video's detections: track, rescue, link, decide, fill, smooth, score uncertainty."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from autolabel.decisions import decide_tracks, observed_fraction
from autolabel.refine import (
    EMBEDDING_DIM,
    colour_histogram_embedding,
    extend_tracklets,
    hold_stationary,
    interpolate_linear,
    link_tracklets,
    rts_smooth_tracklet,
    unify_rigid_size,
)  # fmt: skip
from autolabel.refine.bidirectional import backward_tracklets, reconcile_with_backward
from autolabel.tracking import ByteTracker, CameraMotionEstimator, Tracklet, run_tracker, tracklets_to_detections
from autolabel.uncertainty import box_uncertainty, frame_uncertainty, temporal_inconsistency
from perception.labels import Boxes2D

__all__ = ["OfflineLabelConfig", "OfflineResult", "label_video_detections", "precompute_frame_cues"]


# frame-valued settings scaled with the video's frame rate (durations), and per-frame rates scaled inversely
FRAME_COUNTS = (
    "max_lost_frames",
    "direction_delta",
    "extend_max_miss",
    "link_max_gap",
    "link_max_overlap",
    "max_fill_gap",
)
PER_FRAME_RATES = ("link_gate_per_frame", "link_max_speed")


@dataclass(frozen=True)
class OfflineLabelConfig:
    """Every knob of the offline chain (plain constructor args; presets in configs/autolabel/*.yaml).

    Durations are frame counts. With ``reference_frame_rate`` set they are read as frames of a video at that rate
    and ``at_frame_rate`` scales them to the video's (``FRAME_COUNTS``: 30 frames at 25 fps are 12 at 10 fps) and the
    per-frame rates inversely (``PER_FRAME_RATES``), as ByteTrack scales its track buffer; None (the default, chosen
    by leave-one-source-out in ``benchmarks/bench_mot15_loso.py``, where scaling to the 10 fps synthetic source
    scored 0.2-0.4 points lower) uses them as given. Counts of boxes (``min_hits``, ``min_length``) are not scaled.
    Defaults: ``configs/autolabel/default.yaml``, chosen by that benchmark's rule (see benchmarks/RESULTS.md).

    Args:
        reference_frame_rate: frame rate (Hz) the frame counts are given for, scaled to the video's; None: as given
        high_score: detector score of a confident box (the tracker's first association stage)
        low_score: boxes below this score are ignored (those between low and high feed the second stage)
        new_track_score: a box starts a new track only from this score on
        first_match_iou: minimum IoU of a confident box to a predicted track box (stage 1)
        second_match_iou: minimum IoU of a low-score box to a still unmatched track (stage 2)
        tentative_match_iou: minimum IoU to a not yet confirmed track
        max_lost_frames: frames a track survives without a box before it ends
        min_hits: boxes a track needs before it is confirmed
        tracker_appearance_weight: weight of the colour-histogram distance in the stage-1 cost (0: off)
        direction_weight: weight of the heading inconsistency in the stage-1 cost (0: off)
        direction_delta: frames over which a track's heading is measured
        recovery_iou: IoU to retry unmatched tracks from their last observed box (stage 3)
        camera_motion: compensate camera motion (global image warp) before matching
        backward_pass: cut forward tracklets where a time-reversed tracker disagrees
        extend: rescue unused boxes at tracklet ends
        extend_min_score: minimum score of a rescued box
        extend_min_iou: minimum IoU of a rescued box to the tracklet's extrapolated box
        extend_max_miss: frames without a box before the rescue stops
        link: link tracklets across occlusions (gaps in frames)
        appearance: compute colour-histogram embeddings (for linking and the tracker's appearance term)
        link_max_gap: longest gap (frames) two tracklets may be linked across
        link_gate_base: motion gate of linking in box heights
        link_gate_per_frame: growth of the motion gate per frame of gap (box heights)
        link_max_overlap: frames two linked tracklets may overlap (the later one's boxes there are dropped)
        link_max_speed: fastest plausible motion across a gap (box heights per frame)
        link_appearance_gate: largest appearance distance for a link
        link_motion_weight: weight of motion in the link cost
        link_appearance_weight: weight of appearance in the link cost
        link_max_cost: links above this cost are not made
        min_length: tracks shorter than this (boxes) are dropped
        min_track_score: tracks with a lower track score are dropped
        decision_low_score: a box below this score counts as weak in the track decision
        max_low_fraction: tracks with more than this fraction of weak boxes are dropped
        box_min_score: observed boxes under this score are replaced by the interpolated box inside a track and
            dropped at its ends (0: all kept)
        min_observed_fraction: tracks whose output boxes would be less than this share detections (the rest filled
            in gaps of at most max_fill_gap frames; after box_min_score) are dropped (0: off); see
            autolabel.decisions.observed_fraction
        smoothing: output boxes: linear (observed + linear gap fill), rts (RTS-smoothed) or none
        output_score: the score written for each output box: box (an observed box the geometric mean of its detector
            score and its track's score, a filled box the track's score) or track (every box its track's score: the
            labels then hold what min_track_score decides on, and 'autolabel calibrate --track-score' chooses that
            threshold on a labelled split labelled this way with min_track_score 0)
        max_fill_gap: longest gap (frames) filled inside a track
        process_noise: RTS smoother process noise (box heights)
        measurement_noise: RTS smoother measurement noise (box heights)
        rigid_classes: classes whose box scale is unified per track (vehicles)
        rigid_max_scale_change: scale spread (10-90%) under which a rigid track gets one box size
        stationary_max_motion: centre spread (box heights) under which a track is held still
    """

    reference_frame_rate: float | None = None

    # online tracker (scores are detector scores in [0, 1]; IoU thresholds for matching)
    high_score: float = 0.5
    low_score: float = 0.1
    new_track_score: float = 0.7
    first_match_iou: float = 0.2
    second_match_iou: float = 0.5
    tentative_match_iou: float = 0.3
    max_lost_frames: int = 30
    min_hits: int = 2
    tracker_appearance_weight: float = 0.0
    direction_weight: float = 0.0
    direction_delta: int = 3
    recovery_iou: float = 0.3
    camera_motion: bool = True
    # backward pass: cut forward tracklets where the reversed-time tracker disagrees
    backward_pass: bool = True
    # rescue at tracklet ends with unused detections
    extend: bool = True
    extend_min_score: float = 0.1
    extend_min_iou: float = 0.5
    extend_max_miss: int = 2
    # linking across occlusions (gaps in frames; motion gate in box heights)
    link: bool = True
    appearance: bool = True
    link_max_gap: int = 50
    link_gate_base: float = 0.25
    link_gate_per_frame: float = 0.01
    link_max_overlap: int = 3
    link_max_speed: float = 0.2
    link_appearance_gate: float = 0.2
    link_motion_weight: float = 0.5
    link_appearance_weight: float = 0.5
    link_max_cost: float = 0.7
    # track decisions
    min_length: int = 3
    min_track_score: float = 0.3
    decision_low_score: float = 0.5
    max_low_fraction: float = 0.8
    # observed boxes under this detector score are not output as seen: inside a track the interpolated box replaces
    # them (a partly hidden object gets a shrunken, low-score box; its confident neighbours give the whole object),
    # at a track's ends they are dropped (0: every observed box is kept)
    box_min_score: float = 0.4
    # a detector's flickering false positive (a clutter site seen in a third of the frames) becomes, after linking
    # and gap filling, a whole track of mostly invented boxes: tracks under this observed share are dropped
    min_observed_fraction: float = 0.5
    # output boxes: "linear" (observed boxes + linear gap fill), "rts" (RTS-smoothed, gaps bridged) or "none";
    # the RTS trajectory is always computed as the reference for temporal-inconsistency uncertainty
    smoothing: Literal["linear", "rts", "none"] = "linear"
    output_score: Literal["box", "track"] = "box"
    max_fill_gap: int = 30
    process_noise: float = 0.02
    measurement_noise: float = 0.05
    # shape priors (class names, resolved against the ``class_names`` of ``label_video_detections``)
    rigid_classes: tuple[str, ...] = ("car", "truck", "bus")
    rigid_max_scale_change: float = 0.15
    stationary_max_motion: float = 0.03

    def __post_init__(self) -> None:
        if self.smoothing not in ("rts", "linear", "none"):
            raise ValueError(
                f"OfflineLabelConfig.smoothing: expected 'rts', 'linear' or 'none', found {self.smoothing!r}"
            )
        if self.output_score not in ("box", "track"):
            raise ValueError(f"OfflineLabelConfig.output_score: expected 'box' or 'track', found {self.output_score!r}")
        object.__setattr__(self, "rigid_classes", tuple(self.rigid_classes))

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> OfflineLabelConfig:
        """Load a preset (a flat mapping of field: value); unknown keys are an error naming the file."""
        import yaml

        path = Path(path)
        with open(path) as handle:
            values = yaml.safe_load(handle) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of OfflineLabelConfig fields, found {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"{path}: unknown fields {unknown}; expected fields of OfflineLabelConfig: {sorted(known)}"
            )
        return cls(**{**values, **overrides})

    def at_frame_rate(self, frame_rate: float | None) -> OfflineLabelConfig:
        """These settings for a video of ``frame_rate`` Hz (see the class doc); unchanged when either rate is None."""
        if frame_rate is None or self.reference_frame_rate is None or frame_rate == self.reference_frame_rate:
            return self
        if not np.isfinite(frame_rate) or frame_rate <= 0:
            raise ValueError(f"OfflineLabelConfig.at_frame_rate: expected a frame rate > 0 Hz, found {frame_rate}")
        scale = frame_rate / self.reference_frame_rate
        changes = {
            name: max(1, int(round(getattr(self, name) * scale))) if getattr(self, name) > 0 else 0
            for name in FRAME_COUNTS
        }
        changes.update({name: getattr(self, name) / scale for name in PER_FRAME_RATES})
        return dataclasses.replace(self, reference_frame_rate=frame_rate, **changes)

    def tracker(self) -> ByteTracker:
        """The online tracker these settings describe."""
        return ByteTracker(
            high_score=self.high_score, low_score=self.low_score, new_track_score=self.new_track_score,
            first_match_iou=self.first_match_iou, second_match_iou=self.second_match_iou,
            tentative_match_iou=self.tentative_match_iou, max_lost_frames=self.max_lost_frames, min_hits=self.min_hits,
            appearance_weight=self.tracker_appearance_weight, direction_weight=self.direction_weight,
            direction_delta=self.direction_delta, recovery_iou=self.recovery_iou,
        )  # fmt: skip


@dataclass
class OfflineResult:
    """Output of the chain: flat final ``tracks`` (frame, track_id, score, uncertainty set; box score =
    sqrt(detector score * track score) where observed, the track score where filled), their tracklets, per-frame
    uncertainty (F,) and the camera-motion warps (previous -> current frame)."""

    tracks: Boxes2D
    tracklets: list[Tracklet]
    frame_uncertainty: np.ndarray
    warps: list[np.ndarray] = field(default_factory=list)


def precompute_frame_cues(
    frames: Iterable[np.ndarray] | None,
    per_frame: Sequence[Boxes2D],
    *,
    camera_motion: bool,
    appearance: bool,
    min_score: float,
) -> tuple[list[Boxes2D], list[np.ndarray] | None]:
    """One pass over frames: camera-motion affines (previous->current) and colour embeddings for boxes >= min_score."""
    if frames is None or not (camera_motion or appearance):
        return list(per_frame), None
    estimator = CameraMotionEstimator() if camera_motion else None
    warps: list[np.ndarray] = []
    out: list[Boxes2D] = []
    previous_boxes = None
    for index, frame in enumerate(frames):
        if index >= len(per_frame):
            break
        detections = per_frame[index]
        if estimator is not None:
            warps.append(estimator.update(frame, exclude_xyxy=previous_boxes))
            previous_boxes = detections.xyxy[detections.score >= 0.5]
        if appearance:
            embedding = np.zeros((len(detections), EMBEDDING_DIM), np.float32)
            keep = detections.score >= min_score
            if keep.any():
                embedding[keep] = colour_histogram_embedding(frame, detections.xyxy[keep])
            detections = detections.with_fields(embedding=embedding)
        out.append(detections)
    if len(out) != len(per_frame):
        raise ValueError(
            f"label_video_detections: {len(per_frame)} detection frames but the video yielded {len(out)} frames"
        )
    return out, (warps if estimator is not None else None)


def _finalise(tracklet: Tracklet, config: OfflineLabelConfig, rigid_ids: set[int]) -> tuple[Tracklet, np.ndarray]:
    """Fill/smooth one decided tracklet, apply shape priors; returns it and its per-box uncertainty."""
    smoothed = rts_smooth_tracklet(
        tracklet,
        process_noise=config.process_noise,
        measurement_noise=config.measurement_noise,
        max_gap=config.max_fill_gap,
    )
    if config.smoothing == "rts":
        refined = smoothed
    elif config.smoothing == "linear":
        refined = interpolate_linear(tracklet, max_gap=config.max_fill_gap)
    else:
        refined = tracklet
    if tracklet.track_class in rigid_ids:
        refined = unify_rigid_size(refined, max_scale_change=config.rigid_max_scale_change)
    if config.stationary_max_motion > 0:
        refined = hold_stationary(refined, max_motion=config.stationary_max_motion)
    refined = dataclasses.replace(refined, track_score=tracklet.track_score, track_class=tracklet.track_class)
    # Temporal inconsistency is always measured against the RTS-smoothed trajectory, whatever the output boxes are.
    temporal = np.zeros(len(refined))
    observed = refined.select(refined.observed)
    inconsistency = temporal_inconsistency(observed, smoothed)
    temporal[np.flatnonzero(refined.observed)] = inconsistency
    return refined, box_uncertainty(refined, temporal=temporal)


def _drop_weak_boxes(tracklet: Tracklet, min_score: float) -> Tracklet:
    """The tracklet without its observed boxes under ``min_score`` (gap filling later bridges those inside it)."""
    weak = tracklet.observed & (np.nan_to_num(tracklet.score, nan=0.0) < min_score)
    return tracklet.select(~weak) if weak.any() else tracklet


def label_video_detections(
    frames_or_reader: Iterable[np.ndarray] | None,
    per_frame_detections: Sequence[Boxes2D],
    config: OfflineLabelConfig = OfflineLabelConfig(),
    *,
    class_names: Sequence[str] = (),
    cues: tuple[Sequence[Boxes2D], list[np.ndarray] | None] | None = None,
    frame_rate: float | None = None,
) -> OfflineResult:
    """Chain tracking -> rescue -> linking -> decisions -> fill/smooth -> shape priors -> uncertainty over one video.

    frames_or_reader: the video's BGR frames in order (e.g. a VideoReader), used once for camera motion and
    appearance; None disables both. per_frame_detections[i]: the teacher's boxes for frame i (low scores kept).
    class_names: the name of each class id (``config.rigid_classes`` are looked up in it).
    cues: what ``precompute_frame_cues`` returned for these frames and settings (detections with embeddings, warps),
    to run many settings over one video without reading its frames again; ``frames_or_reader`` is then not read.
    frame_rate: the video's frames per second; durations in ``config`` are scaled to it (``at_frame_rate``).
    """
    config = config.at_frame_rate(frame_rate)
    num_frames = len(per_frame_detections)
    if cues is not None:
        per_frame, warps = list(cues[0]), cues[1]
        if len(per_frame) != num_frames:
            raise ValueError(f"label_video_detections: cues hold {len(per_frame)} frames, detections {num_frames}")
    else:
        per_frame, warps = precompute_frame_cues(
            frames_or_reader, per_frame_detections, camera_motion=config.camera_motion,
            appearance=config.appearance and (config.link or config.tracker_appearance_weight > 0),
            min_score=config.low_score,
        )  # fmt: skip
    flat = Boxes2D.concat(per_frame)
    tracklets = run_tracker(per_frame, tracker=config.tracker(), warps=warps)
    if config.backward_pass:
        backward = backward_tracklets(per_frame, tracker=config.tracker(), warps=warps)
        tracklets = reconcile_with_backward(tracklets, backward)
    if config.extend:
        tracklets = extend_tracklets(
            tracklets,
            per_frame,
            min_score=config.extend_min_score,
            min_iou=config.extend_min_iou,
            max_miss=config.extend_max_miss,
            embeddings=flat.embedding,
        )
    if config.link:
        tracklets = link_tracklets(
            tracklets, max_gap=config.link_max_gap, gate_base=config.link_gate_base,
            gate_per_frame=config.link_gate_per_frame, max_speed=config.link_max_speed,
            max_overlap=config.link_max_overlap, appearance_gate=config.link_appearance_gate,
            motion_weight=config.link_motion_weight, appearance_weight=config.link_appearance_weight,
            max_cost=config.link_max_cost,
        )  # fmt: skip
    decided = decide_tracks(
        tracklets,
        min_length=config.min_length,
        min_track_score=config.min_track_score,
        low_score=config.decision_low_score,
        max_low_fraction=config.max_low_fraction,
    )
    if config.box_min_score > 0:
        decided = [_drop_weak_boxes(tracklet, config.box_min_score) for tracklet in decided]
        decided = [tracklet for tracklet in decided if len(tracklet)]
    if config.min_observed_fraction > 0:
        decided = [
            tracklet
            for tracklet in decided
            if observed_fraction(tracklet, max_fill_gap=config.max_fill_gap) >= config.min_observed_fraction
        ]
    rigid_ids = {i for i, name in enumerate(class_names) if name in config.rigid_classes}
    final, parts = [], []
    for new_id, tracklet in enumerate(sorted(decided, key=lambda t: (t.start, t.track_id)), start=1):
        refined, uncertainty = _finalise(dataclasses.replace(tracklet, track_id=new_id), config, rigid_ids)
        final.append(refined)
        detections = tracklets_to_detections([refined])
        if config.output_score == "track":
            score = np.full(len(refined), refined.track_score)
        else:
            observed_score = np.sqrt(np.clip(np.nan_to_num(refined.score, nan=0.0), 0, 1) * refined.track_score)
            score = np.where(refined.observed, observed_score, refined.track_score)
        parts.append(detections.with_fields(score=score.astype(np.float32), uncertainty=uncertainty.astype(np.float32)))
    tracks = Boxes2D.concat(parts)

    used = np.zeros(len(flat), bool)
    for tracklet in final:
        used[tracklet.det_index[tracklet.det_index >= 0]] = True
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in per_frame])])
    frame_of_row = np.repeat(np.arange(num_frames), np.diff(offsets))
    unexplained_rows = np.flatnonzero((~used) & (flat.score >= config.high_score))
    unexplained = [flat[unexplained_rows[frame_of_row[unexplained_rows] == f]] for f in range(num_frames)]
    per_frame_u = frame_uncertainty(tracks, num_frames, unexplained=unexplained)
    return OfflineResult(tracks=tracks, tracklets=final, frame_uncertainty=per_frame_u, warps=warps or [])
