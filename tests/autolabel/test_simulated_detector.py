"""The simulated detector on ground truth (autolabel.teachers.simulated): errors as specified, deterministic."""

from __future__ import annotations

import numpy as np

from autolabel.teachers.simulated import DetectorNoise, sequence_seed, simulate_detections
from perception.labels import Boxes2D


def _truth(frames: int = 200) -> list[Boxes2D]:
    """Two objects: one fully visible and tall, one mostly hidden (visibility 0.2)."""
    return [
        Boxes2D(
            xyxy=np.array([[10.0 + f * 0.5, 20, 40 + f * 0.5, 100], [150, 30, 170, 90]]),
            class_id=[0, 1],
            track_id=[7, 8],
            visibility=[1.0, 0.2],
        )
        for f in range(frames)
    ]


def test_perfect_noise_returns_the_ground_truth() -> None:
    truth = _truth(20)
    out = simulate_detections(truth, (320, 200), DetectorNoise.perfect(), np.random.default_rng(0), num_classes=2)
    for boxes, detected in zip(truth, out):
        np.testing.assert_allclose(detected.xyxy, boxes.xyxy)
        assert detected.class_id.tolist() == [0, 1]


def test_misses_follow_visibility_and_clutter_appears() -> None:
    truth = _truth()
    noise = DetectorNoise(clutter_sites=0.0, duplicate_rate=0.0, false_positives_per_frame=0.5)
    out = simulate_detections(truth, (320, 200), noise, np.random.default_rng(1), num_classes=2)
    found = {7: 0, 8: 0}
    clutter = 0
    for boxes, detected in zip(truth, out):
        for track, xyxy in zip(boxes.track_id, boxes.xyxy):
            iou_hit = np.any(np.all(np.abs(detected.xyxy - xyxy) < 0.5 * (xyxy[3] - xyxy[1]), axis=1))
            found[int(track)] += bool(iou_hit)
        clutter += len(detected)
    visible_rate, hidden_rate = found[7] / len(truth), found[8] / len(truth)
    assert 0.75 < visible_rate <= 0.95  # recall 0.9 with bursts of misses
    assert hidden_rate < 0.35 * visible_rate  # visibility 0.2: a quarter of the way up the ramp
    assert clutter - found[7] - found[8] > 0.3 * len(truth)  # about 0.5 clutter boxes per frame
    again = simulate_detections(truth, (320, 200), noise, np.random.default_rng(1), num_classes=2)
    assert all(np.array_equal(a.xyxy, b.xyxy) for a, b in zip(out, again))  # seeded: reproducible
    assert sequence_seed(0, "clip_0000", "front") == sequence_seed(0, "clip_0000", "front")
    assert sequence_seed(0, "clip_0000", "front") != sequence_seed(0, "clip_0000", "back")
