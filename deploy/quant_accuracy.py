"""Accuracy of quantized/converted variants against the FP32 model, and which nodes to keep in float.

A metric callback has the signature ``metric(candidate_outputs, reference_outputs) -> float`` where both are lists
(one entry per input sample) of ``{output name: array}``; it is evaluated for every variant, including the reference
itself (so a ground-truth metric can simply ignore ``reference_outputs``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from deploy.onnx_utils import make_session

Feeds = Mapping[str, np.ndarray]
Outputs = list[dict[str, np.ndarray]]
Metric = Callable[[Outputs, Outputs], float]


@dataclass(frozen=True)
class OutputError:
    """Absolute error of one output against the reference, over all samples and elements."""

    output: str
    max_abs: float
    mean_abs: float


@dataclass
class VariantAccuracy:
    """Errors per output of one variant against the reference, plus the metric value (if a metric was given)."""

    label: str
    errors: list[OutputError] = field(default_factory=list)
    metric: float | None = None

    def worst_mean_abs(self) -> float:
        """Largest per-output mean absolute error."""
        return max((e.mean_abs for e in self.errors), default=0.0)

    def average_mean_abs(self) -> float:
        """Mean over outputs of the per-output mean absolute error (the default sensitivity score)."""
        return float(np.mean([e.mean_abs for e in self.errors])) if self.errors else 0.0

    def to_dict(self) -> dict:
        """Plain-JSON dict."""
        return asdict(self)


def run_outputs(session, inputs: Iterable[Feeds]) -> Outputs:
    """Outputs of ``session`` for every feed dict, as ``{output name: array}``."""
    names = [o.name for o in session.get_outputs()]
    return [dict(zip(names, session.run(names, dict(feed)))) for feed in inputs]


def compare_outputs(
    reference,
    candidates: Mapping[str, object],
    inputs: Iterable[Feeds],
    *,
    metric: Metric | None = None,
    reference_label: str = "fp32",
) -> list[VariantAccuracy]:
    """Per-output max/mean abs error of each candidate session vs ``reference`` and the metric for every variant
    (reference first). Sessions are onnxruntime InferenceSessions (or anything with ``run``/``get_outputs``)."""
    feeds = list(inputs)
    if not feeds:
        raise ValueError("compare_outputs: inputs is empty; pass at least one feed dict")
    reference_outputs = run_outputs(reference, feeds)
    report = [
        VariantAccuracy(
            label=reference_label,
            errors=[OutputError(name, 0.0, 0.0) for name in reference_outputs[0]],
            metric=metric(reference_outputs, reference_outputs) if metric else None,
        )
    ]
    for label, session in candidates.items():
        outputs = run_outputs(session, feeds)
        report.append(
            VariantAccuracy(
                label=label,
                errors=output_errors(outputs, reference_outputs),
                metric=metric(outputs, reference_outputs) if metric else None,
            )
        )
    return report


def output_errors(outputs: Outputs, reference_outputs: Outputs) -> list[OutputError]:
    """Max and mean absolute difference per output name over all samples (float64 accumulation)."""
    errors = []
    for name in reference_outputs[0]:
        diffs = [
            np.abs(np.asarray(c[name], np.float64) - np.asarray(r[name], np.float64)).ravel()
            for c, r in zip(outputs, reference_outputs)
        ]
        flat = np.concatenate(diffs)
        errors.append(OutputError(name, float(flat.max()), float(flat.mean())))
    return errors


def argmax_miou_metric(output_name: str, *, axis: int = 1, num_classes: int | None = None) -> Metric:
    """Metric: mean IoU between argmax(candidate) and argmax(reference) masks of one output (segmentation agreement)."""

    def metric(candidate: Outputs, reference: Outputs) -> float:
        intersections: dict[int, int] = {}
        unions: dict[int, int] = {}
        for cand, ref in zip(candidate, reference):
            cand_labels = np.argmax(cand[output_name], axis=axis)
            ref_labels = np.argmax(ref[output_name], axis=axis)
            classes = range(num_classes) if num_classes else np.union1d(np.unique(cand_labels), np.unique(ref_labels))
            for cls in classes:
                a, b = cand_labels == cls, ref_labels == cls
                intersections[int(cls)] = intersections.get(int(cls), 0) + int(np.count_nonzero(a & b))
                unions[int(cls)] = unions.get(int(cls), 0) + int(np.count_nonzero(a | b))
        ious = [intersections[c] / unions[c] for c in unions if unions[c] > 0]
        return float(np.mean(ious)) if ious else 1.0

    return metric


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
    from deploy.quantize import quantize_static, supports_calibration_cache

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
    Node names refer to the pre-processed graph when ``pre_process`` (see ``deploy.quantize.preprocess_model``)."""
    from deploy.quantize import preprocess_model

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
    from deploy.quantize import preprocess_model

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
