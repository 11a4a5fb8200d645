"""Simple-BEV style lifting: project BEV voxel centres into every camera and bilinearly sample features.

Everything rig-dependent (intrinsics, extrinsics, distortion, which cameras exist) is a forward input, so
one trained model runs on any rig. Only the voxel grid (a constructor argument) is a buffer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from perception.model_input import DISTORTION_COLUMNS, LENS_IDS

# radtan: normalised image coordinates are clamped to |x/z|, |y/z| <= this before distortion (~87 deg off-axis);
# points beyond it are invalid. It keeps the distortion polynomial finite for points near the camera plane.
MAX_TAN_ANGLE = 20.0
MIN_DEPTH_M = 0.1  # radtan: depth along the optical axis; fisheye: distance from the camera centre
# fisheye: seen while z > this (as ``perception.rig.Camera.project``), i.e. up to 90 deg off-axis; never behind
FISHEYE_MIN_Z_M = 1e-6


def voxel_centers(
    *,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    resolution: float,
    z_range: tuple[float, float],
    num_heights: int,
) -> torch.Tensor:
    """Ego-frame voxel centres [Z, H, W, 3] (metres); row 0 = forward edge x_max, col 0 = left edge y_max."""
    rows = round((x_range[1] - x_range[0]) / resolution)
    cols = round((y_range[1] - y_range[0]) / resolution)
    x = x_range[1] - (torch.arange(rows, dtype=torch.float64) + 0.5) * resolution
    y = y_range[1] - (torch.arange(cols, dtype=torch.float64) + 0.5) * resolution
    dz = (z_range[1] - z_range[0]) / num_heights
    z = z_range[0] + (torch.arange(num_heights, dtype=torch.float64) + 0.5) * dz
    zz, xx, yy = torch.meshgrid(z, x, y, indexing="ij")
    return torch.stack([xx, yy, zz], dim=-1).float()


def _radtan(
    x_cam: torch.Tensor, y_cam: torch.Tensor, depth: torch.Tensor, coefficients: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """OpenCV radtan (k1, k2, p1, p2, k3) on x/z, y/z -> (xd, yd, ok)."""
    k1, k2, p1, p2, k3 = coefficients
    safe_depth = depth.clamp(min=MIN_DEPTH_M)
    xn = (x_cam / safe_depth).clamp(-MAX_TAN_ANGLE, MAX_TAN_ANGLE)
    yn = (y_cam / safe_depth).clamp(-MAX_TAN_ANGLE, MAX_TAN_ANGLE)
    r2 = xn * xn + yn * yn
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    slope = 1.0 + r2 * (3.0 * k1 + r2 * (5.0 * k2 + r2 * 7.0 * k3))  # d(r * radial)/dr: <= 0 where it folds back
    xy2 = 2.0 * xn * yn
    xd = xn * radial + p1 * xy2 + p2 * (r2 + 2.0 * xn * xn)
    yd = yn * radial + p1 * (r2 + 2.0 * yn * yn) + p2 * xy2
    within = (x_cam.abs() < MAX_TAN_ANGLE * safe_depth) & (y_cam.abs() < MAX_TAN_ANGLE * safe_depth)
    return xd, yd, (depth > MIN_DEPTH_M) & within & (slope > 0)


def _fisheye(
    x_cam: torch.Tensor, y_cam: torch.Tensor, depth: torch.Tensor, coefficients: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """OpenCV fisheye (equidistant Kannala-Brandt k1..k4) on the ray angle theta -> (xd, yd, ok).

    theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8); (xd, yd) = theta_d (x, y) / |(x, y)|.
    Computed from the angle, not from x/z, so it stays exact up to 90 deg off-axis; z <= 0 (at or behind the
    camera plane: a lens wider than 180 deg) is invalid, as in ``Camera.project``."""
    k1, k2, k3, k4 = coefficients[:4]
    off_axis = torch.sqrt(x_cam * x_cam + y_cam * y_cam + 1e-12)  # metres from the optical axis (> 0: no 0/0)
    theta = torch.atan(off_axis / depth.clamp(min=FISHEYE_MIN_Z_M))
    t2 = theta * theta
    theta_d = theta * (1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
    slope = 1.0 + t2 * (3.0 * k1 + t2 * (5.0 * k2 + t2 * (7.0 * k3 + t2 * 9.0 * k4)))  # d(theta_d)/d(theta)
    scale = theta_d / off_axis
    distance = torch.sqrt(off_axis * off_axis + depth * depth)
    return x_cam * scale, y_cam * scale, (depth > FISHEYE_MIN_Z_M) & (distance > MIN_DEPTH_M) & (slope > 0)


def project_points(
    points_ego: torch.Tensor,
    intrinsics: torch.Tensor,
    camera_from_ego: torch.Tensor,
    distortion: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Project ego points [P,3] into cameras -> (uv [B,N,P,2] pixels, depth [B,N,P] metres, ok [B,N,P] bool).

    The model's one projection (training, export and any later precomputation use it); it equals
    ``perception.rig.Camera.project``. intrinsics [B,N,3,3], camera_from_ego [B,N,4,4], distortion [B,N,6] in
    ``perception.model_input``'s layout: five coefficients, then the lens id (``LENS_IDS``): radtan
    (k1, k2, p1, p2, k3; zeros = pinhole) or fisheye (k1, k2, k3, k4, 0). ``ok`` is False where a camera does not
    see the point: behind it, radtan beyond ``MAX_TAN_ANGLE``, or where the lens's radial mapping has folded back
    (its derivative <= 0), so such points never alias into the image.
    """
    if distortion.shape[-1] != len(DISTORTION_COLUMNS):
        raise ValueError(
            f"project_points: distortion: expected [..., {len(DISTORTION_COLUMNS)}] "
            f"({', '.join(DISTORTION_COLUMNS)}; perception.model_input.model_distortion), "
            f"found shape {list(distortion.shape)}"
        )
    # Element-wise products (not matmul) so autocast keeps the geometry in float32.
    camera_from_ego = camera_from_ego.float()
    px, py, pz = points_ego[:, 0].float(), points_ego[:, 1].float(), points_ego[:, 2].float()

    def camera_axis(i: int) -> torch.Tensor:  # coordinate i in the camera frame, [B,N,P]
        m = camera_from_ego[..., i, :].unsqueeze(-2)  # [B,N,1,4]
        return m[..., 0] * px + m[..., 1] * py + m[..., 2] * pz + m[..., 3]

    x_cam, y_cam, depth = camera_axis(0), camera_axis(1), camera_axis(2)
    distortion, intrinsics = distortion.float(), intrinsics.float()
    coefficients = [distortion[..., i : i + 1] for i in range(5)]  # [B,N,1] each
    fisheye = distortion[..., 5:6] == float(LENS_IDS["fisheye"])  # [B,N,1]
    xd_r, yd_r, ok_r = _radtan(x_cam, y_cam, depth, coefficients)
    xd_f, yd_f, ok_f = _fisheye(x_cam, y_cam, depth, coefficients)
    xd, yd = torch.where(fisheye, xd_f, xd_r), torch.where(fisheye, yd_f, yd_r)
    ok = (fisheye & ok_f) | (~fisheye & ok_r)  # not a bool Where: onnxruntime has no CPU kernel for it
    fx, skew, cx = intrinsics[..., 0, 0:1], intrinsics[..., 0, 1:2], intrinsics[..., 0, 2:3]
    fy, cy = intrinsics[..., 1, 1:2], intrinsics[..., 1, 2:3]
    u = fx * xd + skew * yd + cx
    v = fy * yd + cy
    return torch.stack([u, v], dim=-1), depth, ok


