"""Track-level decisions: keep/drop whole tracks, one score and one class per track."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from autolabel.tracking.tracklet import Tracklet

__all__ = ["decide_tracks", "majority_class", "observed_fraction", "track_score"]


def track_score(tracklet: Tracklet, *, top_fraction: float = 0.5) -> float:
    """Mean of the top `top_fraction` observed detector scores (robust to occlusion dips); 0 if nothing observed."""
    scores = np.sort(tracklet.score[tracklet.observed & np.isfinite(tracklet.score)])[::-1]
    if len(scores) == 0:
        return 0.0
    count = max(1, int(np.ceil(top_fraction * len(scores))))
    return float(scores[:count].mean())


def observed_fraction(tracklet: Tracklet, *, max_fill_gap: int) -> float:
    """Share of a track's output boxes that are detections: observed / (observed + the frames its gap filling would
    invent, i.e. gaps of at most ``max_fill_gap`` frames; longer gaps stay empty and do not count). A detector's
    flickering false positive, linked into one track across its misses, is mostly invented boxes; an object hidden
    for a long stretch is not penalised, since that stretch is not filled. 1.0 for a track without gaps; 0.0 when
    nothing is observed."""
    frames = tracklet.frames[tracklet.observed]
    if len(frames) == 0:
        return 0.0
    gaps = np.diff(frames) - 1
    filled = int(gaps[(gaps > 0) & (gaps <= max_fill_gap)].sum())
    return len(frames) / (len(frames) + filled)


def majority_class(tracklet: Tracklet) -> int:
    """Score-weighted majority vote over observed boxes (-1 if none)."""
    mask = tracklet.observed & (tracklet.class_id >= 0)
    if not mask.any():
        return -1
    weights = np.nan_to_num(tracklet.score[mask], nan=0.0) + 1e-3
    return int(np.bincount(tracklet.class_id[mask], weights=weights).argmax())


def decide_tracks(
    tracklets: Sequence[Tracklet],
    *,
    min_length: int = 3,
    min_track_score: float = 0.3,
    low_score: float = 0.5,
    max_low_fraction: float = 0.8,
) -> list[Tracklet]:
    """Set track_score and track_class on each tracklet and keep those with >= min_length observed boxes,
    track score >= min_track_score and at most max_low_fraction of observed boxes below `low_score`."""
    kept = []
    for tracklet in tracklets:
        observed_scores = tracklet.score[tracklet.observed & np.isfinite(tracklet.score)]
        if len(observed_scores) < min_length:
            continue
        if float(np.mean(observed_scores < low_score)) > max_low_fraction:
            continue
        score = track_score(tracklet)
        if score < min_track_score:
            continue
        kept.append(replace(tracklet, track_score=score, track_class=majority_class(tracklet)))
    return kept
