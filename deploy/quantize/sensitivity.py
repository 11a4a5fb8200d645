"""Which nodes to keep in float: quantize with one candidate group kept float at a time and rank the groups by how
much they lower the output error (``node_sensitivity``), then add the best groups one by one until the error is
within a tolerance (``greedy_float_nodes``)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.onnx_utils import make_session
from deploy.quantize.calibration import Feeds, supports_calibration_cache
from deploy.quantize.output_error import Metric, Outputs, VariantAccuracy, output_errors, run_outputs
from deploy.quantize.static_int8 import preprocess_model, quantize_static


@dataclass
class NodeSensitivity:
    """Effect of keeping one candidate group in float while the rest of the model is INT8."""

    nodes: list[str]
    accuracy: VariantAccuracy
    score: float
    improvement: float  # baseline score - score (> 0 = keeping these nodes in float helps)


def _quantized_accuracy(
    source: Path,
    work: Path,
    tag: str,
    *,
    exclude: Sequence[str],
    calibration_inputs,
    eval_inputs: Sequence[Feeds],
    reference_outputs: Outputs,
    metric: Metric | None,
    quantize_kwargs: Mapping,
) -> VariantAccuracy:
    """Quantize ``source`` with ``exclude`` kept float, run it on ``eval_inputs``, score against the reference."""
    cache = work / "calibration.json" if supports_calibration_cache() else None
    result = quantize_static(
        source,
        work / f"{tag}.onnx",
        calibration_inputs=calibration_inputs,
        nodes_to_exclude=exclude,
        pre_process=False,
        calibration_cache=cache,
        **quantize_kwargs,
    )
    outputs = run_outputs(make_session(result.path), eval_inputs)
    return VariantAccuracy(
        label=tag,
        errors=output_errors(outputs, reference_outputs),
        metric=metric(outputs, reference_outputs) if metric else None,
    )


def node_sensitivity(
    model_path: str | Path,
    *,
    candidates: Sequence[str | Sequence[str]],
    calibration_inputs: Sequence[Feeds],
    eval_inputs: Sequence[Feeds],
    metric: Metric | None = None,
    score: Callable[[VariantAccuracy], float] = VariantAccuracy.average_mean_abs,
    pre_process: bool = True,
    work_dir: str | Path | None = None,
    **quantize_kwargs,
) -> tuple[VariantAccuracy, list[NodeSensitivity]]:
    """Quantize everything (baseline), then once per candidate group with that group kept float; returns the
    baseline and the groups sorted by improvement of ``score`` (lower is better). Calibration runs once (cached).
    Node names refer to the pre-processed graph when ``pre_process`` (see ``static_int8.preprocess_model``)."""
    with tempfile.TemporaryDirectory(prefix="fleetvision_sens_") as scratch:
        work = Path(work_dir) if work_dir is not None else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        source = preprocess_model(model_path, work / "preprocessed.onnx") if pre_process else Path(model_path)
        reference_outputs = run_outputs(make_session(source), eval_inputs)
        common = dict(
            calibration_inputs=calibration_inputs,
            eval_inputs=eval_inputs,
            reference_outputs=reference_outputs,
            metric=metric,
            quantize_kwargs=quantize_kwargs,
        )
        baseline = _quantized_accuracy(source, work, "int8_all", exclude=(), **common)
        base_score = score(baseline)
        rows = []
        for index, group in enumerate(candidates):
            nodes = [group] if isinstance(group, str) else list(group)
            accuracy = _quantized_accuracy(source, work, f"int8_keep_{index}", exclude=nodes, **common)
            accuracy.label = ",".join(nodes)
            value = score(accuracy)
            rows.append(NodeSensitivity(nodes=nodes, accuracy=accuracy, score=value, improvement=base_score - value))
    rows.sort(key=lambda row: row.improvement, reverse=True)
    return baseline, rows


def greedy_float_nodes(
    model_path: str | Path,
    *,
    sensitivities: Sequence[NodeSensitivity],
    tolerance: float,
    calibration_inputs: Sequence[Feeds],
    eval_inputs: Sequence[Feeds],
    score: Callable[[VariantAccuracy], float] = VariantAccuracy.average_mean_abs,
    max_groups: int | None = None,
    pre_process: bool = True,
    **quantize_kwargs,
) -> tuple[list[str], float]:
    """Add the most helpful groups (from ``node_sensitivity``) to the float set one by one, re-quantizing and
    re-scoring each time, until ``score <= tolerance``; returns (nodes kept float, final score)."""
    with tempfile.TemporaryDirectory(prefix="fleetvision_greedy_") as scratch:
        work = Path(scratch)
        source = preprocess_model(model_path, work / "preprocessed.onnx") if pre_process else Path(model_path)
        reference_outputs = run_outputs(make_session(source), eval_inputs)
        common = dict(
            calibration_inputs=calibration_inputs,
            eval_inputs=eval_inputs,
            reference_outputs=reference_outputs,
            metric=None,
            quantize_kwargs=quantize_kwargs,
        )
        kept: list[str] = []
        current = score(_quantized_accuracy(source, work, "greedy_0", exclude=(), **common))
        helpful = [row for row in sensitivities if row.improvement > 0][:max_groups]
        for step, row in enumerate(helpful, start=1):
            if current <= tolerance:
                break
            kept.extend(node for node in row.nodes if node not in kept)
            current = score(_quantized_accuracy(source, work, f"greedy_{step}", exclude=kept, **common))
    return kept, current
