"""Tracklet linking across occlusions: motion gating + appearance distance, Hungarian over gaps up to N frames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autolabel.tracking.association import appearance_distance, match
from autolabel.tracking.tracklet import Tracklet
from perception.geometry import xyxy_to_cxcywh

__all__ = ["endpoint_motion", "link_tracklets"]


def endpoint_motion(tracklet: Tracklet, at_end: bool, window: int = 10) -> tuple[np.ndarray, np.ndarray, int]:
    """Least-squares [cx, cy, w, h] and per-frame velocity at one end, from up to `window` observed boxes.

    Returns (state (4,), velocity (4,), frame of the end). Velocity is zero for a single observed box.
    """
    observed = tracklet.select(tracklet.observed) if tracklet.observed.any() else tracklet
    part = observed.select(slice(-window, None) if at_end else slice(0, window))
    cxcywh = xyxy_to_cxcywh(part.xyxy)
    frame = part.end if at_end else part.start
    if len(part) < 2:
        return cxcywh[0], np.zeros(4), frame
    t = part.frames - frame
    design = np.stack([np.ones_like(t), t], axis=1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, cxcywh, rcond=None)
    return coef[0], coef[1], frame


def _majority_class(tracklet: Tracklet) -> int:
    return (
        int(np.bincount(tracklet.class_id[tracklet.class_id >= 0]).argmax()) if (tracklet.class_id >= 0).any() else -1
    )


def _pair_cost(
    a: Tracklet,
    b: Tracklet,
    *,
    max_gap: int,
    gate_base: float,
    gate_per_frame: float,
    max_size_ratio: float,
    max_speed: float,
) -> float:
    """Normalised motion error (in box heights, over the gate) of linking a's end to b's start; inf if gated out."""
    gap = b.start - a.end  # <= 0 for overlapping ends; the fits then extrapolate backwards
    if gap > max_gap + 1:
        return np.inf
    state_a, velocity_a, _ = endpoint_motion(a, at_end=True)
    state_b, velocity_b, _ = endpoint_motion(b, at_end=False)
    height = 0.5 * (state_a[3] + state_b[3])
    ratio = state_b[3] / max(state_a[3], 1e-6)
    if ratio > max_size_ratio or ratio < 1.0 / max_size_ratio:
        return np.inf
    # Cap extrapolation speed (box heights per frame): end-point velocity estimates are noisy.
    cap = max_speed * height
    velocity_a = np.clip(velocity_a, -cap, cap)
    velocity_b = np.clip(velocity_b, -cap, cap)
    forward_error = np.linalg.norm(state_a[:2] + velocity_a[:2] * gap - state_b[:2])
    backward_error = np.linalg.norm(state_b[:2] - velocity_b[:2] * gap - state_a[:2])
    error = min(forward_error, backward_error, 0.5 * (forward_error + backward_error)) / height
    gate = gate_base + gate_per_frame * max(gap, 0)
    return error / gate if error <= gate else np.inf


def link_tracklets(
    tracklets: Sequence[Tracklet],
    *,
    max_gap: int = 50,
    gate_base: float = 0.25,
    gate_per_frame: float = 0.01,
    max_size_ratio: float = 1.5,
    max_speed: float = 0.2,
    appearance_gate: float = 0.2,
    motion_weight: float = 0.5,
    appearance_weight: float = 0.5,
    max_rounds: int = 4,
    max_overlap: int = 3,
    max_cost: float = 0.5,
) -> list[Tracklet]:
    """Join tracklets where one ends and another starts within `max_gap` frames, one-to-one by Hungarian.

    Cost = motion_weight * motion error / gate + appearance_weight * appearance distance / appearance_gate
    (each term in [0, 1] when inside its gate); a link needs cost <= max_cost. Motion is gated in box heights (gate
    grows with the gap); appearance (cosine distance of mean observed embeddings) is gated only when both tracklets
    carry embeddings. Classes must agree. Ends may overlap by up to `max_overlap` frames (the later tracklet's
    overlapping boxes are dropped), which absorbs the few ambiguous frames left around a cut. Rounds repeat so chains
    A->B->C form. The earlier id is kept.
    """
    current = sorted(tracklets, key=lambda t: t.start)
    for _ in range(max_rounds):
        n = len(current)
        if n < 2:
            break
        cost = np.full((n, n), np.inf)
        classes = [_majority_class(t) for t in current]
        embeddings = [t.observed_embedding() for t in current]
        for i, a in enumerate(current):
            for j, b in enumerate(current):
                if i == j or classes[i] != classes[j] or b.start - a.end > max_gap + 1:
                    continue
                if b.start <= a.end and (a.end - b.start + 1 > max_overlap or b.end <= a.end or b.start <= a.start):
                    continue
                motion = _pair_cost(
                    a,
                    b,
                    max_gap=max_gap,
                    gate_base=gate_base,
                    gate_per_frame=gate_per_frame,
                    max_size_ratio=max_size_ratio,
                    max_speed=max_speed,
                )
                if not np.isfinite(motion):
                    continue
                appearance = 0.0
                if embeddings[i] is not None and embeddings[j] is not None:
                    distance = float(appearance_distance(embeddings[i][None], embeddings[j][None])[0, 0])
                    if distance > appearance_gate:
                        continue
                    appearance = distance / appearance_gate
                cost[i, j] = motion_weight * motion + appearance_weight * appearance
        pairs, _, _ = match(np.where(np.isfinite(cost), cost, 1e9), max_cost=max_cost)
        if len(pairs) == 0:
            break
        successor = {int(i): int(j) for i, j in pairs}
        has_predecessor = set(successor.values())
        merged = []
        for i in range(n):
            if i in has_predecessor:
                continue
            chain = current[i]
            k = i
            while k in successor:
                k = successor[k]
                following = current[k]
                following = following.select(following.frames > chain.end)
                if len(following):
                    chain = Tracklet.merge(chain, following)
            merged.append(chain)
        current = sorted(merged, key=lambda t: t.start)
    return current
