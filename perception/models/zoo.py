"""Registered model presets: ``build_model(name, **overrides)``, ``list_models()``, ``model_defaults(name)``."""

from __future__ import annotations

import inspect
from typing import Any

from perception.labels import DRIVING_CLASSES
from perception.models.bevnet import BevVideoNet
from perception.models.registry import Registry

BEV_MAP_CLASSES = ["drivable", "lane"]

PRESETS: Registry[dict[str, Any]] = Registry("model")


@PRESETS.register("bev_tiny")
def _bev_tiny() -> dict[str, Any]:
    """CPU-trainable in minutes: resnet18 cut after stride 16, 96x192 images, 1 m cells over +-25 m."""
    return {
        "backbone": "resnet18",
        "backbone_stages": 3,
        "image_channels": 32,
        "image_stride": 8,
        "image_size": [96, 192],
        "x_range": [-25.0, 25.0],
        "y_range": [-25.0, 25.0],
        "resolution": 1.0,
        "z_range": [-1.0, 3.0],
        "num_heights": 4,
        "bev_channels": 32,
        "bev_blocks": 1,
        "head_channels": 32,
        "head_stride": 1,
        "detection3d_classes": list(DRIVING_CLASSES),
        "segmentation_classes": list(BEV_MAP_CLASSES),
        "detection2d_classes": list(DRIVING_CLASSES),
        "temporal": True,
    }


@PRESETS.register("bev_base")
def _bev_base() -> dict[str, Any]:
    """GPU model: resnet34, 224x384 images, 0.5 m cells over +-50 m, detection at 1 m."""
    return {
        "backbone": "resnet34",
        "backbone_stages": 4,
        "image_channels": 96,
        "image_stride": 8,
        "image_size": [224, 384],
        "x_range": [-50.0, 50.0],
        "y_range": [-50.0, 50.0],
        "resolution": 0.5,
        "z_range": [-1.0, 4.0],
        "num_heights": 8,
        "bev_channels": 96,
        "bev_blocks": 2,
        "head_channels": 64,
        "head_stride": 2,
        "detection3d_classes": list(DRIVING_CLASSES),
        "segmentation_classes": list(BEV_MAP_CLASSES),
        "detection2d_classes": list(DRIVING_CLASSES),
        "temporal": True,
    }


@PRESETS.register("teacher")
def _teacher() -> dict[str, Any]:
    """Offline auto-labelling teacher: resnet50, 448x800 images, 0.4 m cells over +-51.2 m."""
    return {
        "backbone": "resnet50",
        "backbone_stages": 4,
        "image_channels": 128,
        "image_stride": 8,
        "image_size": [448, 800],
        "x_range": [-51.2, 51.2],
        "y_range": [-51.2, 51.2],
        "resolution": 0.4,
        "z_range": [-1.0, 4.0],
        "num_heights": 10,
        "bev_channels": 128,
        "bev_blocks": 3,
        "head_channels": 96,
        "head_stride": 2,
        "detection3d_classes": list(DRIVING_CLASSES),
        "segmentation_classes": list(BEV_MAP_CLASSES),
        "detection2d_classes": list(DRIVING_CLASSES),
        "temporal": True,
    }


@PRESETS.register("cam2d")
def _cam2d() -> dict[str, Any]:
    """Single-camera (or per-camera) 2D detector: mobilenet_v3_large + FPN at stride 8, no BEV parts."""
    return {
        "backbone": "mobilenet_v3_large",
        "backbone_stages": 4,
        "image_channels": 64,
        "image_stride": 8,
        "image_size": [384, 640],
        "detection3d_classes": None,
        "segmentation_classes": None,
        "detection2d_classes": list(DRIVING_CLASSES),
        "temporal": False,
    }


def list_models() -> list[str]:
    """Names of the registered presets."""
    return PRESETS.names()


def _constructor_defaults() -> dict[str, Any]:
    parameters = inspect.signature(BevVideoNet.__init__).parameters
    defaults = {k: p.default for k, p in parameters.items() if k != "self"}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}


def model_defaults(name: str) -> dict[str, Any]:
    """ALL constructor kwargs of preset ``name`` (class defaults overlaid with the preset; a fresh copy)."""
    return {**_constructor_defaults(), **PRESETS.get(name)()}


def build_model(name: str, **overrides: Any) -> BevVideoNet:
    """Build preset ``name`` with some constructor kwargs overridden (e.g. ``weights_path=``)."""
    known = list(_constructor_defaults())
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise TypeError(f"build_model({name!r}): unknown overrides {unknown}; BevVideoNet accepts {known}")
    return BevVideoNet(**{**model_defaults(name), **overrides})
