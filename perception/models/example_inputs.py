"""Synthetic forward inputs (a ``perception.rig`` rig's calibration, random images) for tests, export tracing and
benchmarks."""

from __future__ import annotations

import numpy as np
import torch

from perception.model_input import model_distortion, model_intrinsics
from perception.models.bevnet import BevVideoNet
from perception.rig import Rig, ring_rig

RING_RADTAN = (-0.05, 0.01, 0.001, -0.001, 0.0)  # the default ring rig's small radtan lens


def example_inputs(
    model: BevVideoNet,
    *,
    batch_size: int = 1,
    num_cameras: int = 6,
    image_size: tuple[int, int] | None = None,
    time_steps: int | None = None,
    seed: int = 0,
    rig: Rig | None = None,
) -> dict[str, torch.Tensor]:
    """Random images + a rig's calibration for ``model.forward`` (or ``forward_window`` when ``time_steps`` is set).

    ``rig`` None: ``ring_rig(num_cameras=...)`` at the image size with a small radtan lens; a given rig (any lens
    the model takes, e.g. fisheye) is prepared by ``perception.model_input`` for the image size and sets the
    camera count. Images are uniform 0..255; all cameras valid; state_valid = 1 with a small ego motion (0.5 m
    forward per step) so every temporal parameter is exercised.
    """
    generator = torch.Generator().manual_seed(seed)
    h, w = image_size or tuple(model.config()["image_size"])
    if rig is None:
        rig = ring_rig(num_cameras=num_cameras, width=w, height=h)
        for camera in rig:
            camera.distortion_model, camera.distortion = "radtan", np.array(RING_RADTAN)
    num_cameras = len(rig)
    intrinsics = torch.from_numpy(np.stack([model_intrinsics(camera, (h, w)) for camera in rig]).astype(np.float32))
    camera_from_ego = torch.from_numpy(np.stack([camera.camera_from_ego for camera in rig]).astype(np.float32))
    distortion = torch.from_numpy(np.stack([model_distortion(camera) for camera in rig]).astype(np.float32))
    lead = (batch_size,) if time_steps is None else (batch_size, time_steps)
    prev_from_curr = torch.eye(4)
    prev_from_curr[0, 3] = 0.5
    inputs = {
        "images": torch.rand(*lead, num_cameras, 3, h, w, generator=generator) * 255.0,
        "intrinsics": intrinsics.expand(*lead, -1, -1, -1).clone(),
        "camera_from_ego": camera_from_ego.expand(*lead, -1, -1, -1).clone(),
        "distortion": distortion.expand(*lead, -1, -1).clone(),
        "camera_valid": torch.ones(*lead, num_cameras),
        "prev_state": torch.randn(batch_size, *model.state_shape(), generator=generator) * 0.1,
        "prev_from_curr": prev_from_curr.expand(*lead, 4, 4).clone(),
        "state_valid": torch.ones(*lead),
    }
    return inputs
