"""Backward pass: run the online tracker on the time-reversed video and cut forward tracklets where the two
passes disagree about which boxes belong together (identity switches are rarely made identically both ways)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from autolabel.tracking.byte_tracker import ByteTracker, run_tracker
from autolabel.tracking.tracklet import Tracklet
from perception.labels import Boxes2D

__all__ = ["backward_tracklets", "invert_affine", "reconcile_with_backward"]


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 image affine."""
    full = np.vstack([np.asarray(affine, dtype=np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def backward_tracklets(
    per_frame: Sequence[Boxes2D], *, tracker: ByteTracker, warps: Sequence[np.ndarray] | None = None
) -> list[Tracklet]:
    """Tracklets from the reversed sequence, in forward time; det_index refers to `Boxes2D.concat(per_frame)`."""
    num_frames = len(per_frame)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in per_frame])])
    reversed_frames = list(per_frame)[::-1]
    reversed_offsets = np.concatenate([[0], np.cumsum([len(d) for d in reversed_frames])])
    reversed_warps = None
    if warps is not None:
        # reversed step r goes from forward frame t+1 to t (t = F-1-r): inverse of the forward warp t -> t+1.
        reversed_warps = [np.eye(2, 3)] + [invert_affine(warps[num_frames - r]) for r in range(1, num_frames)]
    tracklets = run_tracker(reversed_frames, tracker=tracker, warps=reversed_warps)
    result = []
    for tracklet in tracklets:
        reversed_frame = tracklet.frames
        forward_frame = num_frames - 1 - reversed_frame
        local = tracklet.det_index - reversed_offsets[reversed_frame]
        forward_index = offsets[forward_frame] + local
        order = np.argsort(forward_frame)
        result.append(
            Tracklet(
                track_id=tracklet.track_id, frames=forward_frame[order], xyxy=tracklet.xyxy[order],
                score=tracklet.score[order], class_id=tracklet.class_id[order], observed=tracklet.observed[order],
                det_index=forward_index[order],
                embedding=None if tracklet.embedding is None else tracklet.embedding[order],
            )
        )  # fmt: skip
    return result


def reconcile_with_backward(forward: Sequence[Tracklet], backward: Sequence[Tracklet]) -> list[Tracklet]:
    """Split forward tracklets between consecutive boxes that the backward pass assigns to two different
    tracklets; pieces get new ids (above the largest forward id). Boxes unknown to the backward pass never cut."""
    owner: dict[int, int] = {}
    for tracklet in backward:
        for index in tracklet.det_index[tracklet.det_index >= 0]:
            owner[int(index)] = tracklet.track_id
    next_id = max((t.track_id for t in forward), default=0) + 1
    result = []
    for tracklet in forward:
        owners = np.array([owner.get(int(i), -1) for i in tracklet.det_index])
        cuts = [0]
        last_owner = -1
        for k, current in enumerate(owners):
            if current < 0:
                continue
            if last_owner >= 0 and current != last_owner:
                cuts.append(k)
            last_owner = current
        cuts.append(len(tracklet))
        for piece, (a, b) in enumerate(itertools.pairwise(cuts)):
            part = tracklet.select(np.arange(a, b))
            if piece > 0:
                part.track_id = next_id
                next_id += 1
            result.append(part)
    return result
