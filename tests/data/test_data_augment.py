"""After ANY augmentation the geometry still matches the pixels: 3D boxes projected with the augmented K and
camera_from_ego land on the painted boxes and on the augmented 2D ground truth; BEV maps follow the boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from clip_factory import make_clip, tiny_spec

from perception.clip import DriveClip
from perception.data.augment import BevAugmentation, ImageAugmentation, resample_bev, transform_boxes3d
from perception.data.cache import FrameCache
from perception.data.dataset import ClipWindowDataset
from perception.geometry import BevGrid, box3d_corners
from perception.labels import Boxes3D

BACKGROUND = 90


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> DriveClip:
    return DriveClip.open(make_clip(tmp_path_factory.mktemp("aug") / "clip", frames=3))


def _project_boxes(boxes9: np.ndarray, K: np.ndarray, camera_from_ego: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projected bbox (M,4) of each box's 8 corners and a mask of boxes fully in front of the camera."""
    corners = box3d_corners(boxes9[:, :3], boxes9[:, 3:6], boxes9[:, 6])
    camera = corners @ camera_from_ego[:3, :3].T + camera_from_ego[:3, 3]
    in_front = np.all(camera[..., 2] > 0.5, axis=1)
    uv = camera[..., :2] / np.maximum(camera[..., 2:3], 1e-6) @ K[:2, :2].T + K[:2, 2]
    return np.concatenate([uv.min(1), uv.max(1)], 1), in_front


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def _check_sample(sample: dict, size_hw: tuple[int, int], wrong_geometry: bool = False) -> list[float]:
    """IoUs of every 2D GT box with its best projected 3D box; asserts pixel content at projected centres."""
    height, width = size_hw
    ious = []
    for t in range(sample["images"].shape[0]):
        gt3d = sample["gt_boxes3d"][t][sample["gt_class3d"][t] >= 0].astype(np.float64)
        for n in range(sample["images"].shape[1]):
            K = sample["intrinsics"][t, n].astype(np.float64)
            camera_from_ego = sample["camera_from_ego"][t, n].astype(np.float64)
            if wrong_geometry:
                camera_from_ego = sample["_unaugmented_camera_from_ego"][t, n]
            projected, in_front = _project_boxes(gt3d, K, camera_from_ego)
            # the image region that holds real pixels after scale/crop/pad
            valid = np.array([K[0, 2] - K[0, 2], 0, width, height], float)
            image = sample["images"][t, n].transpose(1, 2, 0)
            nonblack = np.argwhere(image.sum(-1) > 0)
            if len(nonblack):
                valid = np.array(
                    [nonblack[:, 1].min(), nonblack[:, 0].min(), nonblack[:, 1].max() + 1, nonblack[:, 0].max() + 1],
                    float,
                )
            mask = sample["gt_class2d"][t, n] >= 0
            for box, cls in zip(sample["gt_boxes2d"][t, n][mask], sample["gt_class2d"][t, n][mask]):
                candidates = [
                    np.r_[np.maximum(p[:2], valid[:2]), np.minimum(p[2:], valid[2:])]
                    for p, ok, c in zip(projected, in_front, sample["gt_class3d"][t][sample["gt_class3d"][t] >= 0])
                    if ok and c == cls
                ]
                best = max((_iou(box, c) for c in candidates), default=0.0)
                ious.append(best)
                if not wrong_geometry:
                    cx, cy = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
                    assert np.any(np.abs(image[cy, cx].astype(int) - BACKGROUND) > 40), (
                        "projected box centre is background"
                    )
    return ious


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_augmented_boxes_project_onto_their_pixels(clip: DriveClip, tmp_path: Path, seed: int) -> None:
    size_hw = (48, 72)  # resized from 64x96: exercises K scaling too
    dataset = ClipWindowDataset(
        [clip],
        cameras=["front", "left"],
        spec=tiny_spec(size_hw),
        window=2,
        cache=FrameCache(tmp_path),
        image_augmentation=ImageAugmentation(scale_range=(0.75, 1.4)),
        bev_augmentation=BevAugmentation(rotation_deg=60.0, flip_y_prob=0.5),
        seed=seed,
    )
    sample = dataset[(0, 1000 + seed)]
    ious = _check_sample(sample, size_hw)
    assert len(ious) >= 4
    assert min(ious) > 0.85, ious
    # the same check fails when camera_from_ego is left in the un-augmented ego frame (the test can fail)
    aug_free = ClipWindowDataset(
        [clip], cameras=["front", "left"], spec=tiny_spec(size_hw), window=2, cache=FrameCache(tmp_path)
    )
    plain = aug_free[0]
    sample["_unaugmented_camera_from_ego"] = plain["camera_from_ego"].astype(np.float64)
    aug = np.linalg.inv(sample["camera_from_ego"][0, 0].astype(np.float64)) @ plain["camera_from_ego"][0, 0]
    if not np.allclose(aug[:3, :3], np.eye(3), atol=0.05):  # a real BEV rotation/flip was drawn
        assert np.median(_check_sample(sample, size_hw, wrong_geometry=True)) < 0.5


