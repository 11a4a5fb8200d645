"""Tracklet: one object's boxes over consecutive-or-gapped frames, plus conversion to/from flat `Boxes2D`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from perception.labels import Boxes2D

__all__ = ["Tracklet", "detections_to_tracklets", "tracklets_to_detections"]


@dataclass
class Tracklet:
    """Boxes of one object sorted by frame: frames (T,) int64, xyxy (T,4) pixels, score (T,) detector score
    (nan where not observed), class_id (T,), observed (T,) bool (False = interpolated/extrapolated),
    det_index (T,) int64 index into the source flat detections (-1 if synthesised), embedding (T,D) or None."""

    track_id: int
    frames: np.ndarray
    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray
    observed: np.ndarray
    det_index: np.ndarray
    embedding: np.ndarray | None = None
    track_score: float = float("nan")
    track_class: int = -1

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames, dtype=np.int64).reshape(-1)
        n = len(self.frames)
        self.xyxy = np.asarray(self.xyxy, dtype=np.float64).reshape(n, 4)
        self.score = np.asarray(self.score, dtype=np.float32).reshape(n)
        self.class_id = np.asarray(self.class_id, dtype=np.int64).reshape(n)
        self.observed = np.asarray(self.observed, dtype=bool).reshape(n)
        self.det_index = np.asarray(self.det_index, dtype=np.int64).reshape(n)
        if self.embedding is not None:
            self.embedding = np.asarray(self.embedding, dtype=np.float32).reshape(n, -1)
        if n > 1 and np.any(np.diff(self.frames) <= 0):
            raise ValueError(
                f"Tracklet {self.track_id}: frames must be strictly increasing, found {self.frames[:10]}..."
            )

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def start(self) -> int:
        return int(self.frames[0])

    @property
    def end(self) -> int:
        return int(self.frames[-1])

    def select(self, mask: np.ndarray) -> Tracklet:
        """Sub-tracklet by boolean mask or index array."""
        return replace(
            self,
            frames=self.frames[mask],
            xyxy=self.xyxy[mask],
            score=self.score[mask],
            class_id=self.class_id[mask],
            observed=self.observed[mask],
            det_index=self.det_index[mask],
            embedding=None if self.embedding is None else self.embedding[mask],
        )

    @staticmethod
    def merge(first: Tracklet, second: Tracklet) -> Tracklet:
        """Concatenate two tracklets (second starts after first ends); keeps first's id."""
        if second.start <= first.end:
            raise ValueError(
                f"Tracklet.merge: {second.track_id} starts at {second.start} <= {first.track_id} end {first.end}"
            )
        embedding = None
        if first.embedding is not None and second.embedding is not None:
            embedding = np.concatenate([first.embedding, second.embedding])
        return Tracklet(
            track_id=first.track_id,
            frames=np.concatenate([first.frames, second.frames]),
            xyxy=np.concatenate([first.xyxy, second.xyxy]),
            score=np.concatenate([first.score, second.score]),
            class_id=np.concatenate([first.class_id, second.class_id]),
            observed=np.concatenate([first.observed, second.observed]),
            det_index=np.concatenate([first.det_index, second.det_index]),
            embedding=embedding,
        )

    def observed_embedding(self) -> np.ndarray | None:
        """Mean L2-normalised appearance over observed boxes, or None."""
        if self.embedding is None or not self.observed.any():
            return None
        mean = self.embedding[self.observed].mean(axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-12)


def tracklets_to_detections(tracklets: Sequence[Tracklet], *, use_track_score: bool = False) -> Boxes2D:
    """Flatten to `Boxes2D` with frame and track_id set; score = detector score (or track score, if asked /
    unobserved)."""
    parts = []
    for tracklet in tracklets:
        n = len(tracklet)
        score = tracklet.score.copy()
        fallback = tracklet.track_score if np.isfinite(tracklet.track_score) else 0.0
        if use_track_score:
            score[:] = fallback
        score[~np.isfinite(score)] = fallback
        class_id = tracklet.class_id if tracklet.track_class < 0 else np.full(n, tracklet.track_class)
        parts.append(
            Boxes2D(
                xyxy=tracklet.xyxy,
                score=np.clip(score, 0, 1),
                class_id=class_id,
                frame=tracklet.frames,
                track_id=np.full(n, tracklet.track_id),
            )
        )
    return Boxes2D.concat(parts)


def detections_to_tracklets(detections: Boxes2D) -> list[Tracklet]:
    """Group flat detections with track_id >= 0 into tracklets (observed everywhere, det_index = row)."""
    result = []
    for track_id in np.unique(detections.track_id[detections.track_id >= 0]):
        rows = np.flatnonzero(detections.track_id == track_id)
        rows = rows[np.argsort(detections.frame[rows], kind="stable")]
        result.append(
            Tracklet(
                track_id=int(track_id),
                frames=detections.frame[rows],
                xyxy=detections.xyxy[rows],
                score=detections.score[rows],
                class_id=detections.class_id[rows],
                observed=np.ones(len(rows), bool),
                det_index=rows,
                embedding=None if detections.embedding is None else detections.embedding[rows],
            )
        )
    return result
