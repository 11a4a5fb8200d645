"""Property tests for rigid transforms, rotations, projection and the BEV grid."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from perception.geometry import (
    BevGrid,
    box3d_corners,
    interpolate_pose,
    invert_se3,
    matrix_to_quat,
    quat_to_matrix,
    se3,
    transform_points,
    wrap_angle,
    yaw_matrix,
)
from perception.rig import Camera

finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False)
quaternions = st.tuples(*[st.floats(-1, 1)] * 4).filter(lambda q: np.linalg.norm(q) > 0.1)


@settings(max_examples=100, deadline=None)
@given(quaternions, st.tuples(finite, finite, finite))
def test_a_from_b_times_b_from_a_is_identity(q, t):
    a_from_b = se3(quat_to_matrix(np.array(q)), np.array(t))
    np.testing.assert_allclose(a_from_b @ invert_se3(a_from_b), np.eye(4), atol=1e-9)
    np.testing.assert_allclose(invert_se3(a_from_b) @ a_from_b, np.eye(4), atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(quaternions)
def test_quaternion_matrix_round_trip(q):
    q = np.array(q) / np.linalg.norm(q)
    q = q if q[0] >= 0 else -q
    rotation = quat_to_matrix(q)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(rotation) > 0
    q_back = matrix_to_quat(rotation)
    # q and -q are the same rotation; matrix_to_quat picks w >= 0
    assert min(np.abs(q_back - q).max(), np.abs(q_back + q).max()) < 1e-7


def _camera(model: str, coefficients) -> Camera:
    ego_from_camera = se3(np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float), [1.5, 0.0, 1.6])
    K = np.array([[400.0, 0, 320], [0, 410.0, 240], [0, 0, 1]])
    return Camera("cam", 640, 480, K, ego_from_camera, model, coefficients)


CAMERAS = [
    _camera("none", []),
    _camera("radtan", [-0.2, 0.05, 0.001, -0.0005, 0.0]),  # monotonic over the whole image
    _camera("radtan", [0.1, 0.01, 0.0, 0.0]),
    _camera("fisheye", [0.05, -0.01, 0.002, -0.0005]),
]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(CAMERAS) - 1), st.floats(5, 635), st.floats(5, 475), st.floats(0.5, 80))
def test_project_unproject_round_trip(camera_index, u, v, depth):
    camera = CAMERAS[camera_index]
    points = camera.unproject(np.array([[u, v]]), np.array([depth]))
    uv, z = camera.project(points)
    np.testing.assert_allclose(z, [depth], rtol=1e-9)
    np.testing.assert_allclose(uv, [[u, v]], atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, len(CAMERAS) - 1), st.floats(-0.6, 0.6), st.floats(-0.45, 0.45))
def test_distortion_round_trip(camera_index, x, y):
    camera = CAMERAS[camera_index]
    xy = np.array([[x, y]])
    np.testing.assert_allclose(camera.undistort(camera.distort(xy)), xy, atol=1e-8)


def test_distortion_matches_opencv():
    import cv2

    camera = CAMERAS[1]
    points = np.array([[0.3, -0.2, 4.0], [-1.0, 0.5, 6.0], [0.0, 0.0, 3.0]])
    ours, _ = camera.project(points)
    theirs, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), camera.K, camera.distortion)
    np.testing.assert_allclose(ours, theirs.reshape(-1, 2), atol=1e-6)
    fisheye = CAMERAS[3]
    ours, _ = fisheye.project(points)
    theirs, _ = cv2.fisheye.projectPoints(
        points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), fisheye.K, fisheye.distortion
    )
    np.testing.assert_allclose(ours, theirs.reshape(-1, 2), atol=1e-6)


def test_points_behind_camera_do_not_project():
    uv, depth = CAMERAS[0].project(np.array([[0.0, 0.0, -2.0]]))
    assert np.isnan(uv).all() and depth[0] < 0


def test_ego_point_in_front_projects_near_principal_point():
    camera = CAMERAS[0]
    uv, depth = camera.project_ego(np.array([[21.5, 0.0, 1.6]]))  # 20 m ahead at camera height
    np.testing.assert_allclose(uv[0], camera.K[:2, 2], atol=1e-9)
    assert abs(depth[0] - 20.0) < 1e-9


def test_box_corners_follow_yaw():
    corners = box3d_corners(np.array([[10.0, 2.0, 1.0]]), np.array([[4.0, 2.0, 1.5]]), np.array([np.pi / 2]))[0]
    # front-left bottom corner: +l/2 along heading (now +y), +w/2 to the left (now -x)
    np.testing.assert_allclose(corners[0], [9.0, 4.0, 0.25], atol=1e-9)
    np.testing.assert_allclose(corners.mean(0), [10.0, 2.0, 1.0], atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.floats(-24.9, 24.9), st.floats(-19.9, 19.9))
def test_bev_grid_round_trip(x, y):
    grid = BevGrid(-25, 25, -20, 20, 0.5)
    rc = grid.ego_to_cell(np.array([x, y]))
    np.testing.assert_allclose(grid.cell_to_ego(rc), [x, y], atol=1e-9)
    assert 0 <= rc[0] < grid.shape[0] and 0 <= rc[1] < grid.shape[1]


def test_bev_grid_orientation():
    grid = BevGrid(-10, 30, -20, 20, 1.0)
    assert grid.shape == (40, 40)
    # forward is up (row 0), left is left (col 0)
    np.testing.assert_allclose(grid.ego_to_cell(np.array([29.5, 19.5])), [0.5, 0.5])
    centers = grid.cell_centers()
    assert centers[0, 0, 0] > centers[-1, 0, 0] and centers[0, 0, 1] > centers[0, -1, 1]


def test_interpolate_pose_and_wrap():
    a = se3(yaw_matrix(0.0), [0, 0, 0])
    b = se3(yaw_matrix(0.4), [2, 0, 0])
    mid = interpolate_pose(a, b, 0.5)
    np.testing.assert_allclose(mid[:3, 3], [1, 0, 0])
    np.testing.assert_allclose(mid[:3, :3], yaw_matrix(0.2), atol=1e-12)
    np.testing.assert_allclose(transform_points(mid, np.array([1.0, 0, 0])), [1 + np.cos(0.2), np.sin(0.2), 0])
    assert abs(wrap_angle(3 * np.pi / 2) - (-np.pi / 2)) < 1e-12


def test_points_beyond_the_lens_fold_back_do_not_project():
    camera = _camera("radtan", [-0.28, 0.07, 0.0, 0.0, -0.01])
    limit = camera.max_undistorted_radius()
    assert limit is not None and 1.0 < limit < 3.0
    uv, _ = camera.project(np.array([[0.5 * limit, 0, 1.0], [1.2 * limit, 0, 1.0]]))
    assert np.isfinite(uv[0]).all() and np.isnan(uv[1]).all()


def test_resized_intrinsics_follow_opencv_pixel_centres():
    import cv2

    camera = CAMERAS[0]
    image = np.zeros((camera.height, camera.width), np.float32)
    image[200:208, 320:328] = 1.0  # an 8x8 blob whose centre is pixel (323.5, 203.5)
    point = camera.unproject(np.array([[323.5, 203.5]]), np.array([7.0]))
    small = camera.resized(camera.width // 4, camera.height // 4)
    resized = cv2.resize(image, (small.width, small.height), interpolation=cv2.INTER_AREA)
    rows, cols = np.nonzero(resized)
    centre = [np.average(cols, weights=resized[rows, cols]), np.average(rows, weights=resized[rows, cols])]
    np.testing.assert_allclose(small.project(point)[0][0], centre, atol=1e-6)
