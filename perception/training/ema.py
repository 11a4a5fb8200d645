"""Exponential moving average of model weights (kept as a frozen copy of the model; buffers are copied)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEma(nn.Module):
    """``shadow = decay * shadow + (1 - decay) * weights`` after each optimiser step, with a warm-up of the decay.

    The effective decay is ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so early averages are not
    dominated by the random initialisation. The shadow model never needs gradients (DDP ignores it).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ModelEma: decay must be in (0, 1), found {decay}")
        self.decay = float(decay)
        self.shadow = copy.deepcopy(model).requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend ``model``'s current parameters into the shadow; copy its buffers (BatchNorm statistics)."""
        n = int(self.updates.item())
        decay = min(self.decay, (1.0 + n) / (10.0 + n))
        shadow_params = dict(self.shadow.named_parameters())
        for name, param in model.named_parameters():
            shadow_params[name].lerp_(param.detach().to(shadow_params[name].dtype), 1.0 - decay)
        shadow_buffers = dict(self.shadow.named_buffers())
        for name, buffer in model.named_buffers():
            shadow_buffers[name].copy_(buffer)
        self.updates += 1
