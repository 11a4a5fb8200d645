"""The baked view transform equals the dynamic one it was evaluated from: every lens model the model input supports,
overlapping cameras, dead cameras, batches; its taps equal grid_sample's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from perception.model_input import DISTORTION_ENCODERS, model_distortion, model_intrinsics
from perception.models.baked_lifting import BakedBevLifting, bilinear_taps
from perception.models.view_transform import BevLifting
from perception.rig import Rig, ring_rig

# A sample lens per rig.yaml lens model; a model added to perception.model_input.DISTORTION_ENCODERS must get one here.
SAMPLE_LENSES = {
    "none": [],
    "radtan": [-0.21, 0.04, 0.0012, -0.0009, -0.004],
    "fisheye": [0.06, -0.012, 0.002, -0.0004],
}
SIZE_HW = (64, 128)
FEATURE_HW = (8, 16)


def rig_with_lens(model: str) -> Rig:
    """Five overlapping 100-degree cameras (most voxels are seen by two), all with lens ``model``."""
    ring = ring_rig(num_cameras=5, width=320, height=160, hfov_deg=100.0)
    coefficients = np.array(SAMPLE_LENSES[model], np.float64)
    return Rig(
        [dataclasses.replace(camera, distortion_model=model, distortion=coefficients) for camera in ring.cameras]
    )


def calibration(rig: Rig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(intrinsics, camera_from_ego, distortion) [N,...] as the model takes them (``perception.model_input``)."""
    intrinsics = np.stack([model_intrinsics(camera, SIZE_HW) for camera in rig])
    extrinsics = np.stack([camera.camera_from_ego for camera in rig])
    distortion = np.stack([model_distortion(camera) for camera in rig])
    return (torch.tensor(a, dtype=torch.float32) for a in (intrinsics, extrinsics, distortion))


def lifting() -> BevLifting:
    return BevLifting(x_range=(-12.0, 12.0), y_range=(-10.0, 10.0), resolution=1.0, z_range=(-1.0, 3.0), num_heights=3)


def test_every_supported_lens_model_has_a_sample() -> None:
    assert set(DISTORTION_ENCODERS) <= set(SAMPLE_LENSES), "add a sample lens for the new lens model"


@pytest.mark.parametrize("lens", sorted(DISTORTION_ENCODERS))
def test_baked_lifting_equals_dynamic(lens: str) -> None:
    rig = rig_with_lens(lens)
    intrinsics, camera_from_ego, distortion = calibration(rig)
    dynamic = lifting()
    baked = BakedBevLifting.bake(
        dynamic,
        intrinsics=intrinsics,
        camera_from_ego=camera_from_ego,
        distortion=distortion,
        image_size=SIZE_HW,
        feature_hw=FEATURE_HW,
    )
    stats = baked.statistics()
    assert stats["voxels_by_cameras_seeing"][2] > 100  # overlaps: the second level is exercised
    assert stats["voxels_by_cameras_seeing"][0] > 0  # and voxels no camera sees (the zero row)
    generator = torch.Generator().manual_seed(0)
    batch, cams = 3, len(rig)
    features = torch.randn(batch, cams, 7, *FEATURE_HW, generator=generator)
    camera_valid = torch.ones(batch, cams)
    camera_valid[1, 2] = 0.0  # a dead camera
    camera_valid[2] = 0.0  # all dead: zeros everywhere
    expand = (batch, -1, -1, -1)
    expected = dynamic(
        features,
        intrinsics.expand(*expand),
        camera_from_ego.expand(*expand),
        distortion.expand(batch, -1, -1),
        camera_valid,
        SIZE_HW,
    )
    got = baked(features, camera_valid=camera_valid)
    scale = float(expected.abs().max())
    assert scale > 0.5
    assert float((got - expected).abs().max()) <= 1e-5 * scale
    assert float(got[2].abs().max()) == 0.0
    # the dead camera changed the average where it was seen (the mask reaches the baked graph)
    assert not torch.allclose(got[1], baked(features[1:2], camera_valid=torch.ones(1, cams))[0])


def test_baked_lifting_refuses_features_of_another_shape() -> None:
    rig = rig_with_lens("none")
    intrinsics, camera_from_ego, distortion = calibration(rig)
    baked = BakedBevLifting.bake(
        lifting(),
        intrinsics=intrinsics,
        camera_from_ego=camera_from_ego,
        distortion=distortion,
        image_size=SIZE_HW,
        feature_hw=FEATURE_HW,
    )
    with pytest.raises(ValueError, match="expected N=5 cameras at 8x16"):
        baked(torch.zeros(1, 4, 7, *FEATURE_HW))


