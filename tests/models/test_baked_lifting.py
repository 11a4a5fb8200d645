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
    index, weight = bilinear_taps(grid, FEATURE_HW)
    got = (features.reshape(3, -1)[:, index] * weight).sum(-1)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
