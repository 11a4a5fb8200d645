"""Test-time augmentation for the BEV video model, fused in BEV (for offline teachers).

Two views of the same frames are in distribution for a model trained with the BEV mirror augmentation and
time-reversed windows (``BevAugmentation.flip_y_prob``, ``reverse_time_prob``):

- **mirror**: the ego frame reflected y -> -y (``ego_from_mirrored = diag(1, -1, 1, 1)``). The images stay as they
  are; only the geometry the model is given changes (``camera_from_ego @ ego_from_mirrored``), so the BEV the model
  builds is the mirror image of the real one. ``unmirror_outputs`` maps the outputs back.
- **reversed time**: the clip run from its last frame to its first (``prev_from_curr`` of the reversed order), so
  each frame's temporal state holds the *future* frames. Velocities come out negated (``unreverse_outputs``).

``average_outputs`` fuses aligned outputs: heatmaps as the mean probability (returned as logits, so every decoder
works unchanged), regression maps as the mean (yaw as the mean of its sin/cos), segmentation as mean probability.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

EGO_FROM_MIRRORED = torch.diag(torch.tensor([1.0, -1.0, 1.0, 1.0]))
LOGIT_OUTPUTS = ("heatmap", "segmentation", "det2d_heatmap")


def mirror_inputs(inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Model inputs for the mirrored ego frame (y -> -y); images, intrinsics and distortion are unchanged.

    ``camera_from_ego`` [..., 4, 4] becomes ``camera_from_ego @ ego_from_mirrored`` and ``prev_from_curr``
    ``mirrored_from_ego @ prev_from_curr @ ego_from_mirrored`` (a reflection is its own inverse)."""
    flip = EGO_FROM_MIRRORED.to(inputs["camera_from_ego"])
    out = dict(inputs)
    out["camera_from_ego"] = inputs["camera_from_ego"] @ flip
    out["prev_from_curr"] = flip @ inputs["prev_from_curr"] @ flip
    return out


def _check_symmetric(grid: Mapping[str, float]) -> None:
    if abs(float(grid["y_min"]) + float(grid["y_max"])) > 1e-6:
        raise ValueError(f"mirror TTA needs a BEV grid symmetric in y (y_min = -y_max), found {dict(grid)}")


def unmirror_outputs(outputs: Mapping[str, torch.Tensor], *, bev_grid: Mapping[str, float]) -> dict[str, torch.Tensor]:
    """Map the BEV outputs of a mirrored pass back to the real ego frame (columns = y reversed).

    Cell offsets along y become ``1 - offset`` in the mirrored column, yaw's sine and vy change sign; per-camera 2D
    outputs and the temporal state (which stays in the mirrored frame for the rest of the pass) are left as they are.
    """
    _check_symmetric(bev_grid)
    out = dict(outputs)
    for key in ("heatmap", "z", "size", "segmentation"):
        if key in outputs:
            out[key] = outputs[key].flip(-1)
    if "offset" in outputs:
        offset = outputs["offset"].flip(-1)
        out["offset"] = torch.stack([offset[..., 0, :, :], 1.0 - offset[..., 1, :, :]], dim=-3)
    if "yaw" in outputs:
        yaw = outputs["yaw"].flip(-1)
        out["yaw"] = torch.stack([-yaw[..., 0, :, :], yaw[..., 1, :, :]], dim=-3)
    if "velocity" in outputs:
        velocity = outputs["velocity"].flip(-1)
        out["velocity"] = torch.stack([velocity[..., 0, :, :], -velocity[..., 1, :, :]], dim=-3)
    return out


def unreverse_outputs(outputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Outputs of a time-reversed pass in forward time: velocities change sign."""
    out = dict(outputs)
    if "velocity" in outputs:
        out["velocity"] = -outputs["velocity"]
    return out


def average_outputs(views: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Fuse aligned outputs of several views: mean probability for logit maps (returned as logits), mean otherwise."""
    if not views:
        raise ValueError("average_outputs: no views to fuse")
    fused: dict[str, torch.Tensor] = {}
    for key in views[0]:
        if key == "state":
            continue
        stack = torch.stack([v[key].float() for v in views])
        if key in LOGIT_OUTPUTS:
            probability = torch.sigmoid(stack).mean(0).clamp(1e-6, 1 - 1e-6)
            fused[key] = torch.logit(probability)
        else:
            fused[key] = stack.mean(0)
    return fused
