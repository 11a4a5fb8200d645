"""``export_onnx``: a model -> an ONNX file (dynamo first), checked, shape-inferred, with its metadata, atomically."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deploy.export import ExportError
from deploy.export.checkpoint import load_checkpoint, resolve_rig
from deploy.export.describe import build_metadata
from deploy.export.graph import INPUT_NAMES, DeployGraph, example_feeds, torch_runner
from deploy.metadata import set_metadata
from perception.atomic import atomic_path
from perception.rig import Rig

LOG = logging.getLogger(__name__)


@dataclass
class ExportResult:
    """What ``export_onnx`` wrote."""

    path: Path
    exporter: str
    seconds: float
    size_mb: float
    metadata: dict[str, Any]
    simplified: bool = False
    notes: list[str] = field(default_factory=list)


def _torch_export(graph: DeployGraph, args: tuple[torch.Tensor, ...], path: Path, *, dynamo: bool) -> None:
    """``torch.onnx.export`` with fixed shapes into ``path`` (weights embedded)."""
    kwargs: dict[str, Any] = dict(input_names=list(INPUT_NAMES), output_names=graph.output_names())
    if dynamo:
        program = torch.onnx.export(graph, args, dynamo=True, optimize=True, external_data=False, **kwargs)
        program.save(str(path), external_data=False)
    else:
        torch.onnx.export(graph, args, str(path), dynamo=False, opset_version=17, do_constant_folding=True, **kwargs)


def export_onnx(
    model: nn.Module,
    *,
    rig: Rig,
    cameras: list[str],
    out: str | Path,
    top_k: int = 100,
    top_k_2d: int = 50,
    model_name: str | None = None,
    checkpoint: str | Path | None = None,
    budget: dict[str, Any] | None = None,
    simplify: bool = False,
    allow_legacy: bool = True,
) -> ExportResult:
    """Export ``model`` (fixed shapes from ``rig``/``cameras`` and the model's image size) to ``out`` atomically;
    runs the ONNX checker and strict shape inference and embeds the metadata. Dynamo first; TorchScript only if
    dynamo fails and ``allow_legacy`` (the reason is recorded in ``notes``)."""
    import onnx

    out = Path(out)
    model = model.eval()
    graph = DeployGraph(model, top_k=top_k, top_k_2d=top_k_2d).eval()
    feeds = example_feeds(model, rig, cameras)
    args = tuple(torch.from_numpy(feeds[name]) for name in INPUT_NAMES)
    notes: list[str] = []
    started = time.perf_counter()
    with atomic_path(out, suffix=".onnx") as temporary:
        exporter = "torch.onnx.export(dynamo=True)"
        try:
            _torch_export(graph, args, temporary, dynamo=True)
        except Exception as error:
            if not allow_legacy:
                raise ExportError(f"dynamo export failed: {error}") from error
            notes.append(f"dynamo export failed ({type(error).__name__}: {str(error)[:300]}); used dynamo=False")
            LOG.warning(notes[-1])
            exporter = "torch.onnx.export(dynamo=False)"
            _torch_export(graph, args, temporary, dynamo=False)
        proto = onnx.load(str(temporary))
        onnx.checker.check_model(proto, full_check=True)
        proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
        simplified = False
        if simplify:
            proto, simplified = _simplify(proto, notes)
        reference = torch_runner(graph)(feeds)
        metadata = build_metadata(
            graph,
            rig=rig,
            cameras=cameras,
            model_name=model_name,
            checkpoint=checkpoint,
            budget=budget,
            exporter=exporter + (" + onnxslim" if simplified else ""),
            feeds=feeds,
            outputs=reference,
        )
        set_metadata(proto, metadata)
        onnx.save_model(proto, str(temporary))
    return ExportResult(
        path=out,
        exporter=metadata["exporter"],
        seconds=time.perf_counter() - started,
        size_mb=out.stat().st_size / 1e6,
        metadata=metadata,
        simplified=simplified,
        notes=notes,
    )


def _simplify(proto: Any, notes: list[str]) -> tuple[Any, bool]:
    """onnxslim graph simplification when installed (kept optional: ``--simplify``)."""
    try:
        import onnxslim
    except ImportError:
        notes.append("--simplify: onnxslim is not installed (pip install onnxslim); exported without simplification")
        return proto, False
    import onnx

    slimmed = onnxslim.slim(proto)
    onnx.checker.check_model(slimmed)
    return slimmed, True


def export_checkpoint_to_onnx(
    checkpoint: str | Path,
    out: str | Path,
    *,
    rig_path: str | Path | None = None,
    top_k: int = 100,
    top_k_2d: int = 50,
    budget: dict[str, Any] | None = None,
    simplify: bool = False,
) -> tuple[ExportResult, nn.Module, DeployGraph]:
    """Load a checkpoint (weights_only) and export it; returns (result, model, graph) for a parity check."""
    model, meta = load_checkpoint(checkpoint)
    rig, cameras = resolve_rig(meta, rig_path)
    result = export_onnx(
        model,
        rig=rig,
        cameras=cameras,
        out=out,
        top_k=top_k,
        top_k_2d=top_k_2d,
        model_name=meta.get("model_name"),
        checkpoint=checkpoint,
        budget=budget,
        simplify=simplify,
    )
    return result, model, DeployGraph(model, top_k=top_k, top_k_2d=top_k_2d).eval()