def test_bilinear_taps_equal_grid_sample() -> None:
    """Weighted taps reproduce F.grid_sample (bilinear, zeros, align_corners=False), borders and outside included."""
    generator = torch.Generator().manual_seed(1)
    grid = torch.rand(500, 2, generator=generator) * 2.4 - 1.2  # some points beyond the edges
    features = torch.randn(3, *FEATURE_HW, generator=generator)
    expected = F.grid_sample(features[None], grid.view(1, 1, -1, 2), mode="bilinear", align_corners=False)[0, :, 0]
    index, weight, weight_dx, weight_dy = bilinear_taps(grid, FEATURE_HW)
    got = (features.reshape(3, -1)[:, index] * weight).sum(-1)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    # the weight derivatives: moving a point by a small step inside its cell changes the sample to first order
    step = 1e-3
    moved = grid + torch.tensor([2.0 * step / FEATURE_HW[1], 0.0])  # step feature pixels to the right
    after = F.grid_sample(features[None], moved.view(1, 1, -1, 2), mode="bilinear", align_corners=False)[0, :, 0]
    first_order = (features.reshape(3, -1)[:, index] * (weight + step * weight_dx)).sum(-1)
    same_cell = bilinear_taps(moved, FEATURE_HW)[0].eq(index).all(-1)
    torch.testing.assert_close(first_order[:, same_cell], after[:, same_cell], atol=1e-5, rtol=1e-4)
    moved = grid + torch.tensor([0.0, 2.0 * step / FEATURE_HW[0]])
    after = F.grid_sample(features[None], moved.view(1, 1, -1, 2), mode="bilinear", align_corners=False)[0, :, 0]
    first_order = (features.reshape(3, -1)[:, index] * (weight + step * weight_dy)).sum(-1)
    same_cell = bilinear_taps(moved, FEATURE_HW)[0].eq(index).all(-1)
    torch.testing.assert_close(first_order[:, same_cell], after[:, same_cell], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("lens", sorted(DISTORTION_ENCODERS))
def test_motion_correction_follows_per_camera_capture_time(lens: str) -> None:
    """Per-frame extrinsics = static ones moved by each camera's ego motion since the reference time (cameras captured
    10 ms apart, ego at 3 m/s and 0.1 rad/s; this rig's coarse 8x16 feature map and voxels 1 m from a camera make the
    shifts large): the first-order corrected bake is much closer to the dynamic lifting than the static bake, and
    exact for static extrinsics. (On the demo rig and a synthetic clip at up to 11 m/s it removes 63% of the error.)"""
    from perception.geometry import se3, yaw_matrix

    rig = rig_with_lens(lens)
    intrinsics, camera_from_ego, distortion = calibration(rig)
    dynamic = lifting()
    kwargs = dict(intrinsics=intrinsics, camera_from_ego=camera_from_ego, distortion=distortion, image_size=SIZE_HW)
    corrected = BakedBevLifting.bake(dynamic, **kwargs, feature_hw=FEATURE_HW)
    static = BakedBevLifting.bake(dynamic, **kwargs, feature_hw=FEATURE_HW, correct_motion=False)
    cams = len(rig)
    moving = []
    for n in range(cams):  # camera n captured n * 10 ms after the reference time
        dt = 0.01 * n
        ego_capture_from_ego_ref = np.linalg.inv(se3(yaw_matrix(0.1 * dt), np.array([3.0 * dt, 0.0, 0.0])))
        moving.append(camera_from_ego[n].double().numpy() @ ego_capture_from_ego_ref)
    moving = torch.tensor(np.stack(moving), dtype=torch.float32)
    generator = torch.Generator().manual_seed(2)
    features = torch.nn.functional.avg_pool2d(torch.randn(cams, 6, 16, 32, generator=generator), 2)[None]  # smooth
    valid = torch.ones(1, cams)
    expected = dynamic(features, intrinsics[None], moving[None], distortion[None], valid, SIZE_HW)
    error_static = float((static(features, camera_valid=valid) - expected).abs().mean())
    error_corrected = float((corrected(features, None, moving[None], None, valid) - expected).abs().mean())
    assert error_corrected < 0.35 * error_static and error_static > 0
    at_rest = dynamic(features, intrinsics[None], camera_from_ego[None], distortion[None], valid, SIZE_HW)
    got = corrected(features, None, camera_from_ego[None], None, valid)
    assert float((got - at_rest).abs().max()) <= 1e-5 * float(at_rest.abs().max())
