"""nuScenes-style BEV detection metrics: exact hand-computed cases, thresholds, edge cases, devkit cross-check."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from perception.metrics import BevDetectionEvaluator, aligned_iou, yaw_difference

CLASSES = ["car", "pedestrian", "barrier", "traffic_cone"]


def boxes(center, class_id, score=None, size=None, yaw=None, velocity=None) -> dict:
    """Dict-form box table (the evaluator also accepts perception.labels.Boxes3D)."""
    center = np.asarray(center, float).reshape(-1, 3)
    n = len(center)
    return {
        "center": center,
        "class_id": np.asarray(class_id, int).reshape(n),
        "size": np.tile([4.0, 2.0, 1.5], (n, 1)) if size is None else np.asarray(size, float).reshape(n, 3),
        "yaw": np.zeros(n) if yaw is None else np.asarray(yaw, float).reshape(n),
        "velocity": np.zeros((n, 2)) if velocity is None else np.asarray(velocity, float).reshape(n, 2),
        "score": np.ones(n) if score is None else np.asarray(score, float).reshape(n),
    }


def random_scene(seed: int, frames: int = 5) -> list[tuple[dict, dict]]:
    """Seeded GT scenes with all four classes."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(frames):
        n = 8
        gt = boxes(
            np.c_[rng.uniform(-30, 30, (n, 2)), np.ones(n)],
            rng.integers(0, 4, n),
            size=rng.uniform(0.5, 5, (n, 3)),
            yaw=rng.uniform(-3, 3, n),
            velocity=rng.normal(0, 2, (n, 2)),
        )
        out.append((gt, gt))
    return out


def test_perfect_predictions() -> None:
    evaluator = BevDetectionEvaluator(CLASSES)
    for pred, gt in random_scene(0):
        evaluator.add_frame(pred, gt)
    result = evaluator.compute()
    assert result["mAP"] == pytest.approx(1.0)
    for metric in ("mATE", "mASE", "mAOE", "mAVE"):
        assert result[metric] == pytest.approx(0.0, abs=1e-12)
    assert result["NDS"] == pytest.approx(1.0)
    assert math.isnan(result["per_class"]["traffic_cone"]["aoe"])  # devkit: cone orientation/velocity not scored
    json.loads(json.dumps(result))  # plain JSON types (nan allowed)


def test_shift_of_1_5_m_is_tp_only_at_2_and_4_m() -> None:
    """A 1.5 m BEV offset: AP 0 at 0.5 m and 1 m, AP 1 at 2 m and 4 m, mAP 0.5, ATE exactly 1.5 m."""
    evaluator = BevDetectionEvaluator(["car"])
    for i in range(4):
        gt = boxes([[10.0 * i, 5.0, 1.0], [10.0 * i, -5.0, 1.0]], [0, 0])
        pred = boxes([[10.0 * i + 0.9, 5.0 + 1.2, 1.0], [10.0 * i - 1.5, -5.0, 1.0]], [0, 0], score=[0.9, 0.6])
        evaluator.add_frame(pred, gt)
    result = evaluator.compute()
    ap = result["per_class"]["car"]["ap"]
    assert ap["0.5"] == 0.0 and ap["1.0"] == 0.0
    assert ap["2.0"] == pytest.approx(1.0, abs=1e-12) and ap["4.0"] == pytest.approx(1.0, abs=1e-12)
    assert result["mAP"] == pytest.approx(0.5)
    assert result["mATE"] == pytest.approx(1.5)
    assert result["ap_per_threshold"]["2.0"] == pytest.approx(1.0)


def test_hand_computed_ap_three_gt_three_preds() -> None:
    """3 GT, preds (score .9 TP, .8 FP, .7 TP): recall [1/3, 1/3, 2/3], precision [1, 1/2, 2/3].

    Devkit interpolation at r = i/100: p = 1 for r < 1/3; p = 1/2 + (r - 1/3)/2 on (1/3, 2/3); 0 beyond 2/3.
    AP = sum_{i=11..100} max(p_i - 0.1, 0) / 90 / 0.9, with i=11..33 -> 23 * 0.9 = 20.7,
    i=34..66 -> 33 * 0.4 + 0.5 * (sum(i)/100 - 33/3) = 13.2 + 0.5 * (16.5 - 11) = 15.95, i >= 67 -> 0:
    AP = 36.65 / 81 = 0.452469...
    """
    evaluator = BevDetectionEvaluator(["car"], distance_thresholds=(1.0,), tp_threshold=1.0)
    gt = boxes([[0, 0, 0], [20, 0, 0], [40, 0, 0]], [0, 0, 0])
    pred = boxes([[0.1, 0, 0], [10, 10, 0], [20, 0.3, 0]], [0, 0, 0], score=[0.9, 0.8, 0.7])
    evaluator.add_frame(pred, gt)
    result = evaluator.compute()
    assert result["per_class"]["car"]["ap"]["1.0"] == pytest.approx(36.65 / 81, abs=1e-12)
    # ATE (devkit cumulative mean): TP errors [0.1, 0.3] at scores [.9, .7] -> running mean [0.1, 0.2].
    # confidence(r) = .9 for r < 1/3, .8 - .3 (r - 1/3) on (1/3, 2/3), 0 beyond (last reached index 66);
    # error(c) interpolates the running mean in score: .2 - .5 (c - .7), i.e. .15 + .15 (r - 1/3) on (1/3, 2/3).
    # Mean over i = 11..66 (56 points): 23 * 0.1 + [33 * .15 + .15 * (16.5 - 11)] = 2.3 + 5.775 = 8.075.
    assert result["per_class"]["car"]["ate"] == pytest.approx(8.075 / 56, abs=1e-12)


