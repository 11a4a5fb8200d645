"""Streaming segmentation IoU: hand-computed values, both input modes, streaming == one-shot."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perception.metrics import SegmentationIoU


def test_multilabel_hand_computed() -> None:
    """Channel 0: pred 2 px, gt 3 px, overlap 2 -> 2/3. Channel 1: pred 1 px, gt 0 px -> 0."""
    gt = np.zeros((2, 2, 3), np.uint8)
    gt[0, 0, :] = 1
    pred = np.zeros((2, 2, 3), np.float32)
    pred[0, 0, :2] = 0.9
    pred[0, 0, 2] = 0.4  # below threshold 0.5
    pred[1, 1, 1] = 0.5  # exactly at threshold counts as positive
    iou = SegmentationIoU(["drivable", "lane"])
    iou.update(pred, gt)
    result = iou.compute()
    assert result["drivable"] == pytest.approx(2 / 3)
    assert result["lane"] == 0.0
    assert result["mIoU"] == pytest.approx(1 / 3)


def test_streaming_equals_one_shot_and_batches() -> None:
    rng = np.random.default_rng(0)
    pred = rng.random((6, 2, 16, 16))
    gt = (rng.random((6, 2, 16, 16)) > 0.6).astype(np.uint8)
    streaming, one_shot = SegmentationIoU(["a", "b"]), SegmentationIoU(["a", "b"])
    for i in range(6):
        streaming.update(pred[i], gt[i])
    one_shot.update(pred, gt)
    assert streaming.compute() == one_shot.compute()
    on = pred[:, 0] >= 0.5
    expected = (on & (gt[:, 0] == 1)).sum() / (on | (gt[:, 0] == 1)).sum()
    assert streaming.compute()["a"] == pytest.approx(expected)


def test_multiclass_maps_with_ignore_and_absent_class() -> None:
    gt = np.array([[0, 0, 1], [1, 255, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    iou = SegmentationIoU(["road", "lane", "car", "bus"], mode="multiclass")
    iou.update(pred, gt)
    result = iou.compute()
    # road: inter 1 (0,0); union gt{(0,0),(0,1)} + pred{(0,0),(1,2)} -> 3 ; lane: inter 2, union 3 ; car: 0 / 1 (pixel
    # (1,1) is ignored so its pred 2 does not count) ; bus: never present -> nan, left out of the mean.
    assert result["road"] == pytest.approx(1 / 3)
    assert result["lane"] == pytest.approx(2 / 3)
    assert result["car"] == 0.0
    assert math.isnan(result["bus"])
    assert result["mIoU"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)


def test_multiclass_scores_are_argmaxed() -> None:
    gt = np.array([[0, 1]])
    scores = np.zeros((2, 1, 2), np.float32)
    scores[0, 0, 0] = 1.0
    scores[1, 0, 1] = 1.0
    iou = SegmentationIoU(["a", "b"], mode="multiclass")
    iou.update(scores, gt)
    assert iou.compute()["mIoU"] == 1.0


def test_valid_mask_and_shape_error() -> None:
    gt = np.ones((1, 2, 2), np.uint8)
    pred = np.zeros((1, 2, 2), bool)
    pred[0, 0, 0] = True
    iou = SegmentationIoU(["drivable"])
    iou.update(pred, gt, valid_mask=np.array([[True, False], [False, False]]))
    assert iou.compute()["drivable"] == 1.0
    with pytest.raises(ValueError, match="multilabel"):
        iou.update(np.zeros((3, 2, 2)), np.zeros((3, 2, 2)))
