"""In-graph projection vs the core rig, BEV orientation of the lifting, and the ego-motion warp of the state."""

import math

import numpy as np
import pytest
import torch

from perception.models.temporal import warp_bev
from perception.models.view_transform import BevLifting, project_points, voxel_centers

RADTAN = [-0.28, 0.09, 0.001, -0.0008, -0.01]


def camera_looking_forward(yaw: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """(K, ego_from_camera) of a 160x96 camera 1.5 m up, turned ``yaw`` rad to the left."""
    K = np.array([[90.0, 0.0, 79.5], [0.0, 88.0, 47.5], [0.0, 0.0, 1.0]])
    forward = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    ego_from_camera = np.eye(4)
    ego_from_camera[:3, :3] = np.stack([right, [0.0, 0.0, -1.0], forward], axis=1)
    ego_from_camera[:3, 3] = [1.2, 0.1, 1.5]
    return K, ego_from_camera


def test_projection_matches_core_rig_camera() -> None:
    rig = pytest.importorskip("perception.rig")
    K, ego_from_camera = camera_looking_forward()
    camera = rig.Camera("front", 160, 96, K, ego_from_camera, "radtan", np.array(RADTAN))
    rng = np.random.default_rng(0)
    points = np.stack([rng.uniform(3, 30, 500), rng.uniform(-15, 15, 500), rng.uniform(-1, 3, 500)], -1)
    uv_ref, depth_ref = camera.project_ego(points)
    uv, depth, ok = project_points(
        torch.tensor(points, dtype=torch.float32),
        torch.tensor(K, dtype=torch.float32).view(1, 1, 3, 3),
        torch.tensor(np.linalg.inv(ego_from_camera), dtype=torch.float32).view(1, 1, 4, 4),
        torch.tensor(RADTAN, dtype=torch.float32).view(1, 1, 5),
    )
    points_cam = points @ np.linalg.inv(ego_from_camera)[:3, :3].T + np.linalg.inv(ego_from_camera)[:3, 3]
    radius = np.linalg.norm(points_cam[:, :2] / points_cam[:, 2:], axis=1)
    folded = (radius > 2.2) & (depth_ref > 0.5)  # beyond the fold of this barrel lens (r ~ 2.1)
    in_view = camera.in_image(uv_ref) & (depth_ref > 0.5) & (radius < 2.0)
    assert in_view.sum() > 50 and folded.sum() > 0
    assert ok[0, 0].numpy()[in_view].all()
    assert not ok[0, 0].numpy()[folded].any()  # the model must not sample these ...
    assert np.isnan(uv_ref[folded]).all()  # ... and the core rig does not project them either
    np.testing.assert_allclose(depth[0, 0].numpy(), depth_ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(uv[0, 0].numpy()[in_view], uv_ref[in_view], atol=2e-3)


def test_projection_flags_points_behind_and_folded_by_distortion() -> None:
    points = torch.tensor([[0.0, 0.0, -5.0], [0.0, 0.0, 5.0], [30.0, 0.0, 1.0]])  # camera frame = ego frame here
    eye = torch.eye(4).view(1, 1, 4, 4)
    K = torch.tensor([[100.0, 0, 50], [0, 100, 50], [0, 0, 1]]).view(1, 1, 3, 3)
    strong_barrel = torch.tensor([-0.5, 0.0, 0.0, 0.0, 0.0]).view(1, 1, 5)
    uv, _, ok = project_points(points, K, eye, strong_barrel)
    # behind: invalid; on axis: valid at the principal point; x/z = 6: beyond the fold of 1 - 0.5 r^2, invalid.
    assert ok[0, 0].tolist() == [False, True, False]
    torch.testing.assert_close(uv[0, 0, 1], torch.tensor([50.0, 50.0]))


def test_lifting_samples_the_pixel_each_voxel_projects_to() -> None:
    """Feature map = pixel column index: each seen voxel must receive its projected u; orientation follows BevGrid."""
    K, ego_from_camera = camera_looking_forward(yaw=0.0)
    lifting = BevLifting(x_range=(0.0, 20.0), y_range=(-10.0, 10.0), resolution=1.0, z_range=(0.0, 1.0), num_heights=1)
    height, width = 96, 160
    column = torch.arange(width, dtype=torch.float32).expand(height, width)
    features = column.view(1, 1, 1, height, width)
    camera_from_ego = torch.tensor(np.linalg.inv(ego_from_camera), dtype=torch.float32).view(1, 1, 4, 4)
    bev = lifting(
        features,
        torch.tensor(K, dtype=torch.float32).view(1, 1, 3, 3),
        camera_from_ego,
        torch.zeros(1, 1, 5),
        torch.ones(1, 1),
        (height, width),
    )
    assert bev.shape == (1, 1, 20, 20)
    centers = voxel_centers(
        x_range=(0.0, 20.0), y_range=(-10.0, 10.0), resolution=1.0, z_range=(0.0, 1.0), num_heights=1
    )[0]
    assert centers[0, 0].tolist() == [19.5, 9.5, 0.5]  # row 0 = forward edge, col 0 = left edge
    points_cam = torch.matmul(centers, camera_from_ego[0, 0, :3, :3].T) + camera_from_ego[0, 0, :3, 3]
    u = K[0, 0] * points_cam[..., 0] / points_cam[..., 2] + K[0, 2]
    v = K[1, 1] * points_cam[..., 1] / points_cam[..., 2] + K[1, 2]
    interior = (points_cam[..., 2] > 1) & (u > 0) & (u < width - 1) & (v > 0) & (v < height - 1)
    assert interior.sum() > 50
    torch.testing.assert_close(bev[0, 0][interior], u[interior], atol=1e-3, rtol=0)
    outside = (u < -1) | (u > width) | (points_cam[..., 2] < 0)
    assert outside.any() and (bev[0, 0][outside] == 0).all()
    # Left of the camera (col small = +y) must see small u (left of the image).
    assert bev[0, 0, 5, 8] < bev[0, 0, 5, 12]


def test_lifting_averages_over_cameras_that_see_a_voxel() -> None:
    K, ego_from_camera = camera_looking_forward(yaw=0.0)
    lifting = BevLifting(x_range=(5.0, 15.0), y_range=(-2.0, 2.0), resolution=1.0, z_range=(0.0, 1.0), num_heights=1)
    features = torch.stack([torch.full((1, 96, 160), 2.0), torch.full((1, 96, 160), 4.0)]).unsqueeze(0)  # [1,2,1,h,w]
    cfe = torch.tensor(np.linalg.inv(ego_from_camera), dtype=torch.float32).expand(1, 2, 4, 4)
    Ks = torch.tensor(K, dtype=torch.float32).expand(1, 2, 3, 3)
    both = lifting(features, Ks, cfe, torch.zeros(1, 2, 5), torch.ones(1, 2), (96, 160))
    one = lifting(features, Ks, cfe, torch.zeros(1, 2, 5), torch.tensor([[0.0, 1.0]]), (96, 160))
    torch.testing.assert_close(both, torch.full_like(both, 3.0))
    torch.testing.assert_close(one, torch.full_like(one, 4.0))


def test_warp_moves_static_content_with_ego_motion() -> None:
    grid = {"x_range": (-5.0, 5.0), "y_range": (-5.0, 5.0), "resolution": 1.0}
    state = torch.zeros(1, 1, 10, 10)
    state[0, 0, 3, 6] = 1.0  # prev ego: x = 5 - 3.5 = 1.5, y = 5 - 6.5 = -1.5
    forward_1m = torch.eye(4).unsqueeze(0)
    forward_1m[0, 0, 3] = 1.0  # ego drove 1 m forward: current x maps to previous x + 1
    moved = warp_bev(state, forward_1m, **grid)
    assert moved[0, 0].argmax().item() == 4 * 10 + 6  # one row further back (x = 0.5)
    torch.testing.assert_close(moved.sum(), torch.tensor(1.0))
    turn_left = torch.eye(4).unsqueeze(0)
    turn_left[0, :2, :2] = torch.tensor([[0.0, -1.0], [1.0, 0.0]])  # prev_from_curr: rotate +90 deg about z
    turned = warp_bev(state, turn_left, **grid)
    # current point p with R p = (1.5, -1.5) -> p = R^T (1.5, -1.5) = (-1.5, -1.5): row 6, col 6
    assert turned[0, 0].argmax().item() == 6 * 10 + 6
    identity = warp_bev(state, torch.eye(4).unsqueeze(0), **grid)
    torch.testing.assert_close(identity, state)
