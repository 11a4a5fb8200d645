"""Streaming per-class IoU for BEV / image segmentation (multi-label channels or exclusive class maps); numpy only."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


class SegmentationIoU:
    """Accumulates intersection and union per class over many maps; IoU = sum(inter) / sum(union) over the dataset.

    ``mode="multilabel"``: pred and gt are (..., C, H, W), one binary map per class (e.g. drivable, lane; BevMaps data);
    float preds are probabilities, positive where >= ``threshold``; bool/int preds and all gts are positive where != 0.
    ``mode="multiclass"``: pred and gt are exclusive class maps (..., H, W) of ints in [0, C); gt pixels equal to
    ``ignore_index`` are skipped. A pred given as scores (..., C, H, W) float is reduced by argmax over C.
    A class whose union is 0 over everything seen has IoU nan and is left out of mIoU.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        *,
        mode: str = "multilabel",
        threshold: float = 0.5,
        ignore_index: int | None = 255,
    ) -> None:
        if mode not in ("multilabel", "multiclass"):
            raise ValueError(f"SegmentationIoU: mode expected 'multilabel' or 'multiclass', found {mode!r}")
        if not class_names:
            raise ValueError("SegmentationIoU: class_names is empty")
        self.class_names = list(class_names)
        self.mode = mode
        self.threshold = float(threshold)
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        """Zero the accumulated counts."""
        self.intersection = np.zeros(len(self.class_names), dtype=np.int64)
        self.union = np.zeros(len(self.class_names), dtype=np.int64)

    def update(self, pred: Any, gt: Any, valid_mask: Any = None) -> None:
        """Add one batch; optional ``valid_mask`` (..., H, W) bool restricts the pixels counted (e.g. camera view)."""
        pred, gt = np.asarray(pred), np.asarray(gt)
        if self.mode == "multilabel":
            self._update_multilabel(pred, gt, valid_mask)
        else:
            self._update_multiclass(pred, gt, valid_mask)

    def _update_multilabel(self, pred: np.ndarray, gt: np.ndarray, valid_mask: Any) -> None:
        """Binary channels: (..., C, H, W)."""
        num_classes = len(self.class_names)
        if pred.shape != gt.shape or pred.ndim < 3 or pred.shape[-3] != num_classes:
            raise ValueError(
                f"SegmentationIoU.update: multilabel pred and gt expected the same shape "
                f"(..., {num_classes}, H, W), found pred {pred.shape}, gt {gt.shape}"
            )
        pred_on = pred >= self.threshold if np.issubdtype(pred.dtype, np.floating) else pred != 0
        gt_on = gt != 0
        if valid_mask is not None:
            valid = np.broadcast_to(np.asarray(valid_mask, dtype=bool)[..., None, :, :], pred.shape)
            pred_on, gt_on = pred_on & valid, gt_on & valid
        axes = tuple(i for i in range(pred.ndim) if i != pred.ndim - 3)
        self.intersection += np.count_nonzero(pred_on & gt_on, axis=axes)
        self.union += np.count_nonzero(pred_on | gt_on, axis=axes)

    def _update_multiclass(self, pred: np.ndarray, gt: np.ndarray, valid_mask: Any) -> None:
        """Exclusive class maps: (..., H, W) ints (pred may be (..., C, H, W) scores)."""
        num_classes = len(self.class_names)
        if np.issubdtype(pred.dtype, np.floating) and pred.ndim == gt.ndim + 1:
            pred = np.argmax(pred, axis=-3)
        if pred.shape != gt.shape:
            raise ValueError(
                f"SegmentationIoU.update: multiclass pred and gt expected the same shape (..., H, W), "
                f"found pred {pred.shape}, gt {gt.shape}"
            )
        valid = np.ones(gt.shape, dtype=bool)
        if valid_mask is not None:
            valid = np.broadcast_to(np.asarray(valid_mask, dtype=bool), gt.shape)
        if self.ignore_index is not None:
            valid = valid & (gt != self.ignore_index)
        gt_valid, pred_valid = gt[valid].astype(np.int64), pred[valid].astype(np.int64)
        bad = (gt_valid < 0) | (gt_valid >= num_classes)
        if bad.any():
            raise ValueError(
                f"SegmentationIoU.update: gt class ids expected in [0, {num_classes}) or ignore_index "
                f"{self.ignore_index}, found {np.unique(gt_valid[bad])[:5].tolist()}"
            )
        pred_in = (pred_valid >= 0) & (pred_valid < num_classes)
        both = pred_in & (pred_valid == gt_valid)
        inter = np.bincount(gt_valid[both], minlength=num_classes)
        gt_count = np.bincount(gt_valid, minlength=num_classes)
        pred_count = np.bincount(pred_valid[pred_in], minlength=num_classes)
        self.intersection += inter
        self.union += gt_count + pred_count - inter

    def compute(self) -> dict[str, float]:
        """``{class_name: IoU, ..., "mIoU": mean over classes with a non-empty union}`` (nan where undefined)."""
        result: dict[str, float] = {}
        for name, inter, union in zip(self.class_names, self.intersection, self.union):
            result[name] = float(inter / union) if union > 0 else math.nan
        defined = [v for v in result.values() if not math.isnan(v)]
        result["mIoU"] = float(np.mean(defined)) if defined else math.nan
        return result
