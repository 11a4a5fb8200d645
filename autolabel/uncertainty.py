"""Uncertainty per box and per frame, and ranking of frames for human review (most uncertain first)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autolabel.tracking.tracklet import Tracklet
from perception.geometry import box_iou
from perception.labels import Boxes2D

__all__ = ["box_uncertainty", "frame_uncertainty", "rank_frames_for_review", "temporal_inconsistency"]


def temporal_inconsistency(raw: Tracklet, smoothed: Tracklet) -> np.ndarray:
    """(T_raw,) 1 - IoU between each raw observed box and the smoothed box at the same frame (1 if missing)."""
    out = np.ones(len(raw))
    position = {int(f): i for i, f in enumerate(smoothed.frames)}
    for i, frame in enumerate(raw.frames):
        j = position.get(int(frame))
        if j is not None:
            out[i] = 1.0 - box_iou(raw.xyxy[i : i + 1], smoothed.xyxy[j : j + 1])[0, 0]
    return out


def box_uncertainty(
    tracklet: Tracklet,
    *,
    temporal: np.ndarray | None = None,
    ensemble: np.ndarray | None = None,
    unobserved: float = 0.5,
) -> np.ndarray:
    """(T,) box uncertainty in [0,1]: max of temporal inconsistency, ensemble disagreement (nan = unknown),
    `unobserved` for interpolated boxes, and 1 - track score."""
    terms = [np.where(tracklet.observed, 0.0, unobserved)]
    if temporal is not None:
        terms.append(np.nan_to_num(np.asarray(temporal, dtype=np.float64), nan=0.0))
    if ensemble is not None:
        terms.append(np.nan_to_num(np.asarray(ensemble, dtype=np.float64), nan=0.0))
    if np.isfinite(tracklet.track_score):
        terms.append(np.full(len(tracklet), 1.0 - tracklet.track_score))
    return np.clip(np.max(np.stack(terms), axis=0), 0.0, 1.0)


def frame_uncertainty(
    tracks: Boxes2D,
    num_frames: int,
    *,
    unexplained: Sequence[Boxes2D] | None = None,
    unexplained_weight: float = 0.5,
) -> np.ndarray:
    """(F,) per-frame uncertainty: max box uncertainty of tracked boxes, raised by the best score of detections
    no track explains (possible misses), times `unexplained_weight`."""
    out = np.zeros(num_frames)
    valid = (tracks.frame >= 0) & (tracks.frame < num_frames)
    np.maximum.at(out, tracks.frame[valid], np.nan_to_num(tracks.uncertainty[valid], nan=0.0))
    if unexplained is not None:
        for frame, detections in enumerate(unexplained[:num_frames]):
            if len(detections):
                out[frame] = max(out[frame], unexplained_weight * float(detections.score.max()))
    return out


def rank_frames_for_review(
    frame_scores: np.ndarray, *, top_k: int | None = None, min_separation: int = 0
) -> np.ndarray:
    """Frame indices by descending uncertainty; with min_separation, neighbours of a picked frame are skipped."""
    order = np.argsort(-np.asarray(frame_scores), kind="stable")
    if min_separation <= 0:
        return order[:top_k] if top_k is not None else order
    picked: list[int] = []
    for frame in order:
        if all(abs(int(frame) - p) > min_separation for p in picked):
            picked.append(int(frame))
            if top_k is not None and len(picked) >= top_k:
                break
    return np.asarray(picked, dtype=np.int64)
