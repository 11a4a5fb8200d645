"""benchmarks/bench_mot15_loso.py --calibrate: every track-score threshold scored from one chain run per setting."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from clip_factory import load_benchmark

from autolabel.calibrate import TRACK_SCORE_CANDIDATES
from autolabel.offline import OfflineLabelConfig
from perception.labels import Boxes2D


def _source(bench, work: Path):
    """One 40-frame sequence: two people detected at 0.9 and a persistent clutter box at 0.72-0.78 that no ground
    truth explains (a detector's false positive the track-score threshold should remove)."""
    detections, gt_rows = [], []
    for f in range(40):
        people = np.array([[10.0 + 2 * f, 40, 40 + 2 * f, 120], [300.0 - f, 60, 330 - f, 140]])
        clutter = np.array([[200.0, 10, 230, 70]])
        detections.append(
            Boxes2D(
                xyxy=np.vstack([people, clutter]), score=[0.9, 0.9, 0.72 + 0.06 * (f % 2)], class_id=[0, 0, 0],
                frame=[f] * 3,
            )
        )  # fmt: skip
        gt_rows += [[f, k + 1, *people[k], 0.0] for k in range(2)]
    gt = np.asarray(gt_rows)
    root = work / "gt" / "toy"
    bench.write_gt(root, "toy", gt, 40, 10.0)
    sequence = bench.Seq("toy", 40, 10.0, detections, cues=(detections, None))
    return bench.Source("toy", "MOT17", root, ("pedestrian",), [sequence], {"toy": gt})


def test_each_threshold_scores_as_a_run_with_that_min_track_score(tmp_path: Path) -> None:
    pytest.importorskip("trackeval")
    bench = load_benchmark("bench_mot15_loso")
    source = _source(bench, tmp_path)
    base = OfflineLabelConfig(camera_motion=False, appearance=False)
    configs = [{}, {"link_max_cost": 0.5}]
    calibrated = bench.grid_table(source, configs, base, tmp_path, TRACK_SCORE_CANDIDATES)
    assert [sorted(per) for per in calibrated] == [list(TRACK_SCORE_CANDIDATES)] * 2
    for threshold in (0.3, 0.8):
        direct = bench.grid_table(source, configs, dataclasses.replace(base, min_track_score=threshold), tmp_path, None)
        for index in range(len(configs)):
            assert calibrated[index][threshold] == direct[index][threshold]
    low, high = calibrated[0][0.3], calibrated[0][0.8]
    assert low["FP"] == 40 and high["FP"] == 0 and high["MOTA"] > low["MOTA"]  # the clutter track and only it dropped
    assert high["FN"] == low["FN"] == 0
