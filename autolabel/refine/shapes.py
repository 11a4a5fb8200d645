"""Shape priors: one box size (or aspect) per rigid object, stationary objects held still."""

from __future__ import annotations

import numpy as np

from autolabel.tracking.tracklet import Tracklet
from perception.geometry import cxcywh_to_xyxy, xyxy_to_cxcywh

__all__ = ["hold_stationary", "unify_rigid_size"]


def unify_rigid_size(tracklet: Tracklet, *, max_scale_change: float = 0.15) -> Tracklet:
    """Rigid objects (vehicles): if the box scale varies by less than `max_scale_change` (robust 10-90% spread of
    height) use the median width and height everywhere; otherwise keep the height (distance changes scale) and set
    every width from the median aspect ratio w/h. Centres are kept."""
    if len(tracklet) < 2:
        return tracklet
    cxcywh = xyxy_to_cxcywh(tracklet.xyxy)
    reference = cxcywh[tracklet.observed] if tracklet.observed.sum() >= 2 else cxcywh
    low, high = np.percentile(reference[:, 3], [10, 90])
    if high / max(low, 1e-6) - 1.0 <= max_scale_change:
        cxcywh[:, 2] = np.median(reference[:, 2])
        cxcywh[:, 3] = np.median(reference[:, 3])
    else:
        aspect = float(np.median(reference[:, 2] / np.maximum(reference[:, 3], 1e-6)))
        cxcywh[:, 2] = aspect * cxcywh[:, 3]
    return _with_boxes(tracklet, cxcywh_to_xyxy(cxcywh))


def hold_stationary(tracklet: Tracklet, *, max_motion: float = 0.05, min_length: int = 5) -> Tracklet:
    """If the centre's robust spread stays under `max_motion` box heights (image frame), replace every box by
    the median box (removes detector jitter on parked cars, signs, standing people)."""
    if len(tracklet) < min_length:
        return tracklet
    cxcywh = xyxy_to_cxcywh(tracklet.xyxy)
    reference = cxcywh[tracklet.observed] if tracklet.observed.sum() >= min_length else cxcywh
    height = float(np.median(reference[:, 3]))
    spread = np.percentile(reference[:, :2], 90, axis=0) - np.percentile(reference[:, :2], 10, axis=0)
    if float(np.max(spread)) > max_motion * height:
        return tracklet
    median_box = np.median(reference, axis=0)
    return _with_boxes(tracklet, np.repeat(cxcywh_to_xyxy(median_box)[None], len(tracklet), axis=0))


def _with_boxes(tracklet: Tracklet, xyxy: np.ndarray) -> Tracklet:
    return Tracklet(
        track_id=tracklet.track_id,
        frames=tracklet.frames,
        xyxy=xyxy,
        score=tracklet.score,
        class_id=tracklet.class_id,
        observed=tracklet.observed,
        det_index=tracklet.det_index,
        embedding=tracklet.embedding,
        track_score=tracklet.track_score,
        track_class=tracklet.track_class,
    )
