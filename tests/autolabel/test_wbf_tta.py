from collections.abc import Sequence

import numpy as np
import pytest

from autolabel.teachers.base import Teacher
from autolabel.tta import FlipTeacher, ScaledTeacher, TTATeacher
from autolabel.wbf import EnsembleTeacher, weighted_boxes_fusion
from perception.labels import Boxes2D


def test_wbf_fuses_overlapping_and_keeps_separate():
    a = Boxes2D(xyxy=[[10, 10, 50, 90], [200, 200, 220, 240]], score=[0.9, 0.6], class_id=[0, 0])
    b = Boxes2D(xyxy=[[14, 10, 54, 90]], score=[0.3], class_id=[0])
    fused = weighted_boxes_fusion([a, b], iou_threshold=0.55)
    assert len(fused) == 2
    main = fused[np.argmax(fused.score)]
    # score-weighted coordinates: x1 = (10*0.9 + 14*0.3) / 1.2 = 11
    np.testing.assert_allclose(main.xyxy[0], [11, 10, 51, 90], atol=1e-9)
    assert main.score[0] == pytest.approx((0.9 + 0.3) / 2)
    lone = fused[np.argmin(fused.score)]
    assert lone.score[0] == pytest.approx(0.3)  # one of two models saw it
    assert lone.uncertainty[0] == pytest.approx(0.5) and main.uncertainty[0] < 0.2


def test_wbf_respects_classes_and_weights():
    a = Boxes2D(xyxy=[[0, 0, 10, 10]], score=[0.8], class_id=[0])
    b = Boxes2D(xyxy=[[0, 0, 10, 10]], score=[0.8], class_id=[1])
    assert len(weighted_boxes_fusion([a, b])) == 2
    fused = weighted_boxes_fusion([a, Boxes2D(xyxy=[[0, 0, 10, 10]], score=[0.4], class_id=[0])], weights=[3, 1])
    assert len(fused) == 1 and fused.score[0] == pytest.approx((3 * 0.8 + 0.4) / 4)
    assert fused.uncertainty[0] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="weights"):
        weighted_boxes_fusion([a, b], weights=[1.0])


class BrightSquareTeacher(Teacher):
    """Finds the bounding box of pixels > 200 (a toy detector)."""

    class_names = ["thing"]

    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Boxes2D]:
        out = []
        for frame in frames:
            ys, xs = np.nonzero(frame[..., 0] > 200)
            out.append(Boxes2D(xyxy=[[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], score=[0.9], class_id=[0]))
        return out


def test_flip_scale_and_tta_map_back_to_original_pixels():
    frame = np.zeros((60, 100, 3), np.uint8)
    frame[10:30, 20:40] = 255
    teacher = BrightSquareTeacher()
    expected = [20, 10, 40, 30]
    np.testing.assert_allclose(FlipTeacher(teacher).predict(frame).xyxy[0], expected)
    np.testing.assert_allclose(ScaledTeacher(teacher, 2.0).predict(frame).xyxy[0], expected, atol=1.0)
    tta = TTATeacher(teacher, flip=True, scales=(1.0, 0.5))
    assert len(tta.views) == 4
    fused = tta.predict(frame)
    assert len(fused) == 1 and fused.uncertainty[0] < 0.1
    np.testing.assert_allclose(fused.xyxy[0], expected, atol=2.0)
    ensemble = EnsembleTeacher([teacher, FlipTeacher(teacher)])
    assert len(ensemble.predict(frame)) == 1
