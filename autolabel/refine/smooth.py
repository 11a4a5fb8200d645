"""Rauch-Tung-Striebel smoothing of box trajectories (constant velocity per coordinate, gaps bridged)."""

from __future__ import annotations

import numpy as np

from autolabel.tracking.tracklet import Tracklet
from perception.geometry import cxcywh_to_xyxy, xyxy_to_cxcywh

__all__ = ["rts_smooth_series", "rts_smooth_tracklet"]


def rts_smooth_series(
    times: np.ndarray,
    values: np.ndarray,
    *,
    process_std: np.ndarray | float,
    measurement_std: np.ndarray | float,
    fill_gaps: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth (T,D) measurements at integer times (T,) with a constant-velocity model per dimension.

    process_std: white-acceleration std per step (units of values / frame^2), (D,) or scalar;
    measurement_std: (T,D), (D,) or scalar. Returns (output times, smoothed (T',D)); with fill_gaps every
    integer time between first and last is returned (missing frames are bridged by the smoother).
    """
    times = np.asarray(times, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    out_times = np.arange(times[0], times[-1] + 1) if fill_gaps else times
    steps, dims = len(out_times), values.shape[1]
    observed_at = np.full(steps, -1)
    observed_at[np.searchsorted(out_times, times)] = np.arange(len(times))
    q = np.broadcast_to(np.asarray(process_std, dtype=np.float64), (dims,)) ** 2
    r = np.broadcast_to(np.asarray(measurement_std, dtype=np.float64), (len(times), dims)) ** 2
    transition = np.array([[1.0, 1.0], [0.0, 1.0]])
    noise_shape = np.array([[0.25, 0.5], [0.5, 1.0]])  # discrete white-acceleration model, dt = 1 frame

    means_f = np.zeros((steps, dims, 2))
    covs_f = np.zeros((steps, dims, 2, 2))
    means_p = np.zeros_like(means_f)
    covs_p = np.zeros_like(covs_f)
    mean = np.stack([values[0], np.zeros(dims)], axis=1)
    cov = np.zeros((dims, 2, 2))
    cov[:, 0, 0] = r[0]
    cov[:, 1, 1] = 10.0 * r[0] + 10.0 * q
    for k in range(steps):
        if k > 0:
            mean = mean @ transition.T
            cov = transition @ cov @ transition.T + q[:, None, None] * noise_shape
        means_p[k], covs_p[k] = mean, cov
        j = observed_at[k]
        if j >= 0:
            innovation_var = cov[:, 0, 0] + r[j]
            gain = cov[:, :, 0] / innovation_var[:, None]
            mean = mean + gain * (values[j] - mean[:, 0])[:, None]
            cov = cov - gain[:, :, None] * cov[:, 0, :][:, None, :]
        means_f[k], covs_f[k] = mean, cov

    smoothed = means_f.copy()
    smoothed_cov = covs_f.copy()
    for k in range(steps - 2, -1, -1):
        gain = covs_f[k] @ transition.T @ np.linalg.inv(covs_p[k + 1])
        smoothed[k] = means_f[k] + np.einsum("dij,dj->di", gain, smoothed[k + 1] - means_p[k + 1])
        smoothed_cov[k] = covs_f[k] + gain @ (smoothed_cov[k + 1] - covs_p[k + 1]) @ np.transpose(gain, (0, 2, 1))
    return out_times, smoothed[:, :, 0]


def rts_smooth_tracklet(
    tracklet: Tracklet,
    *,
    process_noise: float = 0.02,
    measurement_noise: float = 0.05,
    fill_gaps: bool = True,
    max_gap: int = 30,
) -> Tracklet:
    """RTS-smooth a tracklet's [cx, cy, w, h]; noise stds are fractions of the median box height.

    Gaps up to `max_gap` frames are filled with smoothed boxes (observed=False); longer gaps are left empty.
    """
    if len(tracklet) < 3:
        return tracklet
    observed = tracklet.observed
    cxcywh = xyxy_to_cxcywh(tracklet.xyxy)
    height = float(np.median(cxcywh[observed, 3])) if observed.any() else float(np.median(cxcywh[:, 3]))
    times, smoothed = rts_smooth_series(
        tracklet.frames[observed] if observed.sum() >= 2 else tracklet.frames,
        cxcywh[observed] if observed.sum() >= 2 else cxcywh,
        process_std=process_noise * height,
        measurement_std=measurement_noise * height,
        fill_gaps=True,
    )
    known = np.isin(times, tracklet.frames)
    gap_ok = _within_gap(times, tracklet.frames, max_gap) if fill_gaps else known
    keep = known | gap_ok
    times, smoothed, known = times[keep], smoothed[keep], known[keep]
    source = np.clip(np.searchsorted(tracklet.frames, times), 0, len(tracklet) - 1)
    previous = np.clip(np.searchsorted(tracklet.frames, times, side="right") - 1, 0, len(tracklet) - 1)
    smoothed[:, 2:] = np.maximum(smoothed[:, 2:], 1.0)
    return Tracklet(
        track_id=tracklet.track_id,
        frames=times,
        xyxy=cxcywh_to_xyxy(smoothed),
        score=np.where(known, tracklet.score[source], np.nan),
        class_id=tracklet.class_id[previous],
        observed=np.where(known, tracklet.observed[source], False),
        det_index=np.where(known, tracklet.det_index[source], -1),
        embedding=None if tracklet.embedding is None else tracklet.embedding[previous],
        track_score=tracklet.track_score,
        track_class=tracklet.track_class,
    )


def _within_gap(times: np.ndarray, frames: np.ndarray, max_gap: int) -> np.ndarray:
    """True for times lying inside a gap of at most max_gap missing frames."""
    previous = np.clip(np.searchsorted(frames, times, side="right") - 1, 0, len(frames) - 1)
    following = np.clip(previous + 1, 0, len(frames) - 1)
    gap = frames[following] - frames[previous] - 1
    return gap <= max_gap