def test_ego_motion_and_bev_maps_follow_the_augmentation(clip: DriveClip, tmp_path: Path) -> None:
    spec = tiny_spec((64, 96))
    plain = ClipWindowDataset([clip], cameras=["front"], spec=spec, window=3, cache=FrameCache(tmp_path))[0]
    augmented = ClipWindowDataset(
        [clip],
        cameras=["front"],
        spec=spec,
        window=3,
        cache=FrameCache(tmp_path),
        bev_augmentation=BevAugmentation(rotation_deg=90.0, flip_y_prob=1.0),
    )[(0, 7)]
    # aug = new_ego_from_ego recovered from the camera pose: camera_from_ego_new = camera_from_ego @ inv(aug)
    aug = np.linalg.inv(augmented["camera_from_ego"][0, 0].astype(np.float64)) @ plain["camera_from_ego"][0, 0]
    assert np.isclose(np.linalg.det(aug[:3, :3]), -1.0, atol=1e-4)  # mirrored
    for t in (1, 2):
        expected = aug @ plain["prev_from_curr"][t] @ np.linalg.inv(aug)
        np.testing.assert_allclose(augmented["prev_from_curr"][t], expected, atol=1e-4)
    assert augmented["state_valid"].tolist() == [0.0, 1.0, 1.0]
    # every box centre lands on the same BEV map value before and after augmentation
    grid = BevGrid.from_dict(spec["bev_grid"])
    for t in range(3):
        before = plain["gt_boxes3d"][t][plain["gt_class3d"][t] >= 0]
        after = augmented["gt_boxes3d"][t][augmented["gt_class3d"][t] >= 0]
        moved = transform_boxes3d(Boxes3D(before[:, :3], before[:, 3:6], before[:, 6]), aug)
        np.testing.assert_allclose(np.sort(after[:, :2], 0), np.sort(moved.center[:, :2], 0), atol=1e-4)
        for channel in range(2):
            r0, c0 = np.floor(grid.ego_to_cell(before[:, :2])).astype(int).T
            r1, c1 = np.floor(grid.ego_to_cell(moved.center[:, :2])).astype(int).T
            rows, cols = grid.shape
            ok = (r1 >= 0) & (r1 < rows) & (c1 >= 0) & (c1 < cols) & (r0 >= 0) & (r0 < rows) & (c0 >= 0) & (c0 < cols)
            a = plain["segmentation"][t, channel][r0[ok], c0[ok]]
            b = augmented["segmentation"][t, channel][r1[ok], c1[ok]]
            assert np.mean(a == b) >= 0.8  # nearest-neighbour resampling may flip a cell at a map edge


def test_transform_boxes3d_keeps_corners_rigid() -> None:
    boxes = Boxes3D(np.array([[5.0, 2.0, 1.0]]), np.array([[4.0, 2.0, 1.5]]), np.array([0.7]), np.array([[3.0, 1.0]]))
    aug = BevAugmentation(rotation_deg=180.0, flip_y_prob=1.0).sample(np.random.default_rng(3))
    moved = transform_boxes3d(boxes, aug)
    corners = boxes.corners()[0] @ aug[:3, :3].T + aug[:3, 3]
    expected = {tuple(np.round(c, 6)) for c in corners}
    assert {tuple(np.round(c, 6)) for c in moved.corners()[0]} == expected
    np.testing.assert_allclose(moved.velocity[0], aug[:2, :2] @ boxes.velocity[0])


def test_resample_bev_identity_and_rotation() -> None:
    grid = BevGrid(-4, 4, -4, 4, 1.0)
    data = np.arange(64, dtype=np.uint8).reshape(1, 8, 8)
    assert np.array_equal(resample_bev(data, grid, grid), data)
    rot180 = np.diag([-1.0, -1.0, 1.0, 1.0])
    assert np.array_equal(resample_bev(data, grid, grid, rot180), data[:, ::-1, ::-1])


