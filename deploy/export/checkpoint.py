"""Plain checkpoints in (``torch.load(weights_only=True)``), and the rig + camera order an export bakes in."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deploy.export import ExportError
from perception.rig import Rig


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, metadata) via ``perception.training.checkpoint.load_model_checkpoint``
    (``torch.load(weights_only=True)``: a checkpoint from an unknown source cannot run code)."""
    import pickle

    from perception.training.checkpoint import load_model_checkpoint

    try:
        return load_model_checkpoint(path)
    except pickle.UnpicklingError as error:
        raise ExportError(
            f"{path}: refused: the checkpoint holds objects other than tensors and plain types, and "
            f"is loaded with torch.load(weights_only=True) ({str(error).splitlines()[0]})"
        ) from error
    except (ValueError, KeyError, RuntimeError) as error:
        raise ExportError(f"{path}: cannot load the checkpoint: {error}") from error


def state_dict_sha256(model: nn.Module) -> str:
    """sha256 over the state_dict (names, dtypes, shapes and bytes, in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{array.dtype}|{tuple(array.shape)}|".encode())
        digest.update(array.numpy().tobytes() if array.dtype != torch.bfloat16 else array.float().numpy().tobytes())
    return digest.hexdigest()


def resolve_rig(meta: dict[str, Any], rig_path: str | Path | None) -> tuple[Rig, list[str]]:
    """The rig and camera order to bake in: ``--rig`` (rig.yaml or a clip folder) overrides the checkpoint's."""
    if rig_path is not None:
        path = Path(rig_path)
        rig = Rig.load(path / "rig.yaml" if path.is_dir() else path)
    elif meta.get("rig"):
        rig = Rig.from_dict(meta["rig"], source="checkpoint 'rig'")
    else:
        raise ExportError(
            "the checkpoint carries no rig; pass --rig RIG.yaml (or a clip folder) so the exported file "
            "knows its cameras, image sizes and calibration"
        )
    cameras = list(meta.get("cameras") or rig.names)
    missing = [name for name in cameras if name not in rig.names]
    if missing:
        raise ExportError(f"rig cameras {rig.names} lack the checkpoint's cameras {missing}")
    return rig, cameras
