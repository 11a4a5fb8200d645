"""Plain checkpoints in (``torch.load(weights_only=True)``), and the rig + camera order an export bakes in."""

from __future__ import annotations

import hashlib
import re
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
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if found is None:  # not a refused global: the file is not a checkpoint at all
            raise ExportError(f"{path}: expected a PyTorch checkpoint, found a file torch cannot read") from None
        raise ExportError(
            f"{path}: refused: expected a plain checkpoint (tensors and plain Python types), found a pickled object "
            f"({found.group(1)}) that could run code when loaded; fleetvision loads only with "
            "torch.load(weights_only=True). hint: save {'state_dict': model.state_dict(), ...} "
            "(perception.training.checkpoint.export_checkpoint writes one)"
        ) from None
    except EOFError:
        raise ExportError(f"{path}: expected a PyTorch checkpoint, found an empty or truncated file") from None
    except (ValueError, KeyError, RuntimeError) as error:
        raise ExportError(f"{path}: cannot load the checkpoint: {' '.join(str(error).split())[:300]}") from error


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
