"""Assignment helpers: Hungarian matching with a cost threshold (scipy linear_sum_assignment)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["appearance_distance", "match"]


def match(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one matching keeping pairs with cost <= max_cost.

    Returns (pairs (K,2) [row, col], unmatched rows, unmatched cols).
    """
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return np.zeros((0, 2), np.int64), np.arange(rows), np.arange(cols)
    gated = np.where(cost <= max_cost, cost, max_cost + 1e6)
    row_index, col_index = linear_sum_assignment(gated)
    keep = gated[row_index, col_index] <= max_cost
    pairs = np.stack([row_index[keep], col_index[keep]], axis=1).astype(np.int64)
    return pairs, np.setdiff1d(np.arange(rows), pairs[:, 0]), np.setdiff1d(np.arange(cols), pairs[:, 1])


def appearance_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,M) cosine distance in [0, 1] between L2-normalised non-negative embeddings (0 = identical)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.clip(1.0 - a @ b.T, 0.0, 1.0)
