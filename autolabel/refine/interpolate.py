"""Gap filling inside tracklets: linear interpolation of boxes over missing frames."""

from __future__ import annotations

import numpy as np

from autolabel.tracking.tracklet import Tracklet

__all__ = ["interpolate_linear"]


def interpolate_linear(tracklet: Tracklet, *, max_gap: int = 30) -> Tracklet:
    """Fill gaps of at most `max_gap` missing frames with linearly interpolated boxes (observed=False, score nan)."""
    if len(tracklet) < 2:
        return tracklet
    gaps = np.diff(tracklet.frames) - 1
    if not np.any((gaps > 0) & (gaps <= max_gap)):
        return tracklet
    keep_frames = [tracklet.frames]
    for i in np.flatnonzero((gaps > 0) & (gaps <= max_gap)):
        keep_frames.append(np.arange(tracklet.frames[i] + 1, tracklet.frames[i + 1]))
    frames = np.sort(np.concatenate(keep_frames))
    known = np.isin(frames, tracklet.frames)
    xyxy = np.stack([np.interp(frames, tracklet.frames, tracklet.xyxy[:, k]) for k in range(4)], axis=1)
    source = np.searchsorted(tracklet.frames, frames)
    source_clipped = np.clip(source, 0, len(tracklet) - 1)
    score = np.where(known, tracklet.score[source_clipped], np.nan)
    # Class of a filled frame: the class of the previous observed box.
    previous = np.clip(np.searchsorted(tracklet.frames, frames, side="right") - 1, 0, len(tracklet) - 1)
    embedding = None if tracklet.embedding is None else tracklet.embedding[previous]
    return Tracklet(
        track_id=tracklet.track_id,
        frames=frames,
        xyxy=np.where(known[:, None], tracklet.xyxy[source_clipped], xyxy),
        score=score,
        class_id=tracklet.class_id[previous],
        observed=np.where(known, tracklet.observed[source_clipped], False),
        det_index=np.where(known, tracklet.det_index[source_clipped], -1),
        embedding=embedding,
        track_score=tracklet.track_score,
        track_class=tracklet.track_class,
    )
