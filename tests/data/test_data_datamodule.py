"""Sample shapes and contents, ego motion, rig mismatch errors, corrupt clips skipped with a logged reason."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from clip_factory import make_clip, tiny_spec

from perception.clip import DriveClip
from perception.data.datamodule import ClipDataModule
from perception.data.dataset import RigMismatchError
from perception.data.sampler import WindowSampler, repeat_factors
from perception.geometry import invert_se3


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("dm")
    for i in range(2):
        make_clip(base / "train" / f"clip{i}", frames=4)
    return base


def test_batch_shapes_and_geometry(root: Path, tmp_path: Path) -> None:
    dm = ClipDataModule(
        train=str(root / "train"),
        val=str(root / "train"),
        window=3,
        batch_size=2,
        cache_dir=str(tmp_path),
        target_spec=tiny_spec(),
    )
    dm.setup("fit")
    assert dm.cameras == ["front", "left"] and len(dm.datasets["train"]) == 4 and len(dm.datasets["val"]) == 4
    batch = next(iter(dm.train_dataloader()))
    B, T, N = 2, 3, 2
    assert batch["images"].shape == (B, T, N, 3, 64, 96) and batch["images"].dtype == torch.uint8
    assert batch["intrinsics"].shape == (B, T, N, 3, 3)
    assert batch["camera_from_ego"].shape == (B, T, N, 4, 4)
    assert batch["distortion"].shape == (B, T, N, 6)
    assert batch["prev_from_curr"].shape == (B, T, 4, 4) and batch["state_valid"].tolist() == [[0, 1, 1]] * 2
    assert batch["heatmap"].shape == (B, T, 6, 48, 48) and batch["segmentation"].shape == (B, T, 2, 48, 48)
    assert batch["det2d_heatmap"].shape == (B, T, N, 6, 8, 12) and batch["det2d_box"].shape == (B, T, N, 4, 8, 12)
    assert batch["gt_boxes3d"].shape == (B, T, 128, 9)
    assert batch["heatmap"].amax().item() == pytest.approx(1.0)
    # per-frame, per-camera camera_from_ego and ego motion come from the clip
    dataset = dm.datasets["val"]
    sample = dataset[0]
    clip = dataset.clips[0]
    for t, frame in enumerate(sample["frame_index"]):
        for n, camera in enumerate(dataset.cameras):
            np.testing.assert_allclose(
                sample["camera_from_ego"][t, n], clip.camera_from_ego(int(frame), camera), atol=1e-5
            )
    expected = invert_se3(clip.world_from_ego[0]) @ clip.world_from_ego[1]
    np.testing.assert_allclose(sample["prev_from_curr"][1], expected, atol=1e-5)
    assert abs(sample["prev_from_curr"][1][0, 3] - 0.5) < 1e-5  # 5 m/s at 10 Hz
    # the left camera is captured 20 ms after the front one: its camera_from_ego differs by the ego motion
    assert not np.allclose(clip.camera_from_ego(1, "left"), clip.rig["left"].camera_from_ego)


def test_sampler_is_epoch_seeded_and_sharded() -> None:
    sampler = WindowSampler(10, shuffle=True, seed=3, rank=0, world_size=1)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    shards = [list(WindowSampler(7, shuffle=True, seed=3, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 4
    assert {i for i, _ in shards[0] + shards[1]} == set(range(7))


def test_rig_mismatch_names_both_camera_lists(root: Path, tmp_path: Path) -> None:
    dm = ClipDataModule(
        train=str(root / "train"), cameras=["front", "rear"], cache_dir=str(tmp_path), target_spec=tiny_spec()
    )
    with pytest.raises(RigMismatchError) as error:
        dm.setup("fit")
    message = str(error.value)
    assert "['front', 'left']" in message and "['front', 'rear']" in message and "rig.yaml" in message


def test_corrupt_clip_is_skipped_and_reported(root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    shutil.copytree(root / "train", data)
    bad_video = data / "broken_video"
    shutil.copytree(root / "train" / "clip0", bad_video)
    (bad_video / "cameras" / "left" / "000002.png").write_bytes(b"not a png")
    bad_table = data / "broken_table"
    shutil.copytree(root / "train" / "clip0", bad_table)
    (bad_table / "frames.csv").write_text("index,timestamp\n0,abc\n")
    dm = ClipDataModule(train=str(data), cache_dir=str(tmp_path / "cache"), target_spec=tiny_spec(), window=2)
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    skipped = {Path(p).name: reason for p, reason in dm.skipped}
    assert set(skipped) == {"broken_video", "broken_table"}, skipped
    assert "frames.csv" in skipped["broken_table"]
    assert "broken_video" in caplog.text
    assert [c.name for c in dm.datasets["train"].clips] == ["clip0", "clip1"]
    assert DriveClip.open(data / "clip0").num_frames == 4


def test_train_labels_per_entry_keep_ground_truth_of_other_entries(tmp_path: Path) -> None:
    """L + U training: U's clips read pseudo-labels from another folder, L's keep their own ground truth, even when
    clips in both splits have the same folder name."""
    from perception.labels import ClipLabels, make_provenance

    labelled = make_clip(tmp_path / "L" / "clip_0000", frames=3).parent
    unlabelled = make_clip(tmp_path / "U" / "clip_0000", frames=3).parent
    truth = DriveClip.open(unlabelled / "clip_0000").labels
    true_count = len(truth.frames[0].boxes3d)
    pseudo = ClipLabels(truth.classes, truth.frames, make_provenance("autolabel", "test"), None)
    for frame in pseudo.frames:
        frame.boxes3d = frame.boxes3d[:1]  # a pseudo-label set visibly unlike the ground truth
    (tmp_path / "pseudo" / "clip_0000").mkdir(parents=True)
    pseudo.save(tmp_path / "pseudo" / "clip_0000" / "labels.json")
    dm = ClipDataModule(
        train=[str(labelled), str(unlabelled)],
        train_labels={str(unlabelled): str(tmp_path / "pseudo")},
        cache_dir=str(tmp_path / "cache"),
        target_spec=tiny_spec(),
    )
    dm.setup("fit")
    sources = [clip.labels.provenance["source"] for clip in dm.datasets["train"].clips]
    counts = [len(clip.labels.frames[0].boxes3d) for clip in dm.datasets["train"].clips]
    assert sources == ["ground_truth", "autolabel"]
    assert true_count > 1 and counts == [true_count, 1]
    with pytest.raises(ValueError, match="not entries of data.train"):
        ClipDataModule(train=str(labelled), train_labels={"elsewhere": str(tmp_path)}, target_spec=tiny_spec())


def test_repeat_factors_follow_lvis_rule() -> None:
    factors = repeat_factors([{0}, {0}, {0}, {0, 1}, set()], threshold=1.0)
    # class 0 in 4 of 5 windows: sqrt(1 / 0.8) = 1.118; class 1 in 1 of 5: sqrt(5); no class: 1
    assert factors == pytest.approx([1.118034, 1.118034, 1.118034, 5**0.5, 1.0], abs=1e-6)
    assert repeat_factors([{0}, {1}], threshold=0.5).tolist() == [1.0, 1.0]  # nothing rarer than the threshold
    with pytest.raises(ValueError, match="threshold"):
        repeat_factors([{0}], threshold=0.0)


def test_sampler_repeats_windows_by_factor_with_fresh_augmentation() -> None:
    factors = [1.0, 1.0, 1.0, 2.5, 1.5]  # 7 samples: windows 0-2 once, 3 two or three times, 4 once or twice
    counts = []
    for epoch in range(40):
        sampler = WindowSampler(5, shuffle=True, seed=1, rank=0, world_size=1, factors=factors)
        sampler.set_epoch(epoch)
        keys = list(sampler)
        assert len(keys) == len(sampler) == 7
        assert len({seed for _, seed in keys}) == 7  # a repeated window gets a new augmentation seed
        counts.append(np.bincount([i for i, _ in keys], minlength=5))
    counts = np.array(counts)
    assert (counts[:, :3] == 1).all() and set(counts[:, 3]) <= {2, 3} and set(counts[:, 4]) <= {1, 2}
    assert counts.mean(0) == pytest.approx(factors, abs=0.25)  # the fractions drawn in proportion
    again = WindowSampler(5, shuffle=True, seed=1, rank=0, world_size=1, factors=factors)
    again.set_epoch(39)
    assert np.bincount([i for i, _ in again], minlength=5).tolist() == counts[-1].tolist()  # epoch-seeded
    shards = [list(WindowSampler(5, shuffle=True, seed=1, rank=r, world_size=2, factors=factors)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 4
    with pytest.raises(ValueError, match="repeat factors"):
        WindowSampler(5, shuffle=True, factors=[1.0, 0.5, 1.0, 1.0, 1.0])


def test_sampler_without_factors_keeps_its_permutation_and_seeds() -> None:
    """The plain sampler draws exactly what it drew before repeat factors existed (runs stay reproducible)."""
    rng = np.random.default_rng([3, 2])
    order, seeds = rng.permutation(6), rng.integers(0, 2**62, size=6)
    sampler = WindowSampler(6, shuffle=True, seed=3, rank=0, world_size=1)
    sampler.set_epoch(2)
    assert list(sampler) == [(int(i), int(seeds[i])) for i in order]


def test_repeat_factor_threshold_repeats_windows_holding_a_rarer_class(root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(root / "train", data)
    labels = DriveClip.open(data / "clip1").labels
    for frame in labels.frames:  # clip1 without its trucks: trucks in half the windows
        frame.boxes3d = frame.boxes3d[frame.boxes3d.class_id != labels.classes.index("truck")]
    labels.save(data / "clip1" / "labels.json")
    kwargs = dict(train=str(data), window=1, batch_size=1, cache_dir=str(tmp_path / "cache"), target_spec=tiny_spec())
    plain = ClipDataModule(**kwargs)
    plain.setup("fit")
    classes = plain.datasets["train"].window_classes()
    truck = tiny_spec()["detection3d_classes"].index("truck")
    assert [truck in present for present in classes] == [True] * 4 + [False] * 4
    assert len(plain.train_dataloader().sampler) == 8
    balanced = ClipDataModule(**kwargs, repeat_factor_threshold=1.0)
    balanced.setup("fit")
    keys = [i for i, _ in balanced.train_dataloader().sampler]
    assert len(keys) == 9  # floor(4 x sqrt(2) + 4)
    assert np.bincount(keys, minlength=8)[:4].sum() == 5 and (np.bincount(keys, minlength=8)[4:] == 1).all()
    with pytest.raises(ValueError, match="repeat_factor_threshold"):
        ClipDataModule(**kwargs, repeat_factor_threshold=2.0)
