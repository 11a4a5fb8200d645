"""The one 2D box container (``perception.labels.Boxes2D``) and the one box IoU (``perception.geometry.box_iou``)."""

import numpy as np
import pytest

from perception.geometry import box_iou, cxcywh_to_xyxy, xyxy_to_cxcywh
from perception.labels import Boxes2D


def _dets(n: int = 4) -> Boxes2D:
    xyxy = np.array([[i * 10, 0, i * 10 + 5, 8] for i in range(n)], dtype=float)
    return Boxes2D(xyxy=xyxy, score=np.linspace(0.1, 0.9, n), class_id=np.arange(n) % 2, frame=np.arange(n))


def test_defaults_and_validation():
    d = Boxes2D(xyxy=np.zeros((2, 4)), score=[0.5, 0.6], class_id=[0, 1])
    assert d.track_id.tolist() == [-1, -1] and d.frame.tolist() == [-1, -1]
    assert np.isnan(d.uncertainty).all() and d.embedding is None
    with pytest.raises(ValueError, match="score"):
        Boxes2D(xyxy=np.zeros((2, 4)), score=[0.5], class_id=[0, 1])
    with pytest.raises(ValueError, match="embedding"):
        Boxes2D(xyxy=np.zeros((2, 4)), score=[0.5, 0.5], class_id=[0, 1], embedding=np.zeros((3, 8)))
    with pytest.raises(ValueError, match="finite"):
        Boxes2D(xyxy=[[0, 0, np.nan, 1]], score=[0.5], class_id=[0])


def test_mask_index_concat_split():
    d = _dets(4).with_fields(embedding=np.eye(4, 3))
    high = d[d.score > 0.5]
    assert len(high) == 2 and high.embedding.shape == (2, 3)
    assert d[np.array([3, 0])].frame.tolist() == [3, 0]
    assert len(d[1]) == 1
    both = Boxes2D.concat([d, high])
    assert len(both) == 6 and both.embedding.shape == (6, 3)
    without = Boxes2D.concat([d, Boxes2D.empty()])
    assert len(without) == 4 and without.embedding is not None
    mixed = Boxes2D.concat([d, _dets(2)])
    assert mixed.embedding is None
    per_frame = d.split_by_frame(5)
    assert [len(p) for p in per_frame] == [1, 1, 1, 1, 0]
    with pytest.raises(TypeError, match="unknown"):
        d.with_fields(boxes=None)


def test_box_helpers():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0.0]])
    np.testing.assert_allclose(cxcywh_to_xyxy(xyxy_to_cxcywh(b)), b)


def test_image_size_clipping_and_what_a_labels_file_keeps():
    boxes = Boxes2D(
        xyxy=[[-5, 10, 30, 20], [90, 40, 130, 70], [98, 0, 120, 5]],
        score=[0.9, 0.8, 0.7],
        frame=[3, 3, 3],
        uncertainty=[0.1, 0.2, 0.3],
        embedding=np.ones((3, 2)),
        image_size=(100, 60),
    )
    clipped = boxes.clipped(min_size=3.0)  # the third box is 2 px wide inside the image: dropped
    np.testing.assert_allclose(clipped.xyxy, [[0, 10, 30, 20], [90, 40, 100, 60]])
    assert clipped.image_size == (100, 60) and clipped.frame.tolist() == [3, 3] and clipped.embedding.shape == (2, 2)
    assert boxes[boxes.score > 0.75].image_size == (100, 60)
    saved = boxes.to_dict()
    assert set(saved) == {"xyxy", "class_id", "score", "track_id", "visibility", "truncation"}
    restored = Boxes2D.from_dict(saved)
    np.testing.assert_allclose(restored.xyxy, boxes.xyxy)
    assert restored.frame.tolist() == [-1, -1, -1] and restored.image_size is None
    with pytest.raises(ValueError, match="image_size"):
        Boxes2D(xyxy=np.zeros((0, 4))).clipped()
    with pytest.raises(ValueError, match="image_size"):
        Boxes2D(xyxy=np.zeros((0, 4)), image_size=(0, 10))
    assert Boxes2D.concat([boxes, Boxes2D.empty(image_size=(100, 60))]).image_size == (100, 60)
    assert Boxes2D.concat([boxes, Boxes2D.empty(image_size=(50, 60))]).image_size is None


def test_box_iou_degenerate_and_crowd_columns():
    a = np.array([[0, 0, 10, 10], [5, 5, 5, 9]], float)  # the second box has zero width
    b = np.array([[0, 0, 10, 10], [0, 0, 20, 20]], float)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 0.25], [0.0, 0.0]])
    np.testing.assert_allclose(box_iou(a, b, b_iscrowd=[False, True]), [[1.0, 1.0], [0.0, 0.0]])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 2)
    with pytest.raises(ValueError, match="b_iscrowd"):
        box_iou(a, b, b_iscrowd=[True])