class BevLifting(nn.Module):
    """Camera features [B,N,C,h,w] -> BEV features [B, C*Z, H, W] (heights folded into channels).

    Each voxel averages the features of the cameras that see it (in front, inside the image,
    ``camera_valid``); voxels no camera sees are zero.
    """

    def __init__(
        self,
        *,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        resolution: float,
        z_range: tuple[float, float],
        num_heights: int,
    ) -> None:
        super().__init__()
        centers = voxel_centers(
            x_range=x_range, y_range=y_range, resolution=resolution, z_range=z_range, num_heights=num_heights
        )
        self.grid_shape = tuple(centers.shape[:3])  # (Z, H, W)
        self.register_buffer("points", centers.reshape(-1, 3), persistent=False)

    def sampling_grid(
        self,
        intrinsics: torch.Tensor,
        camera_from_ego: torch.Tensor,
        distortion: torch.Tensor,
        image_size: tuple[int, int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Where every voxel centre lands in every camera: (grid [B,N,P,2] in ``grid_sample``'s normalised
        coordinates (align_corners=False), seen [B,N,P] bool: in front of the camera and inside its image).

        The geometry half of ``forward`` (no features, no ``camera_valid``), so anything that precomputes the
        lifting for a fixed rig (``perception.models.baked_lifting``) evaluates this very function."""
        uv, _, ok = project_points(self.points, intrinsics, camera_from_ego, distortion)
        height, width = image_size
        # align_corners=False: normalised -1 is the outer edge of pixel 0, i.e. OpenCV pixel coordinate -0.5.
        gx = (uv[..., 0] + 0.5) * (2.0 / width) - 1.0
        gy = (uv[..., 1] + 0.5) * (2.0 / height) - 1.0
        inside = (gx >= -1.0) & (gx <= 1.0) & (gy >= -1.0) & (gy <= 1.0)
        return torch.stack([gx, gy], dim=-1), ok & inside

    def forward(
        self,
        features: torch.Tensor,
        intrinsics: torch.Tensor,
        camera_from_ego: torch.Tensor,
        distortion: torch.Tensor,
        camera_valid: torch.Tensor,
        image_size: tuple[int, int],
    ) -> torch.Tensor:
        """Lift; ``intrinsics`` are for the image of size ``image_size`` (H, W) the features came from."""
        batch, cams, channels = features.shape[0], features.shape[1], features.shape[2]
        num_z, rows, cols = self.grid_shape
        grid, seen = self.sampling_grid(intrinsics, camera_from_ego, distortion, image_size)
        visible = seen.to(features.dtype) * camera_valid.to(features.dtype).unsqueeze(-1)  # [B,N,P]
        grid = torch.where(visible.unsqueeze(-1) > 0, grid, torch.full_like(grid, -2.0))
        grid = grid.reshape(batch * cams, num_z * rows, cols, 2).to(features.dtype)
        flat = features.reshape(batch * cams, channels, features.shape[3], features.shape[4])
        sampled = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        sampled = sampled.reshape(batch, cams, channels, num_z * rows * cols) * visible.unsqueeze(2)
        count = visible.sum(dim=1).clamp(min=1.0).unsqueeze(1)  # [B,1,P]
        mean = sampled.sum(dim=1) / count  # [B,C,P]
        return mean.reshape(batch, channels * num_z, rows, cols)
