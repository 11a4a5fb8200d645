import cv2
import numpy as np

from autolabel.tracking import ByteTracker, CameraMotionEstimator, KalmanBoxFilter, match, run_tracker
from perception.labels import Boxes2D


def test_kalman_predict_update_sanity():
    kf = KalmanBoxFilter()
    mean, cov = kf.initiate(np.array([[100.0, 50.0, 20.0, 40.0]]))
    for step in range(1, 15):  # object moving +3 px/frame in x
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, np.array([[100.0 + 3 * step, 50.0, 20.0, 40.0]]))
    assert abs(mean[0, 4] - 3.0) < 0.3 and abs(mean[0, 0] - 142.0) < 1.0
    predicted, predicted_cov = kf.predict(mean.copy(), cov.copy())
    assert abs(predicted[0, 0] - (mean[0, 0] + mean[0, 4])) < 1e-9
    assert np.trace(predicted_cov[0]) > np.trace(cov[0])  # uncertainty grows without measurements
    _updated, updated_cov = kf.update(predicted, predicted_cov, predicted[:, :4])
    assert np.trace(updated_cov[0]) < np.trace(predicted_cov[0])


def test_match_threshold():
    cost = np.array([[0.1, 0.9], [0.8, 0.95]])
    pairs, rows, cols = match(cost, 0.5)
    assert pairs.tolist() == [[0, 0]] and rows.tolist() == [1] and cols.tolist() == [1]


def _crossing(num_frames: int = 40, low_from: int = 18, low_to: int = 22) -> list[Boxes2D]:
    per_frame = []
    for f in range(num_frames):
        a = [10 + 5 * f, 100, 40 + 5 * f, 180]
        b = [210 - 5 * f, 104, 240 - 5 * f, 184]
        score_b = 0.3 if low_from <= f < low_to else 0.8  # partly occluded while crossing: low score
        per_frame.append(Boxes2D(xyxy=[a, b], score=[0.9, score_b], class_id=[0, 0]))
    return per_frame


def test_crossing_keeps_ids_and_uses_low_scores():
    tracklets = run_tracker(_crossing(), tracker=ByteTracker())
    assert len(tracklets) == 2
    for tracklet in tracklets:
        assert len(tracklet) == 40
        dx = np.diff(tracklet.xyxy[:, 0])
        assert np.all(dx == dx[0])  # never swapped onto the other object


def test_tracker_output_and_death():
    tracker = ByteTracker(max_lost_frames=3)
    box = Boxes2D(xyxy=[[0, 0, 10, 20]], score=[0.9], class_id=[0])
    first = tracker.update(box)
    assert first.track_id.tolist() == [1]
    for _ in range(5):
        tracker.update(Boxes2D.empty())
    again = tracker.update(box)
    assert again.track_id.tolist() == []  # old track died, new one is tentative
    assert tracker.update(box).track_id.tolist() == [2]


def _textured(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (60, 80), dtype=np.uint8)
    return cv2.resize(small, (640, 480), interpolation=cv2.INTER_LINEAR)


def test_camera_motion_estimate_and_tracking_under_pan():
    texture = _textured()
    shift = 12.0
    estimator = CameraMotionEstimator()
    frames, per_frame = [], []
    for f in range(12):
        pan = np.float32([[1, 0, -shift * f], [0, 1, 0]])  # camera pans right: scene moves left
        frame = cv2.warpAffine(texture, pan, (640, 480), borderMode=cv2.BORDER_REFLECT)
        frames.append(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        x = 300 - shift * f  # a static object in the world, small box: the pan exceeds its width quickly
        seen = f % 3 != 0  # missed every third frame
        per_frame.append(Boxes2D(xyxy=[[x, 200, x + 10, 230]], score=[0.9], class_id=[0]) if seen else Boxes2D.empty())
    warps = [estimator.update(frame) for frame in frames]
    assert abs(warps[5][0, 2] + shift) < 1.0 and abs(warps[5][1, 2]) < 1.0
    with_cmc = run_tracker(per_frame, tracker=ByteTracker(), warps=warps)
    without = run_tracker(per_frame, tracker=ByteTracker())
    assert len(with_cmc) == 1 and len(with_cmc[0]) == 8
    assert len(without) != 1 or len(without[0]) < 8  # without compensation the gaps break the track
