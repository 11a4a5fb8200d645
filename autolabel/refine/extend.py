"""Rescue with future (and past) frames: grow tracklets at both ends over unused low-score detections."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autolabel.tracking.kalman import KalmanBoxFilter
from autolabel.tracking.tracklet import Tracklet
from perception.geometry import box_iou, cxcywh_to_xyxy, xyxy_to_cxcywh
from perception.labels import Boxes2D

__all__ = ["extend_tracklets"]


def _grow(
    tracklet: Tracklet,
    direction: int,
    per_frame: Sequence[Boxes2D],
    offsets: np.ndarray,
    used: np.ndarray,
    embeddings: np.ndarray | None,
    *,
    min_score: float,
    min_iou: float,
    max_miss: int,
    history: int,
    kalman: KalmanBoxFilter,
) -> Tracklet:
    observed = tracklet.select(tracklet.observed)
    if len(observed) == 0:
        return tracklet
    order = np.arange(len(observed))[::direction][-history:]  # last `history` boxes, in walking order
    # Filter through the last `history` boxes in the walking direction, stepping over gaps.
    frames = observed.frames[order]
    measurements = xyxy_to_cxcywh(observed.xyxy[order])
    mean, cov = kalman.initiate(measurements[:1])
    for k in range(1, len(frames)):
        mean, cov = kalman.predict(mean, cov, steps=int(abs(frames[k] - frames[k - 1])))
        mean, cov = kalman.update(mean, cov, measurements[k : k + 1])
    track_class = int(np.bincount(observed.class_id).argmax())
    frame, misses, added = int(frames[-1]), 0, []
    while misses <= max_miss:
        frame += direction
        if frame < 0 or frame >= len(per_frame):
            break
        mean, cov = kalman.predict(mean, cov)
        candidates = per_frame[frame]
        rows = offsets[frame] + np.arange(len(candidates))
        ok = (~used[rows]) & (candidates.score >= min_score) & (candidates.class_id == track_class)
        if ok.any():
            ious = box_iou(cxcywh_to_xyxy(mean[:, :4]), candidates.xyxy)[0]
            ious[~ok] = 0.0
            best = int(np.argmax(ious))
            if ious[best] >= min_iou:
                mean, cov = kalman.update(mean, cov, xyxy_to_cxcywh(candidates.xyxy[best : best + 1]))
                used[rows[best]] = True
                added.append((frame, int(rows[best]), best))
                misses = 0
                continue
        misses += 1
    if not added:
        return tracklet
    added.sort()
    extra = Tracklet(
        track_id=tracklet.track_id,
        frames=[a[0] for a in added],
        xyxy=np.stack([per_frame[a[0]].xyxy[a[2]] for a in added]),
        score=[per_frame[a[0]].score[a[2]] for a in added],
        class_id=[per_frame[a[0]].class_id[a[2]] for a in added],
        observed=np.ones(len(added), bool),
        det_index=[a[1] for a in added],
        embedding=None if embeddings is None or tracklet.embedding is None else embeddings[[a[1] for a in added]],
    )
    if direction < 0:
        return Tracklet.merge(extra, tracklet)
    return Tracklet.merge(tracklet, extra)


def extend_tracklets(
    tracklets: Sequence[Tracklet],
    per_frame: Sequence[Boxes2D],
    *,
    min_score: float = 0.1,
    min_iou: float = 0.5,
    max_miss: int = 2,
    history: int = 10,
    embeddings: np.ndarray | None = None,
    kalman: KalmanBoxFilter | None = None,
) -> list[Tracklet]:
    """Extend each tracklet backwards from its start and forwards from its end with detections no tracklet uses.

    Walks frame by frame with a Kalman prediction, accepting the best same-class unused box with IoU >= min_iou and
    score >= min_score; stops after `max_miss` consecutive misses. Longer tracklets claim boxes first.
    det_index refers to rows of `Boxes2D.concat(per_frame)`; `embeddings` (rows, D) are attached if given.
    """
    kalman = kalman or KalmanBoxFilter()
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in per_frame])])
    used = np.zeros(int(offsets[-1]), bool)
    for tracklet in tracklets:
        index = tracklet.det_index[tracklet.det_index >= 0]
        used[index] = True
    result = {}
    for tracklet in sorted(tracklets, key=len, reverse=True):
        grown = _grow(
            tracklet,
            -1,
            per_frame,
            offsets,
            used,
            embeddings,
            min_score=min_score,
            min_iou=min_iou,
            max_miss=max_miss,
            history=history,
            kalman=kalman,
        )
        grown = _grow(
            grown,
            +1,
            per_frame,
            offsets,
            used,
            embeddings,
            min_score=min_score,
            min_iou=min_iou,
            max_miss=max_miss,
            history=history,
            kalman=kalman,
        )
        result[tracklet.track_id] = grown
    return [result[t.track_id] for t in tracklets]