def test_reversed_window_runs_backwards_with_negated_velocities(clip: DriveClip, tmp_path: Path) -> None:
    """A time-reversed window holds the same frames in reverse order, the ego motion of that order and velocities
    pointing the other way (the offline teacher's backward pass is then in distribution)."""
    import dataclasses

    clip = DriveClip.open(clip.path)  # own copy: give the boxes velocities (the factory's objects stand still)
    for index, frame in enumerate(clip.labels.frames):
        moving = np.column_stack([np.arange(len(frame.boxes3d)) + 1.0 + index, np.full(len(frame.boxes3d), -2.0)])
        frame.boxes3d = dataclasses.replace(frame.boxes3d, velocity=moving)
    spec = tiny_spec((64, 96))
    plain = ClipWindowDataset([clip], cameras=["front"], spec=spec, window=3, cache=FrameCache(tmp_path))[0]
    assert np.abs(plain["velocity"]).max() > 1.0
    reversed_ = ClipWindowDataset(
        [clip],
        cameras=["front"],
        spec=spec,
        window=3,
        cache=FrameCache(tmp_path),
        bev_augmentation=BevAugmentation(reverse_time_prob=1.0),
    )[(0, 3)]
    assert reversed_["frame_index"].tolist() == plain["frame_index"].tolist()[::-1]
    np.testing.assert_array_equal(reversed_["images"], plain["images"][::-1])
    for t in (1, 2):  # ego motion from the later frame to the earlier one
        np.testing.assert_allclose(
            reversed_["prev_from_curr"][t], np.linalg.inv(plain["prev_from_curr"][3 - t]), atol=1e-5
        )
    assert reversed_["state_valid"].tolist() == [0.0, 1.0, 1.0]
    np.testing.assert_allclose(reversed_["gt_boxes3d"][..., :7], plain["gt_boxes3d"][::-1][..., :7])
    np.testing.assert_allclose(reversed_["gt_boxes3d"][..., 7:], -plain["gt_boxes3d"][::-1][..., 7:])
    np.testing.assert_allclose(reversed_["velocity"], -plain["velocity"][::-1])
    # without the option nothing is drawn from the random stream: existing augmentation streams are unchanged
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    assert not BevAugmentation().sample_reverse(rng_a)
    assert rng_a.random() == rng_b.random()


def test_sensor_dropout_masks_cameras_and_keeps_the_ground_truth(clip: DriveClip, tmp_path: Path) -> None:
    """Dropped cameras are zero images with camera_valid 0 (the runtime's missing-camera rule); 3D ground truth is
    unchanged, 2D targets of a missing image are empty; the draw is deterministic per (window, seed)."""
    from perception.data.augment import SensorDropout

    spec = tiny_spec((64, 96))
    kwargs = dict(cameras=["front", "left"], spec=spec, window=3, cache=FrameCache(tmp_path))
    plain = ClipWindowDataset([clip], **kwargs)[0]
    dropping = ClipWindowDataset([clip], sensor_dropout=SensorDropout(camera_prob=0.5, image_prob=0.3), **kwargs)
    seen_invalid = 0
    for seed in range(12):
        sample = dropping[(0, seed)]
        valid = sample["camera_valid"] > 0
        assert valid[0].any()  # the window's first frame keeps a camera
        seen_invalid += int((~valid).sum())
        assert np.all(sample["images"][~valid] == 0)
        np.testing.assert_array_equal(sample["images"][valid], plain["images"][valid])
        np.testing.assert_array_equal(sample["gt_boxes3d"], plain["gt_boxes3d"])
        np.testing.assert_array_equal(sample["heatmap"], plain["heatmap"])
        assert np.all(sample["det2d_heatmap"][~valid] == 0) and np.all(sample["det2d_mask"][~valid] == 0)
        assert np.all(sample["gt_class2d"][~valid] == -1)
        np.testing.assert_array_equal(dropping[(0, seed)]["camera_valid"], sample["camera_valid"])
    assert seen_invalid > 0
    # a whole frame lost after the first: no camera arrives, the temporal state is kept (state_valid stays 1)
    lost = ClipWindowDataset([clip], sensor_dropout=SensorDropout(frame_prob=1.0), **kwargs)[(0, 1)]
    assert lost["camera_valid"].tolist() == [[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]
    assert lost["state_valid"].tolist() == [0.0, 1.0, 1.0]
    # disabled: nothing drawn, identical to no option at all
    same = ClipWindowDataset([clip], sensor_dropout=SensorDropout(), **kwargs)
    assert not same.augments
    with pytest.raises(ValueError, match="camera_prob"):
        SensorDropout(camera_prob=1.5)


def test_corruption_augmentation_changes_images_only(clip: DriveClip, tmp_path: Path) -> None:
    spec = tiny_spec((64, 96))
    kwargs = dict(cameras=["front", "left"], spec=spec, window=2, cache=FrameCache(tmp_path))
    plain = ClipWindowDataset([clip], **kwargs)[0]
    corrupting = ClipWindowDataset(
        [clip], image_augmentation=ImageAugmentation(corruption_prob=1.0, corruptions=("fog",)), **kwargs
    )
    sample = corrupting[(0, 4)]
    assert np.abs(sample["images"].astype(int) - plain["images"]).mean() > 5
    for key in ("intrinsics", "camera_from_ego", "camera_valid", "gt_boxes3d", "heatmap"):
        np.testing.assert_array_equal(sample[key], plain[key])
    np.testing.assert_array_equal(corrupting[(0, 4)]["images"], sample["images"])  # deterministic per seed
    # without corruption_prob nothing is drawn from the random stream
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    assert ImageAugmentation().sample_corruption(rng_a) is None
    assert rng_a.random() == rng_b.random()
    with pytest.raises(ValueError, match="unknown"):
        ImageAugmentation(corruptions=("hail",))
    with pytest.raises(ValueError, match="corruption_severity"):
        ImageAugmentation(corruption_severity=(1.0, 5.0))
