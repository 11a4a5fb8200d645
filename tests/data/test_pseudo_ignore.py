"""Pseudo-labels below their class floor train as ignore regions: neither objects nor background."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from clip_factory import make_pseudo_split, tiny_spec

from perception.data.datamodule import ClipDataModule, load_ignore_below
from perception.errors import InputError
from perception.labels import DRIVING_CLASSES
from perception.models.losses import focal_heatmap_loss
from perception.models.targets import encode_ignore_mask

CAR, PEDESTRIAN = DRIVING_CLASSES.index("car"), DRIVING_CLASSES.index("pedestrian")


def peaks(heatmap: np.ndarray) -> np.ndarray:
    """Objects per class: cells at 1 in a (K, H, W) heatmap."""
    return (heatmap >= 1.0 - 1e-4).sum(axis=(1, 2))


def test_focal_loss_ignores_only_the_masked_background() -> None:
    target = torch.zeros(1, 1, 8, 8)
    target[0, 0, 2, 2] = 1.0
    logits = torch.full((1, 1, 8, 8), -4.0)
    logits[0, 0, 2, 2] = 3.0  # the labelled object, found
    logits[0, 0, 6, 6] = 3.0  # a confident detection where the labels show nothing
    ignore = torch.zeros_like(target)
    plain = focal_heatmap_loss(logits, target)
    assert focal_heatmap_loss(logits, target, ignore=ignore) == pytest.approx(plain.item())
    ignore[0, 0, 5:8, 5:8] = 1.0
    masked = focal_heatmap_loss(logits, target, ignore=ignore)
    assert masked < 0.1 * plain  # that detection no longer counts as a false positive
    ignore[0, 0, 2, 2] = 1.0  # an ignore square over a positive leaves the positive's loss alone
    assert focal_heatmap_loss(logits, target, ignore=ignore) == pytest.approx(masked.item())


def test_ignore_mask_covers_the_box_radius_in_its_class_channel() -> None:
    grid = {"x_min": -8.0, "x_max": 8.0, "y_min": -8.0, "y_max": 8.0, "resolution": 1.0}
    mask = encode_ignore_mask(
        center=np.array([[0.5, 0.5, 0.0], [50.0, 0.0, 0.0]]),  # the second is off the grid
        size=np.array([[4.0, 2.0, 1.5], [4.0, 2.0, 1.5]]),
        class_id=np.array([1, 0]),
        num_classes=2,
        grid=grid,
    )
    assert mask.shape == (2, 16, 16) and mask[0].sum() == 0
    assert mask[1, 7, 7] == 1.0 and mask[1].sum() == 25  # min radius 2: a 5 x 5 square
    assert mask[1, 0, 0] == 0.0


def test_pseudo_labels_below_their_floor_become_ignore_regions(tmp_path: Path) -> None:
    # boxes 0..4 of clip_factory: car, car, pedestrian, car, truck
    labelled, unlabelled, pseudo = make_pseudo_split(tmp_path, [0.9, 0.2, 0.2, 0.9, 0.9])
    floors = tmp_path / "floors.yaml"
    floors.write_text("tracking3d:\n  class_min_score:\n    car: 0.5\n    pedestrian: 0.1\n")

    def datamodule(ignore_below) -> ClipDataModule:
        dm = ClipDataModule(
            train=[str(labelled), str(unlabelled)],
            train_labels={str(unlabelled): str(pseudo)},
            train_labels_ignore_below=ignore_below,
            window=1,
            cache_dir=str(tmp_path / "cache"),
            target_spec=tiny_spec(det2d=False),
        )
        dm.setup("fit")
        return dm

    dataset = datamodule(str(floors)).datasets["train"]
    windows = {dataset.clips[c].path.parent.name: i for i, (c, start) in enumerate(dataset.windows) if start == 0}
    gt_sample, pseudo_sample = dataset[windows["L"]], dataset[windows["U"]]
    gt_peaks, pseudo_peaks = peaks(gt_sample["heatmap"][0]), peaks(pseudo_sample["heatmap"][0])
    assert gt_peaks[CAR] == 3 and pseudo_peaks[CAR] == 2  # the unsure car is no longer an object ...
    assert pseudo_peaks[PEDESTRIAN] == gt_peaks[PEDESTRIAN] == 1  # ... the pedestrian is above its floor
    ignore = pseudo_sample["heatmap_ignore"][0]
    assert ignore[CAR].sum() > 0 and ignore.sum() == ignore[CAR].sum()  # ... and not background either
    assert not gt_sample["heatmap_ignore"].any()  # ground-truth clips: nothing ignored
    assert pseudo_sample["reg_mask"].sum() == gt_sample["reg_mask"].sum() - 1
    with pytest.raises(InputError, match=r"classes \['cars'\] are not among the classes of"):
        datamodule({"cars": 0.5})  # a typo would otherwise silently ignore nothing
    # without the option, the same clips train every pseudo-label as an object and emit no ignore key
    plain = datamodule(None).datasets["train"]
    assert "heatmap_ignore" not in plain[windows["U"]]
    assert peaks(plain[windows["U"]]["heatmap"][0])[CAR] == 3


def test_ignore_below_accepts_a_score_a_mapping_or_calibrate_output(tmp_path: Path) -> None:
    assert load_ignore_below(None) is None
    assert load_ignore_below(0.3) == {"*": 0.3}
    assert load_ignore_below({"car": 0.4}) == {"car": 0.4}
    good = tmp_path / "floors.yaml"
    good.write_text("tracking3d:\n  class_min_score:\n    car: 0.40  # comment\n    truck: 0\n")
    assert load_ignore_below(str(good)) == {"car": 0.4, "truck": 0.0}
    bad = tmp_path / "bad.yaml"
    bad.write_text("car: 1.5\n")
    with pytest.raises(InputError, match=r"bad.yaml: class 'car': expected a score in \[0, 1\], found 1.5"):
        load_ignore_below(str(bad))
    with pytest.raises(InputError, match="missing.yaml: expected per-class score floors"):
        load_ignore_below(str(tmp_path / "missing.yaml"))
    with pytest.raises(ValueError, match="expected a score"):
        load_ignore_below([0.3])  # type: ignore[arg-type]
