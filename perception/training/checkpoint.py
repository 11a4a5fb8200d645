"""Plain deploy checkpoints: ``{"format", "model_name", "model_config", "state_dict", "rig", "cameras", "classes",
"image_size", "normalisation", "bev_grid", "head_grid", "window", "producer", "version"}``, only tensors and plain
Python types, so ``torch.load(path, weights_only=True)`` reads them. Deploy/export and autolabel load them with
``load_model_checkpoint``; Lightning ``.ckpt`` files (state_dict + hyper-parameters) load too."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from perception.atomic import atomic_path
from perception.model_input import MODEL_COLOR

CHECKPOINT_FORMAT = "fleetvision.model/1"


def _plain(value: Any) -> Any:
    """Convert numpy scalars/arrays and tuples into plain Python types (weights_only-safe)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def model_metadata(
    model: torch.nn.Module,
    *,
    model_name: str | None,
    rig: dict | None,
    cameras: list[str] | None,
    window: int | None = None,
) -> dict[str, Any]:
    """Everything but the weights: how to build the model and feed it (cameras, resolution, normalisation)."""
    from perception import __version__

    config = model.config()
    return _plain(
        {
            "format": CHECKPOINT_FORMAT,
            "model_name": model_name,
            "model_config": config,
            "rig": rig,
            "cameras": cameras,
            "classes": {
                "detection3d": config.get("detection3d_classes"),
                "segmentation": config.get("segmentation_classes"),
                "detection2d": config.get("detection2d_classes"),
            },
            "image_size": config["image_size"],
            "normalisation": {
                "input_color": MODEL_COLOR,
                "mean": config["pixel_mean"],
                "std": config["pixel_std"],
            },
            "bev_grid": model.bev_grid() if getattr(model, "has_bev", False) else None,
            "head_grid": model.head_grid() if config.get("detection3d_classes") is not None else None,
            "state_shape": list(model.state_shape()),
            "window": window,
            "producer": "perception.training",
            "version": __version__,
        }
    )


def export_checkpoint(module: Any, path: str | os.PathLike, *, use_ema: bool = True) -> Path:
    """Write ``module``'s model (EMA weights when it has them and ``use_ema``) as a plain checkpoint, atomically."""
    model = module.model
    if use_ema and getattr(module, "ema", None) is not None:
        model = module.ema.shadow
    meta = model_metadata(
        model,
        model_name=getattr(module, "model_name", None),
        rig=getattr(module, "rig", None),
        cameras=getattr(module, "cameras", None),
        window=getattr(module, "window", None),
    )
    payload = {**meta, "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    return Path(path)


def load_model_checkpoint(
    path: str | os.PathLike, *, map_location: str | torch.device = "cpu", use_ema: bool = True
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(model in eval mode, metadata) from an exported checkpoint or a Lightning ``.ckpt`` of ``PerceptionModule``."""
    from perception.models.bevnet import BevVideoNet

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: expected a checkpoint dict, found {type(payload).__name__}")
    if payload.get("format") == CHECKPOINT_FORMAT:
        meta = {k: v for k, v in payload.items() if k != "state_dict"}
        model = BevVideoNet.from_config(payload["model_config"])
        model.load_state_dict(payload["state_dict"])
        return model.eval(), meta
    if "state_dict" in payload and "hyper_parameters" in payload:  # Lightning checkpoint
        from perception.models.zoo import build_model

        hparams = payload["hyper_parameters"]
        model = build_model(hparams["model_name"], **_module_overrides(hparams))
        state = payload["state_dict"]
        prefix = "ema.shadow." if use_ema and any(k.startswith("ema.shadow.") for k in state) else "model."
        model.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        extra = payload.get("fleetvision", {})
        meta = model_metadata(
            model,
            model_name=hparams["model_name"],
            rig=extra.get("rig"),
            cameras=extra.get("cameras"),
            window=extra.get("window"),
        )
        return model.eval(), meta
    raise ValueError(
        f"{path}: not a fleetvision checkpoint (expected key 'format' = {CHECKPOINT_FORMAT!r} "
        f"or a Lightning checkpoint with 'state_dict' and 'hyper_parameters'; found keys {sorted(payload)[:10]})"
    )


def _module_overrides(hparams: dict[str, Any]) -> dict[str, Any]:
    return dict(hparams.get("model_overrides") or {})
