"""In-graph projection vs the core rig (radtan and fisheye lenses), BEV orientation of the lifting, and the
ego-motion warp of the state."""

import math

import numpy as np
import pytest
import torch

from perception.model_input import model_distortion
from perception.models.temporal import warp_bev
from perception.models.view_transform import BevLifting, project_points, voxel_centers
from perception.rig import Camera

RADTAN = [-0.28, 0.09, 0.001, -0.0008, -0.01]
FISHEYE = [0.03, -0.012, 0.002, -0.0004]  # a ~200 deg equidistant lens (below)


def model_projection(camera: Camera, points_ego: np.ndarray):
    """The model's projection of ego points into ``camera`` -> (uv (P, 2), depth (P,), ok (P,)) numpy."""
    uv, depth, ok = project_points(
        torch.tensor(points_ego, dtype=torch.float32),
        torch.tensor(camera.K, dtype=torch.float32).view(1, 1, 3, 3),
        torch.tensor(camera.camera_from_ego, dtype=torch.float32).view(1, 1, 4, 4),
        torch.tensor(model_distortion(camera), dtype=torch.float32).view(1, 1, 6),
    )
    return uv[0, 0].numpy(), depth[0, 0].numpy(), ok[0, 0].numpy()


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
        torch.tensor([*RADTAN, 0.0], dtype=torch.float32).view(1, 1, 6),
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
    strong_barrel = torch.tensor([-0.5, 0.0, 0.0, 0.0, 0.0, 0.0]).view(1, 1, 6)
    uv, _, ok = project_points(points, K, eye, strong_barrel)
    # behind: invalid; on axis: valid at the principal point; x/z = 6: beyond the fold of 1 - 0.5 r^2, invalid.
    assert ok[0, 0].tolist() == [False, True, False]
    torch.testing.assert_close(uv[0, 0, 1], torch.tensor([50.0, 50.0]))
    with pytest.raises(ValueError, match=r"distortion: expected \[..., 6\] .*found shape \[1, 1, 5\]"):
        project_points(points, K, eye, strong_barrel[..., :5])


def fisheye_camera(coefficients=FISHEYE, yaw: float = 0.4, pitch: float = -0.2) -> Camera:
    """A 320x256 fisheye 0.6 m up, turned ``yaw`` left and ``pitch`` down: ~200 deg across the diagonal, so image
    corners look behind the camera plane (no point can project there)."""
    f = 95.0
    forward = np.array([math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch), math.sin(pitch)])
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    down = np.cross(forward, right)
    ego_from_camera = np.eye(4)
    ego_from_camera[:3, :3] = np.stack([right, down, forward], axis=1)
    ego_from_camera[:3, 3] = [0.3, 0.1, 0.6]
    K = np.array([[f, 0.0, 159.5], [0.0, f * 1.01, 127.5], [0.0, 0.0, 1.0]])
    return Camera("fisheye", 320, 256, K, ego_from_camera, "fisheye", np.array(coefficients))


def test_fisheye_projection_equals_the_core_camera_up_to_90_deg_and_rejects_points_behind() -> None:
    camera = fisheye_camera()
    rng = np.random.default_rng(1)
    # directions all around the camera (uniform on the sphere), 0.5..30 m away, plus rays 85..89.9 deg off-axis
    directions = rng.normal(size=(4000, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    off_axis = np.radians(rng.uniform(85.0, 89.9, 500))
    azimuth = rng.uniform(0, 2 * np.pi, 500)
    grazing = np.stack([np.sin(off_axis) * np.cos(azimuth), np.sin(off_axis) * np.sin(azimuth), np.cos(off_axis)], -1)
    points_camera = np.concatenate([directions, grazing]) * rng.uniform(0.5, 30.0, (4500, 1))
    ego_from_camera = camera.ego_from_camera
    points = points_camera @ ego_from_camera[:3, :3].T + ego_from_camera[:3, 3]

    uv_ref, depth_ref = camera.project_ego(points)
    uv, depth, ok = model_projection(camera, points)
    seen = np.isfinite(uv_ref).all(axis=1)
    assert (depth_ref <= 0).sum() > 1500 and (seen & (depth_ref < 0.05 * np.linalg.norm(points_camera, axis=1))).sum()
    np.testing.assert_array_equal(ok, seen)  # the same points, up to 89.9 deg off-axis; none behind the camera
    assert not ok[depth_ref <= 0].any()
    np.testing.assert_allclose(depth, depth_ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(uv[seen], uv_ref[seen], atol=2e-3)  # pixels, float32 vs float64
    inside = camera.in_image(uv_ref[seen])
    assert inside.sum() > 1000 and (~inside).sum() > 50  # the corners reach beyond 90 deg: some rays are off-image
    assert (
        np.degrees(np.arctan2(np.linalg.norm(points_camera[seen][inside, :2], axis=1), depth_ref[seen][inside])).max()
        > 89.0
    )


def test_fisheye_fold_back_is_rejected_like_the_core_camera() -> None:
    """k1 = -0.3: theta_d stops increasing ~60 deg off-axis; the model and Camera.project both drop what is beyond."""
    camera = fisheye_camera([-0.3, 0.0, 0.0, 0.0], yaw=0.0, pitch=0.0)
    limit = camera.max_undistorted_radius()
    assert limit is not None and 59.0 < np.degrees(np.arctan(limit)) < 61.5
    angles = np.radians([10.0, 40.0, 55.0, 65.0, 80.0])
    points_camera = np.stack([5 * np.sin(angles), np.zeros(5), 5 * np.cos(angles)], -1)
    points = points_camera @ camera.ego_from_camera[:3, :3].T + camera.ego_from_camera[:3, 3]
    uv_ref, _ = camera.project_ego(points)
    uv, _, ok = model_projection(camera, points)
    assert ok.tolist() == [True, True, True, False, False]
    assert np.isfinite(uv_ref).all(axis=1).tolist() == ok.tolist()
    np.testing.assert_allclose(uv[:3], uv_ref[:3], atol=2e-3)


def test_mixed_rig_projects_each_camera_with_its_own_lens() -> None:
    """One batch with a radtan and a fisheye camera: each row equals its own camera's projection."""
    K, ego_from_camera = camera_looking_forward()
    cameras = [Camera("radtan", 160, 96, K, ego_from_camera, "radtan", np.array(RADTAN)), fisheye_camera()]
    rng = np.random.default_rng(2)
    points = np.stack([rng.uniform(-20, 20, 800), rng.uniform(-20, 20, 800), rng.uniform(-1, 3, 800)], -1)
    uv, _, ok = project_points(
        torch.tensor(points, dtype=torch.float32),
        torch.tensor(np.stack([c.K for c in cameras]), dtype=torch.float32)[None],
        torch.tensor(np.stack([c.camera_from_ego for c in cameras]), dtype=torch.float32)[None],
        torch.tensor(np.stack([model_distortion(c) for c in cameras]), dtype=torch.float32)[None],
    )
    for n, camera in enumerate(cameras):
        uv_ref, depth_ref = camera.project_ego(points)
        both = ok[0, n].numpy() & np.isfinite(uv_ref).all(axis=1) & (depth_ref > 0.5)
        assert both.sum() > 100
        np.testing.assert_allclose(uv[0, n].numpy()[both], uv_ref[both], atol=2e-3)


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
        torch.zeros(1, 1, 6),
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
    both = lifting(features, Ks, cfe, torch.zeros(1, 2, 6), torch.ones(1, 2), (96, 160))
    one = lifting(features, Ks, cfe, torch.zeros(1, 2, 6), torch.tensor([[0.0, 1.0]]), (96, 160))
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