def test_missing_class_is_nan_and_excluded_and_unpredicted_class_scores_zero() -> None:
    evaluator = BevDetectionEvaluator(["car", "pedestrian", "bus"])
    gt = boxes([[5, 0, 0], [8, 3, 0]], [0, 1])
    pred = boxes([[5, 0, 0], [30, 0, 0]], [0, 2], score=[0.9, 0.5])  # car perfect, no pedestrian pred, bus has no GT
    evaluator.add_frame(pred, gt)
    result = evaluator.compute()
    bus = result["per_class"]["bus"]
    assert all(math.isnan(v) for v in bus["ap"].values()) and math.isnan(bus["ate"]) and bus["num_gt"] == 0
    assert result["per_class"]["pedestrian"]["mean_ap"] == 0.0
    assert result["per_class"]["pedestrian"]["ate"] == 1.0  # devkit: recall never above 10 % -> error 1
    assert result["mAP"] == pytest.approx(0.5)


def test_max_range_filters_gt_and_predictions() -> None:
    gt = boxes([[10, 0, 0], [60, 0, 0]], [0, 0])
    pred = boxes([[10, 0, 0], [70, 0, 0]], [0, 0])  # the far pred is a FP, the far GT is missed, without range
    unfiltered, filtered = BevDetectionEvaluator(["car"]), BevDetectionEvaluator(["car"], max_range=50.0)
    for evaluator in (unfiltered, filtered):
        evaluator.add_frame(pred, gt)
    assert filtered.compute()["mAP"] == pytest.approx(1.0)
    assert unfiltered.compute()["mAP"] < 0.5
    per_class = BevDetectionEvaluator(["car"], max_range={"car": 80.0})
    per_class.add_frame(pred, gt)
    assert per_class.compute()["per_class"]["car"]["num_gt"] == 2


def test_greedy_matching_goes_by_score_over_frames() -> None:
    """Higher-score pred takes the nearest GT first, even when it lies further than the other pred."""
    evaluator = BevDetectionEvaluator(["car"], distance_thresholds=(2.0,))
    gt = boxes([[0, 0, 0]], [0])
    pred = boxes([[1.5, 0, 0], [0.1, 0, 0]], [0, 0], score=[0.9, 0.4])
    evaluator.add_frame(pred, gt)
    result = evaluator.compute()
    assert result["per_class"]["car"]["num_tp"] == 1
    assert result["per_class"]["car"]["ate"] == pytest.approx(1.5)


def test_tp_error_helpers() -> None:
    assert aligned_iou(np.array([4.0, 2.0, 1.0]), np.array([2.0, 2.0, 1.0])) == pytest.approx(0.5)
    assert yaw_difference(0.1, -0.1) == pytest.approx(0.2)
    assert yaw_difference(3.1, -3.1) == pytest.approx(2 * np.pi - 6.2)
    assert yaw_difference(np.pi, 0.0, period=np.pi) == pytest.approx(0.0)


def test_barrier_orientation_period_is_pi() -> None:
    evaluator = BevDetectionEvaluator(["car", "barrier"])
    gt = boxes([[0, 0, 0], [10, 0, 0]], [0, 1], yaw=[0.0, 0.0])
    pred = boxes([[0, 0, 0], [10, 0, 0]], [0, 1], yaw=[np.pi, np.pi])
    evaluator.add_frame(pred, gt)
    result = evaluator.compute()
    assert result["per_class"]["car"]["aoe"] == pytest.approx(np.pi)
    assert result["per_class"]["barrier"]["aoe"] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(result["per_class"]["barrier"]["ave"])


