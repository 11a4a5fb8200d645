"""Backbone registry, feature strides/shapes, truncation, local-file weights loading."""

from pathlib import Path

import pytest
import torch

from perception.models.backbones import BACKBONES, FeaturePyramid, ImageBackbone, ImageEncoder, list_backbones
from perception.models.registry import Registry

EXPECTED = [
    "efficientnet_b0",
    "mobilenet_v3_large",
    "regnet_y_400mf",
    "regnet_y_800mf",
    "resnet18",
    "resnet34",
    "resnet50",
]


def test_registry_lists_all_backbones() -> None:
    assert list_backbones() == EXPECTED


def test_registry_rejects_duplicate_and_unknown_names() -> None:
    registry: Registry[int] = Registry("thing")
    registry.add("a", lambda: 1)
    with pytest.raises(KeyError, match="already registered"):
        registry.add("a", lambda: 2)
    with pytest.raises(KeyError, match="known: \\['a'\\]"):
        registry.get("b")
    with pytest.raises(KeyError, match="already registered"):
        BACKBONES.add("resnet18", lambda **_: [])


@pytest.mark.parametrize("name", EXPECTED)
def test_backbone_feature_shapes_at_stride(name: str) -> None:
    encoder = ImageEncoder(backbone=name, out_channels=16, out_stride=8).eval()
    images = torch.randn(2, 3, 64, 96)
    stages = encoder.backbone(images)
    assert [f.shape[-2:] for f in stages] == [(64 // s, 96 // s) for s in (4, 8, 16, 32)]
    assert tuple(f.shape[1] for f in stages) == encoder.backbone.stage_channels
    with torch.no_grad():
        fused = encoder(images)
    assert fused.shape == (2, 16, 8, 12)
    assert torch.isfinite(fused).all()


def test_truncated_backbone_has_fewer_stages_and_parameters() -> None:
    full = ImageBackbone(name="resnet18")
    cut = ImageBackbone(name="resnet18", num_stages=2)
    assert cut.stage_strides == (4, 8)
    assert len(cut(torch.zeros(1, 3, 64, 64))) == 2
    assert sum(p.numel() for p in cut.parameters()) < sum(p.numel() for p in full.parameters()) / 5
    with pytest.raises(ValueError, match="out_stride"):
        ImageEncoder(backbone="resnet18", num_stages=2, out_stride=16)
    with pytest.raises(ValueError, match="num_stages"):
        ImageBackbone(name="resnet18", num_stages=5)


def test_fpn_rejects_stride_not_in_stages() -> None:
    with pytest.raises(ValueError, match="out_stride"):
        FeaturePyramid(in_channels=(8, 16), strides=(4, 8), out_channels=8, out_stride=12)


def test_weights_load_from_local_file_only(tmp_path: Path) -> None:
    import torchvision

    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    backbone = ImageBackbone(name="resnet18", weights_path=str(path), num_stages=2)
    assert torch.equal(backbone.stages[0][0].weight, source.conv1.weight)
    assert torch.equal(backbone.stages[1][0].conv1.weight, source.layer2[0].conv1.weight)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        ImageBackbone(name="resnet18", weights_path=str(tmp_path / "missing.pth"))
    torch.save({"conv1.weight": source.conv1.weight}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="partial.pth.*missing keys"):
        ImageBackbone(name="resnet18", weights_path=str(tmp_path / "partial.pth"))
