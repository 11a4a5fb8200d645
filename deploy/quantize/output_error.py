"""How far a quantized (or otherwise converted) model's outputs are from the FP32 model's, for any ONNX model.

A metric callback has the signature ``metric(candidate_outputs, reference_outputs) -> float`` where both are lists
(one entry per input sample) of ``{output name: array}``; it is evaluated for every variant, including the reference
itself (so a ground-truth metric can simply ignore ``reference_outputs``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from deploy.quantize.calibration import Feeds

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
