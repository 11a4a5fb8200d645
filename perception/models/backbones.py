"""Torchvision image backbones behind one multi-stage feature interface, plus a one-map FPN.

Every backbone is split into up to four stages with output strides 4, 8, 16, 32 (pixels of the input
image). Weights come only from a local file (``weights_path``, a torchvision state_dict of the whole
classifier, loaded with ``torch.load(weights_only=True)``); nothing is ever downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from perception.models.registry import Registry

STAGE_STRIDES = (4, 8, 16, 32)
BACKBONES: Registry[list[nn.Module]] = Registry("backbone")


def load_state_dict_file(module: nn.Module, weights_path: str | Path) -> None:
    """Load a local state_dict file (``weights_only=True``) into ``module``; errors name the file and keys."""
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found (weights are only read from local files)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state_dict (dict of tensors), found {type(state).__name__}")
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{path}: state_dict does not match {type(module).__name__}: "
            f"missing keys {result.missing_keys[:5]} ({len(result.missing_keys)}), "
            f"unexpected keys {result.unexpected_keys[:5]} ({len(result.unexpected_keys)})"
        )


def _classifier(builder: Callable[..., nn.Module], weights_path: str | None) -> nn.Module:
    model = builder(weights=None)
    if weights_path is not None:
        load_state_dict_file(model, weights_path)
    return model


def _split_by_stride(blocks: nn.Sequential) -> list[nn.Module]:
    """Group sequential blocks into stages ending at strides 4, 8, 16, 32 (found with a probe input)."""
    probe = torch.zeros(1, 3, 64, 64)
    stages: list[list[nn.Module]] = [[] for _ in STAGE_STRIDES]
    was_training = blocks.training
    blocks.eval()
    with torch.no_grad():
        x = probe
        for block in blocks:
            x = block(x)
            stride = probe.shape[-1] // x.shape[-1]
            stages[STAGE_STRIDES.index(max(stride, 4))].append(block)
    blocks.train(was_training)
    return [nn.Sequential(*group) for group in stages]


def _resnet(builder: Callable[..., nn.Module]) -> Callable[..., list[nn.Module]]:
    def build(*, weights_path: str | None = None) -> list[nn.Module]:
        m = _classifier(builder, weights_path)
        stem = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1)
        return [stem, m.layer2, m.layer3, m.layer4]

    return build


def _regnet(builder: Callable[..., nn.Module]) -> Callable[..., list[nn.Module]]:
    def build(*, weights_path: str | None = None) -> list[nn.Module]:
        m = _classifier(builder, weights_path)
        trunk = m.trunk_output
        return [nn.Sequential(m.stem, trunk.block1), trunk.block2, trunk.block3, trunk.block4]

    return build


def _features_net(builder: Callable[..., nn.Module]) -> Callable[..., list[nn.Module]]:
    def build(*, weights_path: str | None = None) -> list[nn.Module]:
        return _split_by_stride(_classifier(builder, weights_path).features)

    return build


BACKBONES.add("resnet18", _resnet(torchvision.models.resnet18))
BACKBONES.add("resnet34", _resnet(torchvision.models.resnet34))
BACKBONES.add("resnet50", _resnet(torchvision.models.resnet50))
BACKBONES.add("regnet_y_400mf", _regnet(torchvision.models.regnet_y_400mf))
BACKBONES.add("regnet_y_800mf", _regnet(torchvision.models.regnet_y_800mf))
BACKBONES.add("mobilenet_v3_large", _features_net(torchvision.models.mobilenet_v3_large))
BACKBONES.add("efficientnet_b0", _features_net(torchvision.models.efficientnet_b0))


def list_backbones() -> list[str]:
    """Names accepted by ``ImageBackbone(name=...)``."""
    return BACKBONES.names()


class ImageBackbone(nn.Module):
    """A registered backbone truncated to ``num_stages`` stages; ``forward`` returns one map per stage.

    ``stage_strides[i]`` is the stride (input pixels) of output ``i``, ``stage_channels[i]`` its channels.
    """

    def __init__(self, *, name: str, weights_path: str | None = None, num_stages: int = 4) -> None:
        super().__init__()
        if not 1 <= num_stages <= len(STAGE_STRIDES):
            raise ValueError(f"ImageBackbone: num_stages must be in 1..4, found {num_stages}")
        self.stages = nn.ModuleList(BACKBONES.get(name)(weights_path=weights_path)[:num_stages])
        self.stage_strides: tuple[int, ...] = STAGE_STRIDES[:num_stages]
        self.stage_channels: tuple[int, ...] = self._probe_channels()

    def _probe_channels(self) -> tuple[int, ...]:
        was_training = self.training
        self.eval()
        with torch.no_grad():
            channels = tuple(f.shape[1] for f in self(torch.zeros(1, 3, 64, 64)))
        self.train(was_training)
        return channels

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Normalised images [B,3,H,W] -> per-stage features [B,C_i,H/s_i,W/s_i]."""
        features = []
        x = images
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class ConvBnRelu(nn.Sequential):
    """3x3 (or k x k) conv, batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class FeaturePyramid(nn.Module):
    """Fuses the stages at stride >= ``out_stride`` into ONE map at ``out_stride`` (top-down sum + 3x3 conv)."""

    def __init__(self, *, in_channels: tuple[int, ...], strides: tuple[int, ...], out_channels: int, out_stride: int):
        super().__init__()
        if out_stride not in strides:
            raise ValueError(
                f"FeaturePyramid: out_stride must be one of the stage strides {strides}, found {out_stride}"
            )
        self.first = strides.index(out_stride)
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1, bias=False) for c in in_channels[self.first :])
        self.fuse = ConvBnRelu(out_channels, out_channels)
        self.out_stride = out_stride

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Per-stage features -> [B, out_channels, H/out_stride, W/out_stride]."""
        used = features[self.first :]
        x = self.lateral[-1](used[-1])
        for lateral, feature in zip(reversed(self.lateral[:-1]), reversed(used[:-1])):
            x = lateral(feature) + F.interpolate(x, size=feature.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(x)


class ImageEncoder(nn.Module):
    """Backbone + FPN: normalised images [B,3,H,W] -> one fused map [B,C,H/s,W/s] at stride ``out_stride``."""

    def __init__(
        self,
        *,
        backbone: str,
        weights_path: str | None = None,
        num_stages: int = 4,
        out_channels: int = 64,
        out_stride: int = 8,
    ) -> None:
        super().__init__()
        self.backbone = ImageBackbone(name=backbone, weights_path=weights_path, num_stages=num_stages)
        self.neck = FeaturePyramid(
            in_channels=self.backbone.stage_channels,
            strides=self.backbone.stage_strides,
            out_channels=out_channels,
            out_stride=out_stride,
        )
        self.out_channels = out_channels
        self.out_stride = out_stride

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.neck(self.backbone(images))
