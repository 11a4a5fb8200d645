"""Synthetic forward inputs (a ring of pinhole cameras) for tests, export tracing and benchmarks."""

from __future__ import annotations

import math

import torch

from perception.models.bevnet import BevVideoNet


def ring_rig(
    *, num_cameras: int, image_size: tuple[int, int], hfov_deg: float = 80.0, height_m: float = 1.6
) -> tuple[torch.Tensor, torch.Tensor]:
    """(intrinsics [N,3,3], camera_from_ego [N,4,4]) of cameras evenly spaced in yaw, looking outwards."""
    h, w = image_size
    focal = 0.5 * w / math.tan(math.radians(hfov_deg) / 2)
    K = torch.tensor([[focal, 0.0, w / 2 - 0.5], [0.0, focal, h / 2 - 0.5], [0.0, 0.0, 1.0]])
    intrinsics, extrinsics = [], []
    for i in range(num_cameras):
        yaw = 2 * math.pi * i / num_cameras
        forward = torch.tensor([math.cos(yaw), math.sin(yaw), 0.0])
        right = torch.tensor([math.sin(yaw), -math.cos(yaw), 0.0])
        down = torch.tensor([0.0, 0.0, -1.0])
        rotation = torch.stack([right, down, forward])  # rows: camera axes in ego frame
        position = torch.tensor([1.0, 0.0, height_m]) + 0.5 * forward
        camera_from_ego = torch.eye(4)
        camera_from_ego[:3, :3] = rotation
        camera_from_ego[:3, 3] = -rotation @ position
        intrinsics.append(K)
        extrinsics.append(camera_from_ego)
    return torch.stack(intrinsics), torch.stack(extrinsics)


def example_inputs(
    model: BevVideoNet,
    *,
    batch_size: int = 1,
    num_cameras: int = 6,
    image_size: tuple[int, int] | None = None,
    time_steps: int | None = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Random images + ring rig for ``model.forward`` (or ``forward_window`` when ``time_steps`` is set).

    Images are uniform 0..255; distortion is small radtan; all cameras valid; state_valid = 1 with a small
    ego motion (0.5 m forward per step) so every temporal parameter is exercised.
    """
    generator = torch.Generator().manual_seed(seed)
    h, w = image_size or tuple(model.config()["image_size"])
    intrinsics, camera_from_ego = ring_rig(num_cameras=num_cameras, image_size=(h, w))
    lead = (batch_size,) if time_steps is None else (batch_size, time_steps)
    prev_from_curr = torch.eye(4)
    prev_from_curr[0, 3] = 0.5
    inputs = {
        "images": torch.rand(*lead, num_cameras, 3, h, w, generator=generator) * 255.0,
        "intrinsics": intrinsics.expand(*lead, -1, -1, -1).clone(),
        "camera_from_ego": camera_from_ego.expand(*lead, -1, -1, -1).clone(),
        "distortion": torch.tensor([-0.05, 0.01, 0.001, -0.001, 0.0]).expand(*lead, num_cameras, 5).clone(),
        "camera_valid": torch.ones(*lead, num_cameras),
        "prev_state": torch.randn(batch_size, *model.state_shape(), generator=generator) * 0.1,
        "prev_from_curr": prev_from_curr.expand(*lead, 4, 4).clone(),
        "state_valid": torch.ones(*lead),
    }
    return inputs
