"""Cheap appearance embeddings from frame crops: CIE-Lab colour histograms of horizontal stripes of the box."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["EMBEDDING_DIM", "colour_histogram_embedding"]

_STRIPES = 4
_BINS = 4  # per Lab channel
EMBEDDING_DIM = _STRIPES * _BINS**3


def colour_histogram_embedding(frame: np.ndarray, xyxy: np.ndarray, *, shrink: float = 0.15) -> np.ndarray:
    """(N, EMBEDDING_DIM) L2-normalised sqrt-histograms for boxes xyxy (N,4) in the BGR frame (pixels).

    The box is shrunk by `shrink` of its width on each side to drop background and cut into 4 horizontal stripes
    (head/torso/legs/feet for people), each described by a 4x4x4 Lab histogram. Boxes under 2x4 pixels give zeros.
    """
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    height, width = frame.shape[:2]
    out = np.zeros((len(xyxy), EMBEDDING_DIM), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(xyxy):
        dx = (x2 - x1) * shrink
        left, right = int(np.clip(x1 + dx, 0, width)), int(np.clip(x2 - dx, 0, width))
        top, bottom = int(np.clip(y1, 0, height)), int(np.clip(y2, 0, height))
        if right - left < 2 or bottom - top < _STRIPES:
            continue
        lab = cv2.cvtColor(np.ascontiguousarray(frame[top:bottom, left:right]), cv2.COLOR_BGR2LAB)
        parts = []
        for k in range(_STRIPES):
            stripe = lab[k * lab.shape[0] // _STRIPES : (k + 1) * lab.shape[0] // _STRIPES]
            histogram = cv2.calcHist([stripe], [0, 1, 2], None, [_BINS] * 3, [0, 256] * 3).ravel()
            parts.append(histogram / max(float(histogram.sum()), 1.0))
        vector = np.sqrt(np.concatenate(parts))
        out[i] = vector / max(float(np.linalg.norm(vector)), 1e-12)
    return out
