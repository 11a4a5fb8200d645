"""Dense prediction heads: CenterPoint-style BEV boxes, BEV segmentation, per-camera CenterNet 2D boxes."""

from __future__ import annotations

import math

import torch
from torch import nn

from perception.models.backbones import ConvBnRelu

HEATMAP_PRIOR = 0.1  # initial foreground probability of heatmap logits (CenterNet/CenterPoint use ~0.1)

# Regression channels of the BEV detection head, in output order.
BEV_REGRESSION = {"offset": 2, "z": 1, "size": 3, "yaw": 2, "velocity": 2}


class ResBlock(nn.Module):
    """Basic residual block (two 3x3 convs) at constant width."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBnRelu(channels, channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


def _branch(in_channels: int, hidden: int, out_channels: int, *, bias_prior: float | None = None) -> nn.Sequential:
    head = nn.Sequential(ConvBnRelu(in_channels, hidden), nn.Conv2d(hidden, out_channels, 1))
    if bias_prior is not None:
        nn.init.constant_(head[-1].bias, -math.log((1.0 - bias_prior) / bias_prior))
    return head


class BevDetectionHead(nn.Module):
    """BEV features -> heatmap logits [B,K,..] and offset/z/size/yaw/velocity maps (see ``BEV_REGRESSION``)."""

    def __init__(self, *, in_channels: int, hidden: int, num_classes: int, stride: int) -> None:
        super().__init__()
        self.down = ConvBnRelu(in_channels, hidden, stride=stride)
        self.heatmap = _branch(hidden, hidden, num_classes, bias_prior=HEATMAP_PRIOR)
        self.regression = nn.ModuleDict({name: _branch(hidden, hidden, ch) for name, ch in BEV_REGRESSION.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.down(x)
        out = {"heatmap": self.heatmap(x)}
        for name, branch in self.regression.items():
            out[name] = branch(x)
        return out


class SegmentationHead(nn.Module):
    """BEV features -> per-class logits [B,S,H,W] at BEV resolution."""

    def __init__(self, *, in_channels: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.head = _branch(in_channels, hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


class Detection2dHead(nn.Module):
    """Image features [M,C,h,w] -> CenterNet heatmap logits [M,K2,h,w] and box [M,4,h,w].

    Box channels: (offset_x, offset_y) of the box centre inside its cell in cells, then (log(w/stride), log(h/stride)).
    """

    def __init__(self, *, in_channels: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.heatmap = _branch(in_channels, hidden, num_classes, bias_prior=HEATMAP_PRIOR)
        self.box = _branch(in_channels, hidden, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heatmap(x), self.box(x)
