"""What a model needs from the data: input resolution, BEV grids, class lists, 2D stride (plain dict, torch-free)."""

from __future__ import annotations

from typing import Any

from perception.geometry import BevGrid

SPEC_FIELDS = (
    "image_size",
    "bev_grid",
    "head_grid",
    "detection3d_classes",
    "segmentation_classes",
    "detection2d_classes",
    "image_stride",
)


def target_spec_from_model_config(config: dict[str, Any]) -> dict[str, Any]:
    """The data-side description of a ``BevVideoNet`` config (``model.config()`` or preset + overrides)."""
    bev = config.get("detection3d_classes") is not None or config.get("segmentation_classes") is not None
    grid = None
    head = None
    if bev:
        grid = {
            "x_min": float(config["x_range"][0]),
            "x_max": float(config["x_range"][1]),
            "y_min": float(config["y_range"][0]),
            "y_max": float(config["y_range"][1]),
            "resolution": float(config["resolution"]),
        }
        head = {**grid, "resolution": grid["resolution"] * int(config.get("head_stride", 1))}
    return {
        "image_size": [int(v) for v in config["image_size"]],
        "bev_grid": grid,
        "head_grid": head,
        "detection3d_classes": config.get("detection3d_classes"),
        "segmentation_classes": config.get("segmentation_classes"),
        "detection2d_classes": config.get("detection2d_classes"),
        "image_stride": int(config.get("image_stride", 8)),
    }


def target_spec_for(model_name: str, model_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """``target_spec_from_model_config`` of a registered preset with overrides (imports the model zoo: torch)."""
    from perception.models.zoo import model_defaults

    return target_spec_from_model_config({**model_defaults(model_name), **(model_overrides or {})})


def check_spec(spec: dict[str, Any], where: str = "target_spec") -> dict[str, Any]:
    """Validate the fields of a spec dict; returns it."""
    missing = [k for k in SPEC_FIELDS if k not in spec]
    if missing:
        raise ValueError(f"{where}: missing fields {missing} (expected {list(SPEC_FIELDS)}, found {sorted(spec)})")
    if len(spec["image_size"]) != 2:
        raise ValueError(f"{where}.image_size: expected [height, width], found {spec['image_size']}")
    for key in ("bev_grid", "head_grid"):
        if spec[key] is not None:
            BevGrid.from_dict(spec[key])
    return spec
