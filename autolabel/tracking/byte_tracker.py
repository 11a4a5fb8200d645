"""Online two-stage (ByteTrack-style) tracker: Kalman prediction, optional camera-motion warp, IoU Hungarian."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from autolabel.tracking.association import appearance_distance, match
from autolabel.tracking.kalman import KalmanBoxFilter
from autolabel.tracking.tracklet import Tracklet
from perception.geometry import box_iou, cxcywh_to_xyxy, xyxy_to_cxcywh
from perception.labels import Boxes2D

__all__ = ["ByteTracker", "run_tracker"]

_TENTATIVE, _CONFIRMED, _LOST = 0, 1, 2


@dataclass
class _Track:
    track_id: int
    mean: np.ndarray  # (8,)
    covariance: np.ndarray  # (8,8)
    state: int
    hits: int
    last_frame: int
    embedding: np.ndarray | None
    history: list[tuple[int, int, np.ndarray, float, int, np.ndarray | None]] = field(default_factory=list)


class ByteTracker:
    """Two-stage association: high-score boxes vs all live tracks, then low-score boxes vs still-unmatched tracks.

    Stage 1 cost = 1 - IoU + direction_weight * heading inconsistency (angle between a track's observed heading over
    `direction_delta` frames and the heading to the box, as a fraction of pi) + appearance_weight * cosine distance
    (when boxes carry embeddings). Stage 3 re-tries unmatched tracks from their last observed box (recovery_iou).
    Boxes of different classes never match when `class_aware`.
    """

    def __init__(
        self,
        *,
        high_score: float = 0.5,
        low_score: float = 0.1,
        new_track_score: float = 0.6,
        first_match_iou: float = 0.2,
        second_match_iou: float = 0.5,
        tentative_match_iou: float = 0.3,
        max_lost_frames: int = 30,
        min_hits: int = 2,
        class_aware: bool = True,
        appearance_weight: float = 0.0,
        direction_weight: float = 0.0,
        direction_delta: int = 3,
        recovery_iou: float = 0.3,
        embedding_momentum: float = 0.9,
        kalman: KalmanBoxFilter | None = None,
    ) -> None:
        self.high_score = high_score
        self.low_score = low_score
        self.new_track_score = new_track_score
        self.first_match_iou = first_match_iou
        self.second_match_iou = second_match_iou
        self.tentative_match_iou = tentative_match_iou
        self.max_lost_frames = max_lost_frames
        self.min_hits = min_hits
        self.class_aware = class_aware
        self.appearance_weight = appearance_weight
        self.direction_weight = direction_weight
        self.direction_delta = direction_delta
        self.recovery_iou = recovery_iou
        self.embedding_momentum = embedding_momentum
        self.kalman = kalman or KalmanBoxFilter()
        self.reset()

    def reset(self) -> None:
        """Forget all tracks; ids restart at 1."""
        self._live: list[_Track] = []
        self._finished: list[_Track] = []
        self._next_id = 1
        self._frame = -1

    def _predict(self, warp: np.ndarray | None) -> None:
        if not self._live:
            return
        mean = np.stack([t.mean for t in self._live])
        cov = np.stack([t.covariance for t in self._live])
        for i, track in enumerate(self._live):
            if track.state == _LOST:
                mean[i, 7] = 0.0  # do not keep growing a box we cannot see
        mean, cov = self.kalman.predict(mean, cov)
        if warp is not None:
            mean, cov = self.kalman.warp(mean, cov, np.asarray(warp, dtype=np.float64))
        for i, track in enumerate(self._live):
            track.mean, track.covariance = mean[i], cov[i]

    def _cost(
        self,
        tracks: list[_Track],
        detections: Boxes2D,
        min_iou: float,
        use_extras: bool,
        boxes: np.ndarray | None = None,
    ) -> np.ndarray:
        """(T,N) cost = 1 - IoU (+ direction and appearance terms); inf where IoU < min_iou or classes differ."""
        if boxes is None:
            boxes = cxcywh_to_xyxy(np.stack([t.mean[:4] for t in tracks])) if tracks else np.zeros((0, 4))
        iou = box_iou(boxes, detections.xyxy)
        cost = 1.0 - iou
        if use_extras and tracks and len(detections):
            if self.direction_weight > 0:
                cost = cost + self.direction_weight * self._direction_cost(tracks, detections)
            if self.appearance_weight > 0 and detections.embedding is not None:
                has = np.array([t.embedding is not None for t in tracks])
                if has.any():
                    dim = detections.embedding.shape[1]
                    track_emb = np.stack([t.embedding if t.embedding is not None else np.ones(dim) for t in tracks])
                    cost = cost + np.where(
                        has[:, None], self.appearance_weight * appearance_distance(track_emb, detections.embedding), 0.0
                    )
        valid = iou >= min_iou
        if self.class_aware and tracks:
            track_class = np.array([t.history[-1][4] for t in tracks])
            valid &= track_class[:, None] == detections.class_id[None, :]
        return np.where(valid, cost, np.inf)

    def _direction_cost(self, tracks: list[_Track], detections: Boxes2D) -> np.ndarray:
        """(T,N) angle in [0,1] (fraction of pi) between each track's observed heading and the heading from its
        last observed centre to each box centre; 0 for tracks that barely move."""
        centres = 0.5 * (detections.xyxy[:, :2] + detections.xyxy[:, 2:])
        out = np.zeros((len(tracks), len(detections)))
        for i, track in enumerate(tracks):
            last_frame, *_ = track.history[-1]
            last = 0.5 * (track.history[-1][2][:2] + track.history[-1][2][2:])
            earlier = [h for h in track.history if h[0] <= last_frame - self.direction_delta]
            if not earlier:
                continue
            previous = 0.5 * (earlier[-1][2][:2] + earlier[-1][2][2:])
            heading = last - previous
            height = track.history[-1][2][3] - track.history[-1][2][1]
            if np.linalg.norm(heading) < 0.02 * height * (last_frame - earlier[-1][0]):
                continue  # nearly static: heading is noise
            to_box = centres - last
            norms = np.linalg.norm(to_box, axis=1) * np.linalg.norm(heading)
            cosine = np.where(norms > 1e-9, to_box @ heading / np.maximum(norms, 1e-9), 1.0)
            out[i] = np.arccos(np.clip(cosine, -1.0, 1.0)) / np.pi
        return out

    def _assign(self, track: _Track, detections: Boxes2D, row: int, det_index: int) -> None:
        measurement = xyxy_to_cxcywh(detections.xyxy[row : row + 1])
        mean, cov = self.kalman.update(track.mean[None], track.covariance[None], measurement)
        track.mean, track.covariance = mean[0], cov[0]
        track.hits += 1
        track.last_frame = self._frame
        embedding = None if detections.embedding is None else detections.embedding[row].astype(np.float64)
        if embedding is not None:
            if track.embedding is None:
                track.embedding = embedding
            else:
                track.embedding = self.embedding_momentum * track.embedding + (1 - self.embedding_momentum) * embedding
        track.history.append(
            (
                self._frame,
                det_index,
                detections.xyxy[row].copy(),
                float(detections.score[row]),
                int(detections.class_id[row]),
                embedding,
            )
        )

    def update(
        self, detections: Boxes2D, *, warp: np.ndarray | None = None, det_index: np.ndarray | None = None
    ) -> Boxes2D:
        """Advance one frame; returns the boxes matched to confirmed tracks, with track_id set.

        warp: optional 2x3 affine previous->current frame (camera motion). det_index: (N,) ids to record per box.
        """
        self._frame += 1
        det_index = np.arange(len(detections)) if det_index is None else np.asarray(det_index, dtype=np.int64)
        self._predict(warp)

        high = np.flatnonzero(detections.score >= self.high_score)
        low = np.flatnonzero((detections.score >= self.low_score) & (detections.score < self.high_score))
        active = [t for t in self._live if t.state in (_CONFIRMED, _LOST)]
        tentative = [t for t in self._live if t.state == _TENTATIVE]

        # Stage 1: high-score boxes vs confirmed and lost tracks (IoU + heading consistency + appearance).
        pairs, free_tracks, free_high = match(self._cost(active, detections[high], self.first_match_iou, True), 1e6)
        matched: list[tuple[_Track, int]] = [(active[r], int(high[c])) for r, c in pairs]
        left_tracks = [active[i] for i in free_tracks]
        # Stage 2: low-score boxes vs confirmed tracks left over (occlusion, blur).
        remaining = [t for t in left_tracks if t.state == _CONFIRMED]
        pairs, _, _ = match(self._cost(remaining, detections[low], self.second_match_iou, False), 1e6)
        matched += [(remaining[r], int(low[c])) for r, c in pairs]
        matched_ids = {id(t) for t, _ in matched}
        left_tracks = [t for t in left_tracks if id(t) not in matched_ids]
        # Stage 3: observation-centric recovery: last OBSERVED box of unmatched tracks vs leftover high boxes.
        leftover = high[free_high]
        if self.recovery_iou > 0 and left_tracks and len(leftover):
            last_boxes = np.stack([t.history[-1][2] for t in left_tracks])
            pairs, free_left_tracks, free_left = match(
                self._cost(left_tracks, detections[leftover], self.recovery_iou, False, boxes=last_boxes), 1e6
            )
            matched += [(left_tracks[r], int(leftover[c])) for r, c in pairs]
            left_tracks = [left_tracks[i] for i in free_left_tracks]
            leftover = leftover[free_left]
        newly_lost = [t for t in left_tracks if t.state == _CONFIRMED]
        unmatched_lost = [t for t in left_tracks if t.state == _LOST]
        # Stage 4: leftover high-score boxes vs tentative tracks.
        pairs, free_tentative, free_left = match(
            self._cost(tentative, detections[leftover], self.tentative_match_iou, False), 1e6
        )
        matched_tentative = [(tentative[r], int(leftover[c])) for r, c in pairs]

        for track, row in matched + matched_tentative:
            self._assign(track, detections, row, int(det_index[row]))
            if track.state == _LOST or (track.state == _TENTATIVE and track.hits >= self.min_hits):
                track.state = _CONFIRMED
        for i in free_tentative:
            tentative[i].state = -1  # tentative tracks die on the first miss
        for track in newly_lost:
            track.state = _LOST
        for track in unmatched_lost:
            if self._frame - track.last_frame > self.max_lost_frames:
                track.state = -1

        # Births from unmatched confident boxes.
        for row in leftover[free_left]:
            if detections.score[row] < self.new_track_score:
                continue
            mean, cov = self.kalman.initiate(xyxy_to_cxcywh(detections.xyxy[row : row + 1]))
            track = _Track(self._next_id, mean[0], cov[0], _TENTATIVE, 0, self._frame, None)
            self._next_id += 1
            self._assign(track, detections, int(row), int(det_index[row]))
            if self._frame == 0 or self.min_hits <= 1:
                track.state = _CONFIRMED
            self._live.append(track)

        self._finished += [t for t in self._live if t.state == -1 and t.hits >= self.min_hits]
        self._live = [t for t in self._live if t.state != -1]

        current = [(t, h) for t in self._live if t.state == _CONFIRMED for h in t.history[-1:] if h[0] == self._frame]
        if not current:
            return Boxes2D.empty()
        return Boxes2D(
            xyxy=np.stack([h[2] for _, h in current]),
            score=np.array([h[3] for _, h in current]),
            class_id=np.array([h[4] for _, h in current]),
            frame=np.full(len(current), self._frame),
            track_id=np.array([t.track_id for t, _ in current]),
        )

    def tracklets(self) -> list[Tracklet]:
        """Every track ever confirmed, with its full observed history (including its tentative start)."""
        tracks = self._finished + [t for t in self._live if t.state in (_CONFIRMED, _LOST)]
        result = []
        for track in sorted(tracks, key=lambda t: t.track_id):
            history = track.history
            embeddings = [h[5] for h in history]
            result.append(
                Tracklet(
                    track_id=track.track_id,
                    frames=[h[0] for h in history],
                    xyxy=np.stack([h[2] for h in history]),
                    score=[h[3] for h in history],
                    class_id=[h[4] for h in history],
                    observed=np.ones(len(history), bool),
                    det_index=[h[1] for h in history],
                    embedding=None if any(e is None for e in embeddings) else np.stack(embeddings),
                )
            )
        return result


def run_tracker(
    per_frame: Sequence[Boxes2D],
    *,
    tracker: ByteTracker | None = None,
    warps: Sequence[np.ndarray | None] | None = None,
) -> list[Tracklet]:
    """Run a fresh tracker over a sequence; det_index refers to rows of `Boxes2D.concat(per_frame)`."""
    tracker = tracker or ByteTracker()
    tracker.reset()
    offset = 0
    for index, detections in enumerate(per_frame):
        warp = None if warps is None else warps[index]
        tracker.update(detections, warp=warp, det_index=np.arange(offset, offset + len(detections)))
        offset += len(detections)
    return tracker.tracklets()
