import numpy as np
import pytest

from autolabel.detections import Detections, box_iou, cxcywh_to_xyxy, xyxy_to_cxcywh


def _dets(n: int = 4) -> Detections:
    xyxy = np.array([[i * 10, 0, i * 10 + 5, 8] for i in range(n)], dtype=float)
    return Detections(xyxy=xyxy, score=np.linspace(0.1, 0.9, n), class_id=np.arange(n) % 2, frame=np.arange(n))


def test_defaults_and_validation():
    d = Detections(np.zeros((2, 4)), [0.5, 0.6], [0, 1])
    assert d.track_id.tolist() == [-1, -1] and d.frame.tolist() == [-1, -1]
    assert np.isnan(d.uncertainty).all() and d.embedding is None
    with pytest.raises(ValueError, match="score"):
        Detections(np.zeros((2, 4)), [0.5], [0, 1])
    with pytest.raises(ValueError, match="embedding"):
        Detections(np.zeros((2, 4)), [0.5, 0.5], [0, 1], embedding=np.zeros((3, 8)))
    with pytest.raises(ValueError, match="finite"):
        Detections([[0, 0, np.nan, 1]], [0.5], [0])


def test_mask_index_concat_split():
    d = _dets(4).with_fields(embedding=np.eye(4, 3))
    high = d[d.score > 0.5]
    assert len(high) == 2 and high.embedding.shape == (2, 3)
    assert d[np.array([3, 0])].frame.tolist() == [3, 0]
    assert len(d[1]) == 1
    both = Detections.concat([d, high])
    assert len(both) == 6 and both.embedding.shape == (6, 3)
    without = Detections.concat([d, Detections.empty()])
    assert len(without) == 4 and without.embedding is not None
    mixed = Detections.concat([d, _dets(2)])
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
