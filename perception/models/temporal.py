"""Explicit-state temporal fusion: warp the previous BEV state by ego motion, then fuse with a ConvGRU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def warp_bev(
    state: torch.Tensor,
    prev_from_curr: torch.Tensor,
    *,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    resolution: float,
) -> torch.Tensor:
    """Resample the previous state [B,C,H,W] onto the current ego grid (ground plane z=0; zeros outside).

    ``prev_from_curr`` [B,4,4] maps current-ego points to previous-ego points (metres).
    """
    rows, cols = state.shape[-2], state.shape[-1]
    x = x_range[1] - (torch.arange(rows, dtype=torch.float32, device=state.device) + 0.5) * resolution
    y = y_range[1] - (torch.arange(cols, dtype=torch.float32, device=state.device) + 0.5) * resolution
    xx, yy = torch.meshgrid(x, y, indexing="ij")
    m = prev_from_curr.float().reshape(-1, 4, 4, 1, 1)
    # Element-wise (not matmul) so autocast keeps the geometry in float32. Result [B,H,W].
    x_prev = m[:, 0, 0] * xx + m[:, 0, 1] * yy + m[:, 0, 3]
    y_prev = m[:, 1, 0] * xx + m[:, 1, 1] * yy + m[:, 1, 3]
    # BevGrid convention: col = (y_max - y)/res, row = (x_max - x)/res; align_corners=False => g = 2*c/W - 1.
    gx = (y_range[1] - y_prev) / resolution * (2.0 / cols) - 1.0
    gy = (x_range[1] - x_prev) / resolution * (2.0 / rows) - 1.0
    grid = torch.stack([gx, gy], dim=-1).to(state.dtype)
    return F.grid_sample(state, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class ConvGRUFusion(nn.Module):
    """Gated recurrent fusion of current BEV features x [B,C,H,W] with the warped state h [B,C,H,W]."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gates = nn.Conv2d(2 * channels, 2 * channels, 3, padding=1)
        self.candidate = nn.Conv2d(2 * channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        update, reset = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([x, reset * h], dim=1)))
        return (1.0 - update) * h + update * candidate
