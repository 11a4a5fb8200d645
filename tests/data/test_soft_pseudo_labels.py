"""Soft pseudo-labels: each pseudo box is a target weighted by the probability that it is real (its quality),
from its score or from the precision-vs-score curve ``autolabel calibrate`` measured on a labelled split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from clip_factory import make_pseudo_split, tiny_spec

from autolabel.cli import main as autolabel_main
from perception.data.datamodule import ClipDataModule
from perception.data.quality import ScoreQuality
from perception.errors import InputError
from perception.labels import DRIVING_CLASSES, Boxes3D, ClipLabels, FrameLabels, make_provenance
from perception.metrics.bev_detection import BevDetectionEvaluator, isotonic_knots
from perception.models.losses import focal_heatmap_loss
from perception.models.targets import encode_bev_targets

CAR, PEDESTRIAN = DRIVING_CLASSES.index("car"), DRIVING_CLASSES.index("pedestrian")
GRID = {"x_min": -8.0, "x_max": 8.0, "y_min": -8.0, "y_max": 8.0, "resolution": 1.0}


def _targets(quality=None, centres=((0.5, 0.5), (-4.5, -4.5))) -> dict[str, np.ndarray]:
    count = len(centres)
    return encode_bev_targets(
        center=np.column_stack([np.asarray(centres), np.zeros(count)]),
        size=np.tile([4.0, 2.0, 1.5], (count, 1)),
        yaw=np.zeros(count),
        velocity=np.zeros((count, 2)),
        class_id=np.zeros(count, np.int64),
        num_classes=2,
        grid=GRID,
        quality=quality,
    )


def test_quality_targets_carry_each_box_weight_and_ones_change_nothing() -> None:
    hard, ones, soft = _targets(), _targets(np.ones(2)), _targets(np.array([0.3, 0.8]))
    assert "heatmap_quality" not in hard
    for key in hard:
        np.testing.assert_array_equal(hard[key], ones[key])
        if key not in ("reg_mask", "velocity_mask"):
            np.testing.assert_array_equal(hard[key], soft[key])  # the gaussians themselves are unchanged
    quality = soft["heatmap_quality"][0]
    assert quality[7, 7] == pytest.approx(0.3) and quality[12, 12] == pytest.approx(0.8)  # each box's own cells
    assert quality[0, 15] == 1.0 and (soft["heatmap_quality"][1] == 1.0).all()  # elsewhere: 1
    assert soft["reg_mask"][7, 7] == pytest.approx(0.3) and soft["velocity_mask"][12, 12] == pytest.approx(0.8)
    # two boxes' gaussians overlapping: each cell takes the quality of the box nearer to it
    near = _targets(np.array([0.2, 0.9]), centres=((0.5, 0.5), (0.5, -2.5)))["heatmap_quality"][0]
    assert near[7, 7] == pytest.approx(0.2) and near[7, 10] == pytest.approx(0.9)


def test_soft_focal_loss_is_centernet_at_quality_one_and_settles_at_the_quality() -> None:
    target = torch.from_numpy(_targets()["heatmap"])[None]
    logits = torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    ignore = (torch.rand(target.shape, generator=torch.Generator().manual_seed(1)) > 0.8).float()
    plain = focal_heatmap_loss(logits, target, ignore=ignore)
    ones = focal_heatmap_loss(logits, target, ignore=ignore, quality=torch.ones_like(target))
    assert ones.item() == pytest.approx(plain.item(), rel=1e-6)

    peak = torch.ones(1, 1, 1, 1)
    grid = torch.linspace(-6, 6, 1201)

    def best_score(q: float) -> float:  # the score that minimises the loss at a lone peak of quality q
        losses = [focal_heatmap_loss(x.view(1, 1, 1, 1), peak, quality=torch.full_like(peak, q)) for x in grid]
        return torch.sigmoid(grid[int(torch.stack(losses).argmin())]).item()

    optima = [best_score(q) for q in (0.2, 0.5, 0.8)]
    assert optima[1] == pytest.approx(0.5, abs=0.01)  # an even chance of being real: score 0.5
    assert optima[0] < 0.5 < optima[2]  # a likelier box is pushed higher, an unlikely one lower
    # around an unlikely box the background is penalised more than around a certain one
    cell = torch.zeros(1, 1, 1, 1) + 0.5  # a cell on the gaussian's slope, with a confident wrong score
    wrong = torch.full_like(cell, 2.0)
    unlikely = focal_heatmap_loss(wrong, cell, quality=torch.full_like(cell, 0.1))
    certain = focal_heatmap_loss(wrong, cell, quality=torch.ones_like(cell))
    assert unlikely > certain


def test_isotonic_knots_pool_violations_into_a_non_decreasing_curve() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    correct = np.array([0, 1, 0, 0, 1, 1])  # 0.2 right but 0.3 / 0.4 wrong: pooled into one block
    knots, precision = isotonic_knots(scores, correct)
    assert knots == [0.1, 0.3, 0.55] and precision == [0.0, pytest.approx(1 / 3, abs=1e-4), 1.0]
    assert np.all(np.diff(precision) >= 0)
    assert isotonic_knots(np.zeros(0), np.zeros(0)) == ([], [])


def test_score_quality_maps_scores_per_class_with_a_pooled_fallback(tmp_path: Path) -> None:
    classes = list(DRIVING_CLASSES)
    assert ScoreQuality.load(None) is None
    raw = ScoreQuality.load("score")
    np.testing.assert_allclose(raw(classes, np.array([CAR]), np.array([0.7])), [0.7])
    curves = ScoreQuality({"car": ([0.2, 0.6], [0.5, 1.0]), "*": ([0.5], [0.25])})
    quality = curves(classes, np.array([CAR, CAR, CAR, PEDESTRIAN]), np.array([0.1, 0.4, 0.9, 0.9]))
    np.testing.assert_allclose(quality, [0.5, 0.75, 1.0, 0.25])
    ScoreQuality({"car": ([0.5], [1.0])}).check_classes(["car"], "clip x")
    with pytest.raises(InputError, match=r"no score calibration for classes \['pedestrian'\] of clip x"):
        ScoreQuality({"car": ([0.5], [1.0])}).check_classes(["car", "pedestrian"], "clip x")
    bad = tmp_path / "calib.yaml"
    bad.write_text("score_calibration:\n  car: {score: [0.2, 0.6], precision: [0.5]}\n")
    with pytest.raises(InputError, match=r"calib.yaml: class 'car': expected as many precisions as scores"):
        ScoreQuality.load(bad)
    bad.write_text("score_calibration:\n  car: {score: [0.6, 0.2], precision: [0.5, 0.6]}\n")
    with pytest.raises(InputError, match=r"calib.yaml: class 'car': expected scores in increasing order"):
        ScoreQuality.load(bad)
    bad.write_text("tracking3d:\n  class_min_score: {car: 0.3}\n")  # a floors file instead
    with pytest.raises(InputError, match=r"calib.yaml: expected a score_calibration mapping"):
        ScoreQuality.load(bad)
    with pytest.raises(InputError, match=r"missing.yaml: expected a score calibration .* found no such file"):
        ScoreQuality.load(tmp_path / "missing.yaml")


def _frame(centres, classes, scores) -> Boxes3D:
    centres = np.asarray(centres, np.float64).reshape(-1, 2)
    return Boxes3D(
        center=np.column_stack([centres, np.ones(len(centres))]),
        size=np.tile([4.0, 2.0, 1.5], (len(centres), 1)),
        yaw=np.zeros(len(centres)),
        class_id=np.asarray(classes, np.int64),
        score=np.asarray(scores, np.float32),
        track_id=np.arange(len(centres)),
    )


def test_calibrate_writes_the_precision_curve_that_training_reads(tmp_path: Path) -> None:
    """Cars scoring 0.8 are always right, 0.5 half the time, 0.2 never: the written curve says so, and the
    datamodule maps scores through it. Pedestrians (too few boxes) fall back to the pooled curve."""
    gt_frames, label_frames = [], []
    for frame in range(40):
        truth = [(-10.0, 0.0), (0.0, 0.0), (10.0, 0.0), (0.0, 5.0)]
        gt_frames.append(_frame(truth[:3] + [(0.0, 10.0)], [CAR] * 3 + [PEDESTRIAN], np.ones(4)))
        half = truth[2] if frame % 2 else (10.0, 30.0)  # right on odd frames, a ghost on even ones
        found = [truth[0], truth[1], half, (0.0, -20.0), (0.0, 10.2)]
        label_frames.append(_frame(found, [CAR] * 4 + [PEDESTRIAN], [0.8, 0.8, 0.5, 0.2, 0.6]))
    for root, frames, source in ((tmp_path / "gt", gt_frames, "gt"), (tmp_path / "labels", label_frames, "autolabel")):
        (root / "clip_0000").mkdir(parents=True)
        ClipLabels(list(DRIVING_CLASSES), [FrameLabels(b) for b in frames], make_provenance(source, "test")).save(
            root / "clip_0000" / "labels.json"
        )
    (tmp_path / "labels" / "clip_0000" / "done").write_text("{}")
    out = tmp_path / "calibration.yaml"
    code = autolabel_main(
        ["calibrate", str(tmp_path / "labels"), "--gt", str(tmp_path / "gt"), "--out", str(tmp_path / "floors.yaml"),
         "--score-calibration", str(out)]
    )  # fmt: skip
    assert code == 0
    document = yaml.safe_load(out.read_text())["score_calibration"]
    assert "pedestrian" not in document and "*" in document  # 1 object: no curve of its own
    quality = ScoreQuality.load(out)
    np.testing.assert_allclose(quality(DRIVING_CLASSES, np.array([CAR] * 3), np.array([0.2, 0.5, 0.8])), [0, 0.5, 1])
    evaluator = BevDetectionEvaluator(list(DRIVING_CLASSES))
    for pred, gt in zip(label_frames, gt_frames):
        evaluator.add_frame(pred, gt)
    assert evaluator.score_calibration()["car"]["precision"] == document["car"]["precision"]


def test_datamodule_weights_only_the_pseudo_labelled_clips(tmp_path: Path) -> None:
    # boxes 0..4 of clip_factory: car, car, pedestrian, car, truck
    labelled, unlabelled, pseudo = make_pseudo_split(tmp_path, [0.9, 0.2, 0.4, 0.9, 0.6])

    def dataset(quality):
        dm = ClipDataModule(
            train=[str(labelled), str(unlabelled)],
            train_labels={str(unlabelled): str(pseudo)},
            train_labels_quality=quality,
            window=1,
            cache_dir=str(tmp_path / "cache"),
            target_spec=tiny_spec(det2d=False),
        )
        dm.setup("fit")
        return dm.datasets["train"]

    soft = dataset("score")
    windows = {soft.clips[c].path.parent.name: i for i, (c, start) in enumerate(soft.windows) if start == 0}
    gt_sample, pseudo_sample = soft[windows["L"]], soft[windows["U"]]
    assert (gt_sample["heatmap_quality"] == 1.0).all()  # ground truth stays certain
    weights = [round(float(w), 3) for w in np.unique(pseudo_sample["reg_mask"][pseudo_sample["reg_mask"] > 0])]
    assert weights == [0.2, 0.4, 0.6, 0.9]  # the pseudo boxes' scores
    peak_quality = pseudo_sample["heatmap_quality"][pseudo_sample["heatmap"] >= 1 - 1e-4]
    assert sorted(round(float(q), 3) for q in peak_quality) == sorted(weights + [0.9])
    plain = dataset(None)
    assert "heatmap_quality" not in plain[windows["U"]] and plain[windows["U"]]["reg_mask"].max() == 1.0
    calib = tmp_path / "calib.yaml"
    calib.write_text("score_calibration:\n  car: {score: [0.5], precision: [1.0]}\n")
    with pytest.raises(InputError, match=r"calib.yaml: no score calibration for classes \[.*'truck'.*\] of"):
        dataset(str(calib))
