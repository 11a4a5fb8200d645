"""Typed per-box container for 2D detections and tracks (pixels, xyxy), supervision-style parallel arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

__all__ = ["Detections", "box_iou", "cxcywh_to_xyxy", "xyxy_to_cxcywh"]


@dataclass
class Detections:
    """N boxes with parallel arrays; `frame` and `track_id` are -1 when unknown, `uncertainty` nan when unknown.

    xyxy: (N,4) float64 pixels [x1, y1, x2, y2]; score: (N,) float32 in [0, 1]; class_id: (N,) int64;
    frame: (N,) int64 0-based frame index; track_id: (N,) int64; embedding: (N,D) float32 or None;
    uncertainty: (N,) float32 in [0, 1] (0 = certain).
    """

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray
    frame: np.ndarray | None = None
    track_id: np.ndarray | None = None
    embedding: np.ndarray | None = None
    uncertainty: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float64).reshape(-1, 4)
        n = len(self.xyxy)
        self.score = self._vector("score", self.score, np.float32, n)
        self.class_id = self._vector("class_id", self.class_id, np.int64, n)
        self.frame = self._vector("frame", self.frame, np.int64, n, fill=-1)
        self.track_id = self._vector("track_id", self.track_id, np.int64, n, fill=-1)
        self.uncertainty = self._vector("uncertainty", self.uncertainty, np.float32, n, fill=np.nan)
        if self.embedding is not None:
            self.embedding = np.asarray(self.embedding, dtype=np.float32)
            if self.embedding.ndim != 2 or len(self.embedding) != n:
                raise ValueError(f"Detections.embedding: expected shape ({n}, D), found {self.embedding.shape}")
        if not np.all(np.isfinite(self.xyxy)):
            raise ValueError("Detections.xyxy: expected finite pixel coordinates, found nan/inf")

    @staticmethod
    def _vector(name: str, value, dtype, n: int, fill=None) -> np.ndarray:
        if value is None:
            if fill is None:
                raise ValueError(f"Detections.{name}: expected an array of length {n}, found None")
            return np.full(n, fill, dtype=dtype)
        array = np.asarray(value, dtype=dtype).reshape(-1)
        if len(array) != n:
            raise ValueError(f"Detections.{name}: expected length {n} (len(xyxy)), found {len(array)}")
        return array

    @classmethod
    def empty(cls, embedding_dim: int | None = None) -> Detections:
        """Zero boxes (optionally with an empty (0,D) embedding)."""
        emb = None if embedding_dim is None else np.zeros((0, embedding_dim), np.float32)
        return cls(np.zeros((0, 4)), np.zeros(0, np.float32), np.zeros(0, np.int64), embedding=emb)

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index) -> Detections:
        """Select boxes by boolean mask, integer index array or slice; always returns Detections."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            xyxy=self.xyxy[index],
            score=self.score[index],
            class_id=self.class_id[index],
            frame=self.frame[index],
            track_id=self.track_id[index],
            embedding=None if self.embedding is None else self.embedding[index],
            uncertainty=self.uncertainty[index],
        )

    @classmethod
    def concat(cls, parts: Sequence[Detections]) -> Detections:
        """Concatenate; embeddings are kept only if every non-empty part has them with one dimension."""
        parts = [p for p in parts if p is not None]
        if not parts:
            return cls.empty()
        with_emb = [p.embedding for p in parts if len(p) > 0]
        keep_emb = bool(with_emb) and all(e is not None for e in with_emb) and len({e.shape[1] for e in with_emb}) == 1
        embedding = None
        if keep_emb:
            dim = with_emb[0].shape[1]
            embedding = np.concatenate(
                [p.embedding if p.embedding is not None else np.zeros((0, dim), np.float32) for p in parts]
            )
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            score=np.concatenate([p.score for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            frame=np.concatenate([p.frame for p in parts]),
            track_id=np.concatenate([p.track_id for p in parts]),
            embedding=embedding,
            uncertainty=np.concatenate([p.uncertainty for p in parts]),
        )

    def with_fields(self, **changes) -> Detections:
        """Copy with some fields replaced (e.g. `dets.with_fields(frame=np.full(len(dets), 3))`)."""
        allowed = {f.name for f in fields(self)}
        unknown = set(changes) - allowed
        if unknown:
            raise TypeError(
                f"Detections.with_fields: unknown fields {sorted(unknown)}, expected some of {sorted(allowed)}"
            )
        return replace(self, **changes)

    @property
    def area(self) -> np.ndarray:
        """(N,) box areas in square pixels."""
        return np.clip(self.xyxy[:, 2] - self.xyxy[:, 0], 0, None) * np.clip(self.xyxy[:, 3] - self.xyxy[:, 1], 0, None)

    def split_by_frame(self, num_frames: int) -> list[Detections]:
        """Per-frame list (length num_frames) using the `frame` array; boxes with frame outside [0, num_frames) are dropped."""
        order = np.argsort(self.frame, kind="stable")
        sorted_frames = self.frame[order]
        bounds = np.searchsorted(sorted_frames, np.arange(num_frames + 1))
        return [self[order[bounds[i] : bounds[i + 1]]] for i in range(num_frames)]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,M) IoU between xyxy boxes a (N,4) and b (M,4)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def xyxy_to_cxcywh(xyxy: np.ndarray) -> np.ndarray:
    """(...,4) xyxy -> (...,4) centre x, centre y, width, height (pixels)."""
    xyxy = np.asarray(xyxy, dtype=np.float64)
    wh = xyxy[..., 2:] - xyxy[..., :2]
    return np.concatenate([xyxy[..., :2] + wh / 2, wh], axis=-1)


def cxcywh_to_xyxy(cxcywh: np.ndarray) -> np.ndarray:
    """(...,4) centre x, centre y, width, height -> (...,4) xyxy (pixels)."""
    cxcywh = np.asarray(cxcywh, dtype=np.float64)
    half = cxcywh[..., 2:] / 2
    return np.concatenate([cxcywh[..., :2] - half, cxcywh[..., :2] + half], axis=-1)