def test_accepts_boxes3d() -> None:
    labels = pytest.importorskip("perception.labels")
    gt = labels.Boxes3D(
        center=np.array([[5.0, 1.0, 0.5]]),
        size=np.array([[4.0, 2.0, 1.5]]),
        yaw=np.array([0.2]),
        velocity=np.array([[1.0, 0.0]]),
        class_id=np.array([0]),
        score=np.array([1.0], np.float32),
    )
    evaluator = BevDetectionEvaluator(["car"])
    evaluator.add_frame(gt, gt)
    assert evaluator.compute()["mAP"] == pytest.approx(1.0)


def test_missing_field_error_names_field() -> None:
    evaluator = BevDetectionEvaluator(["car"])
    bad = boxes([[0, 0, 0]], [0])
    del bad["velocity"]
    with pytest.raises(ValueError, match="velocity"):
        evaluator.add_frame(bad, boxes([[0, 0, 0]], [0]))


def test_equals_nuscenes_devkit_when_installed() -> None:
    """Per-class AP at every threshold and TP errors equal nuscenes-devkit's accumulate/calc_ap/calc_tp."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):  # 'make install' puts the devkit in: CI must run this
        import nuscenes.eval.detection.algo as algo
    else:
        algo = pytest.importorskip("nuscenes.eval.detection.algo", reason="nuscenes-devkit absent (make install)")
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.common.utils import center_distance
    from nuscenes.eval.detection.data_classes import DetectionBox
    from pyquaternion import Quaternion

    rng = np.random.default_rng(4)
    frames = []
    for _ in range(20):
        n = int(rng.integers(0, 10))
        gt = boxes(
            np.c_[rng.uniform(-40, 40, (n, 2)), np.ones(n)],
            rng.integers(0, 4, n),
            size=rng.uniform(0.5, 5, (n, 3)),
            yaw=rng.uniform(-3, 3, n),
            velocity=rng.normal(0, 3, (n, 2)),
        )
        keep = rng.random(n) > 0.25
        m, fp = int(keep.sum()), int(rng.integers(0, 5))
        pred = boxes(
            np.r_[gt["center"][keep] + rng.normal(0, 0.8, (m, 3)), rng.uniform(-40, 40, (fp, 3))],
            np.r_[gt["class_id"][keep], rng.integers(0, 4, fp)],
            score=np.round(rng.uniform(0, 1, m + fp), 2),
            size=np.r_[gt["size"][keep] * rng.uniform(0.8, 1.2, (m, 3)), rng.uniform(0.5, 5, (fp, 3))],
            yaw=np.r_[gt["yaw"][keep] + rng.normal(0, 0.3, m), rng.uniform(-3, 3, fp)],
            velocity=np.r_[gt["velocity"][keep] + rng.normal(0, 1, (m, 2)), rng.normal(0, 3, (fp, 2))],
        )
        frames.append((pred, gt))

    def to_eval_boxes(role: int) -> EvalBoxes:
        eval_boxes = EvalBoxes()
        for f, frame in enumerate(frames):
            t = frame[role]
            eval_boxes.add_boxes(
                f"s{f}",
                [
                    DetectionBox(
                        sample_token=f"s{f}",
                        translation=tuple(t["center"][i]),
                        size=(t["size"][i][1], t["size"][i][0], t["size"][i][2]),
                        rotation=tuple(Quaternion(axis=[0, 0, 1], angle=t["yaw"][i]).elements),
                        velocity=tuple(t["velocity"][i]),
                        ego_translation=tuple(t["center"][i]),
                        detection_name=CLASSES[t["class_id"][i]],
                        detection_score=float(t["score"][i]) if role == 0 else -1.0,
                        attribute_name="",
                    )
                    for i in range(len(t["center"]))
                ],
            )
        return eval_boxes

    evaluator = BevDetectionEvaluator(CLASSES)
    for pred, gt in frames:
        evaluator.add_frame(pred, gt)
    result = evaluator.compute()
    preds, gts = to_eval_boxes(0), to_eval_boxes(1)
    for name in CLASSES:
        for threshold in (0.5, 1.0, 2.0, 4.0):
            data = algo.accumulate(gts, preds, name, center_distance, threshold)
            expected = algo.calc_ap(data, 0.1, 0.1)
            assert result["per_class"][name]["ap"][str(threshold)] == pytest.approx(expected, abs=1e-12)
        data = algo.accumulate(gts, preds, name, center_distance, 2.0)
        for ours, theirs in (("ate", "trans_err"), ("ase", "scale_err"), ("aoe", "orient_err"), ("ave", "vel_err")):
            if not math.isnan(result["per_class"][name][ours]):
                assert result["per_class"][name][ours] == pytest.approx(algo.calc_tp(data, 0.1, theirs), abs=1e-12)
