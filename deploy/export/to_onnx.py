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
    bake_rig: bool = False,
    fallback: str | None = None,
) -> ExportResult:
    """Export ``model`` (fixed shapes from ``rig``/``cameras`` and the model's image size) to ``out`` atomically;
    runs the ONNX checker and strict shape inference and embeds the metadata. Dynamo first; TorchScript only if
    dynamo fails and ``allow_legacy`` (the reason is recorded in ``notes``).

    ``bake_rig``: the view transform is evaluated once for ``rig`` (``deploy.export.bake``); the baked graph must
    reproduce the dynamic one's raw outputs to ``PARITY_TOLERANCE`` of their scale (else ``ExportError``), and the
    metadata's ``view_transform`` record carries the rig's calibration and sha256, the parity figures and
    ``fallback`` (the file name of a dynamic export beside ``out``, if any)."""
    import onnx

    out = Path(out)
    model = model.eval()
    graph = DeployGraph(model, top_k=top_k, top_k_2d=top_k_2d, bake_for=(rig, cameras) if bake_rig else None).eval()
    feeds = example_feeds(model, rig, cameras)
    args = tuple(torch.from_numpy(feeds[name]) for name in INPUT_NAMES)
    notes: list[str] = []
    view_transform = _view_transform_record(model, graph, rig, cameras, feeds, top_k, top_k_2d, fallback)
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
            view_transform=view_transform,
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


def _view_transform_record(
    model: nn.Module,
    graph: DeployGraph,
    rig: Rig,
    cameras: list[str],
    feeds: dict[str, Any],
    top_k: int,
    top_k_2d: int,
    fallback: str | None,
) -> dict[str, Any]:
    """The metadata ``view_transform`` record; for a baked graph, after checking it against the dynamic one."""
    if not graph.baked:
        return {"mode": "dynamic"}
    from deploy.export.bake import bake_parity, parity_feeds
    from deploy.runtime.baked_rig import baked_record

    dynamic = DeployGraph(model, top_k=top_k, top_k_2d=top_k_2d).eval()
    parity = bake_parity(dynamic, graph, parity_feeds(feeds))
    if not parity["passed"]:
        worst = max(parity["outputs"].items(), key=lambda item: item[1]["relative"])
        raise ExportError(
            f"--bake-rig: the baked view transform does not reproduce the dynamic graph: output {worst[0]!r} differs "
            f"by {worst[1]['max_abs']:.3g} ({worst[1]['relative']:.3g} of its scale {worst[1]['scale']:.3g}; "
            f"tolerance {parity['tolerance']:g})"
        )
    return baked_record(
        rig,
        cameras,
        tuple(model.config()["image_size"]),
        parity=parity,
        statistics=graph.model.lifting.statistics(),
        capture_time=(
            "first-order correction: the static rig extrinsics were baked; each camera's motion since the frame's "
            "reference time (camera_from_ego = static @ (I + G)) moves its sampling points by their baked Jacobian "
            "and updates the bilinear weights to first order inside their cell"
            if graph.model.lifting.correct_motion
            else "not applied: the static rig extrinsics were baked; camera_from_ego is ignored"
        ),
        fallback=fallback,
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
    bake_rig: bool = False,
    dynamic_fallback: bool = False,
) -> tuple[ExportResult, nn.Module, DeployGraph]:
    """Load a checkpoint (weights_only) and export it; returns (result, model, graph) for a parity check.
    ``bake_rig``: the view transform baked for the rig; with ``dynamic_fallback`` a dynamic export is written
    beside it as ``<out stem>.dynamic.onnx`` and named in the baked file's metadata (the runtime runs it for a clip
    of another rig)."""
    model, meta = load_checkpoint(checkpoint)
    rig, cameras = resolve_rig(meta, rig_path)
    common: dict[str, Any] = dict(
        rig=rig,
        cameras=cameras,
        top_k=top_k,
        top_k_2d=top_k_2d,
        model_name=meta.get("model_name"),
        checkpoint=checkpoint,
        budget=budget,
        simplify=simplify,
    )
    fallback = None
    notes: list[str] = []
    if bake_rig and dynamic_fallback:
        out = Path(out)
        fallback_path = out.with_name(out.stem + ".dynamic.onnx")
        export_onnx(model, out=fallback_path, **common)
        fallback = fallback_path.name
        notes.append(f"dynamic fallback for clips of other rigs: {fallback_path}")
    result = export_onnx(model, out=out, bake_rig=bake_rig, fallback=fallback, **common)
    result.notes += notes
    bake_for = (rig, cameras) if bake_rig else None
    return result, model, DeployGraph(model, top_k=top_k, top_k_2d=top_k_2d, bake_for=bake_for).eval()
