"""INT8 quantization of a model made by ``deploy export``, calibrated on real drive-clip frames.

Calibration feeds are built exactly as the runtime builds them (``deploy.clip_feeds``), with the recurrent state
carried across frames by the FP32 model, so every ``prev_state`` the calibrator sees is one the model really
produces. Only convolutions and matrix products are quantized (decoding arithmetic stays float); by default the last
convolution of every head and the whole BEV detection head stay float too.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deploy.clip_feeds import clip_feeds, resolve_clips
from deploy.metadata import copy_metadata
from deploy.onnx_utils import candidate_float_nodes
from deploy.quantize.sensitivity import node_sensitivity
from deploy.quantize.static_int8 import preprocess_model, quantize_static

DEFAULT_QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
# Inside the encoders the residual adds, activations, pooling and upsampling are quantized too, so each encoder runs
# as one int8 chain (QLinearConv -> QLinearAdd -> ...) with no float island and no Dequantize/Quantize pair between
# convolutions (measured on bev_tiny: -0.9 ms of 26 ms CPU per frame, BEV mAP unchanged).
ENCODER_PREFIXES = ("model.image_encoder", "model.bev_encoder")
ENCODER_OPS = ("Add", "Relu", "MaxPool", "Resize")
HEAD_PREFIXES = ("model.detection3d_head", "model.segmentation_head", "model.detection2d_head")
DEFAULT_FLOAT_PREFIXES = ("model.detection3d_head",)  # kept float by default (see quantize_model)


def resolve_keep_float(preprocessed: str | Path, patterns: Sequence[str]) -> list[str]:
    """Node names of the pre-processed graph matching a node name, a node-name prefix, or a prefix of the node's
    weight (its module path, e.g. ``model.detection3d_head``); unknown patterns raise ``ValueError`` with examples."""
    import onnx

    model = onnx.load(str(preprocessed), load_external_data=False)
    chosen: list[str] = []
    for pattern in patterns:
        hits = [
            node.name
            for node in model.graph.node
            if node.name == pattern
            or node.name.startswith(pattern)
            or (len(node.input) > 1 and node.input[1].startswith(pattern))
        ]
        if not hits:
            examples = [n.name for n in model.graph.node if n.op_type == "Conv"][:5]
            raise ValueError(
                f"--keep-float {pattern!r}: matches no node name or weight prefix in {preprocessed} "
                f"(node examples: {examples}; module prefixes like 'model.detection3d_head')"
            )
        chosen += [name for name in hits if name not in chosen]
    return chosen


def _matches_any(preprocessed: str | Path, pattern: str) -> bool:
    try:
        resolve_keep_float(preprocessed, [pattern])
    except ValueError:
        return False
    return True


def module_scopes(model_path: str | Path) -> dict[str, str]:
    """{node name: innermost PyTorch module path} from the ``pkg.torch.onnx.name_scopes`` metadata the dynamo
    exporter writes on every node (empty for files without it)."""
    import ast

    import onnx

    scopes: dict[str, str] = {}
    for node in onnx.load(str(model_path), load_external_data=False).graph.node:
        for prop in node.metadata_props:
            if prop.key == "pkg.torch.onnx.name_scopes":
                try:
                    names = [name for name in ast.literal_eval(prop.value) if name.startswith("model")]
                except (ValueError, SyntaxError):
                    names = []
                if names:
                    scopes[node.name] = names[-1]
    return scopes


def encoder_nodes(model_path: str | Path, preprocessed: str | Path) -> list[str]:
    """Nodes of ``preprocessed`` (the quantizer's input) of ``ENCODER_OPS`` types inside ``ENCODER_PREFIXES``
    modules, located through the exported file's module scopes (``module_scopes``)."""
    import onnx

    scopes = module_scopes(model_path)
    return [
        node.name
        for node in onnx.load(str(preprocessed), load_external_data=False).graph.node
        if node.op_type in ENCODER_OPS and scopes.get(node.name, "").startswith(ENCODER_PREFIXES)
    ]


def final_conv_nodes(model_path: str | Path) -> list[str]:
    """Conv nodes from which no other Conv is reachable downstream: the last convolution of every head branch
    (cheap 1x1 output layers whose rounding error lands directly in scores, offsets and sizes)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    consumers: dict[str, list[int]] = {}
    for position, node in enumerate(graph.node):
        for name in node.input:
            consumers.setdefault(name, []).append(position)
    reaches_conv = [False] * len(graph.node)  # ONNX nodes are topologically sorted: fill from the outputs back
    for position in reversed(range(len(graph.node))):
        downstream = [c for out in graph.node[position].output for c in consumers.get(out, [])]
        reaches_conv[position] = any(graph.node[c].op_type == "Conv" or reaches_conv[c] for c in downstream)
    return [
        node.name for position, node in enumerate(graph.node) if node.op_type == "Conv" and not reaches_conv[position]
    ]


@dataclass
class QuantizeOutcome:
    """The INT8 file and how it was made."""

    path: Path
    method: str
    calibration_frames: int
    nodes_kept_float: list[str]
    seconds: float


def quantize_model(
    model_path: str | Path,
    out_path: str | Path,
    *,
    calib_clips: Sequence[str | Path],
    method: str = "minmax",
    keep_float: Sequence[str] = (),
    frames_per_clip: int = 16,
    quantized_ops: Sequence[str] = DEFAULT_QUANTIZED_OPS,
    per_channel: bool = True,
    keep_heads_float: bool = True,
    quantize_encoders: bool = True,
    progress: bool = False,
) -> QuantizeOutcome:
    """Static INT8 QDQ (``static_int8.quantize_static``) calibrated on real clip frames; only ``quantized_ops`` are
    quantized (decoding arithmetic stays float). With ``keep_heads_float`` (default) the last conv of every head
    and the whole BEV detection head (``DEFAULT_FLOAT_PREFIXES``) stay float: measured on bev_tiny, that lifts BEV
    mAP retained from 94.7% to 99.6% at no measurable latency cost. With ``quantize_encoders`` (default) the
    encoders' ``ENCODER_OPS`` nodes are quantized as well (one int8 chain per encoder). Metadata copied, quantization
    recorded. ``progress``: bars over the calibration frames (collected, then run by onnxruntime's calibrator)."""
    import onnx

    started = time.perf_counter()
    feeds = clip_feeds(model_path, resolve_clips(calib_clips), frames_per_clip=frames_per_clip, progress=progress)
    with tempfile.TemporaryDirectory(prefix="fleetvision_int8_") as work:
        preprocessed = preprocess_model(model_path, Path(work) / "preprocessed.onnx")
        kept = resolve_keep_float(preprocessed, keep_float)
        if keep_heads_float:
            defaults = [prefix for prefix in DEFAULT_FLOAT_PREFIXES if _matches_any(preprocessed, prefix)]
            defaults = resolve_keep_float(preprocessed, defaults) + final_conv_nodes(preprocessed)
            kept += [name for name in defaults if name not in kept]
        encoder = set(encoder_nodes(model_path, preprocessed)) if quantize_encoders else set()
        floats = [
            node.name
            for node in onnx.load(str(preprocessed), load_external_data=False).graph.node
            if node.op_type not in quantized_ops and node.name not in encoder
        ]
        result = quantize_static(
            preprocessed,
            out_path,
            calibration_inputs=feeds,
            method=method,
            per_channel=per_channel,
            nodes_to_exclude=list(dict.fromkeys([*kept, *floats])),
            pre_process=False,
            progress=progress,
        )
    copy_metadata(
        model_path,
        out_path,
        update={
            "quantization": {
                "format": "QDQ INT8 static",
                "method": method,
                "per_channel": per_channel,
                "activation_type": result.activation_type,
                "weight_type": result.weight_type,
                "calibration_frames": len(feeds),
                "calibration_clips": [str(c) for c in calib_clips],
                "quantized_ops": list(quantized_ops),
                "encoder_ops_quantized": sorted(encoder),
                "nodes_kept_float": kept,
                "heads_float": keep_heads_float,
                "source": str(model_path),
            }
        },
    )
    return QuantizeOutcome(Path(out_path), method, len(feeds), kept, time.perf_counter() - started)


DENSE_OUTPUTS = ("det3d_scores", "segmentation", "det2d_scores", "state")


def dense_output_error(accuracy: Any) -> float:
    """Sensitivity score: mean over dense outputs (scores, segmentation, state) of the mean absolute error vs FP32;
    top-K box slots are left out because near-equal scores may swap slots without any accuracy change."""
    values = [e.mean_abs for e in accuracy.errors if e.output in DENSE_OUTPUTS]
    return float(np.mean(values)) if values else accuracy.average_mean_abs()


def node_sensitivity_rows(
    model_path: str | Path, calib: Sequence[dict], *, groups: int, eval_feeds: Sequence[dict], method: str = "minmax"
) -> list[dict[str, Any]]:
    """Per-group sensitivity via ``deploy.quantize.sensitivity.node_sensitivity``: the heads (by module prefix) and the
    last quantizable nodes before the outputs, each kept float in turn."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="fleetvision_sens_") as work:
        preprocessed = preprocess_model(model_path, Path(work) / "pre.onnx")
        candidates: list[list[str]] = []
        for prefix in HEAD_PREFIXES:
            try:
                candidates.append(resolve_keep_float(preprocessed, [prefix]))
            except ValueError:
                continue
        for name in candidate_float_nodes(preprocessed, last_k=groups):
            if not any(name in group for group in candidates):
                candidates.append([name])
        graph_ops = {node.op_type for node in onnx.load(str(preprocessed), load_external_data=False).graph.node}
        _, rows = node_sensitivity(
            preprocessed,
            candidates=candidates[: groups + len(HEAD_PREFIXES)],
            calibration_inputs=list(calib),
            eval_inputs=list(eval_feeds),
            pre_process=False,
            score=dense_output_error,
            work_dir=Path(work) / "sens",
            op_types_to_keep_float=sorted(graph_ops - set(DEFAULT_QUANTIZED_OPS)),
            method=method,  # the calibration the model was quantized with
        )
    return [{"nodes": row.nodes, "score": row.score, "improvement": row.improvement} for row in rows]
