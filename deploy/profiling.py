"""Per-operator time from onnxruntime's profiler (Chrome-trace JSON), aggregated by op type and by node name."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from deploy.onnx_utils import make_session

_KERNEL_SUFFIX = "_kernel_time"


@dataclass(frozen=True)
class OperatorTime:
    """Total kernel time of one op type or node over the profiled runs (ms), calls, and share of all kernel time."""

    key: str
    op_type: str
    total_ms: float
    per_run_ms: float
    calls: int
    percent: float


@dataclass
class OperatorProfile:
    """Top operators of one model: by op type and by node name; ``runs`` = profiled runs after one warm-up run."""

    runs: int
    total_kernel_ms: float
    by_op_type: list[OperatorTime] = field(default_factory=list)
    by_node: list[OperatorTime] = field(default_factory=list)
    providers: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain-JSON dict."""
        return asdict(self)


def parse_profile(trace: Sequence[Mapping], *, skip_runs: int = 1, top_k: int = 15) -> OperatorProfile:
    """Aggregate kernel events of an onnxruntime profile trace, ignoring those inside the first ``skip_runs`` runs."""
    model_runs = sorted(
        (e for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run"), key=lambda e: e["ts"]
    )
    cutoff = -1.0
    if skip_runs > 0 and len(model_runs) > skip_runs:
        last_skipped = model_runs[skip_runs - 1]
        cutoff = float(last_skipped["ts"]) + float(last_skipped["dur"])
    runs = max(len(model_runs) - (skip_runs if len(model_runs) > skip_runs else 0), 1)
    by_type: dict[str, list[float]] = {}
    by_node: dict[str, list[float]] = {}
    node_type: dict[str, str] = {}
    providers: dict[str, int] = {}
    for event in trace:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith(_KERNEL_SUFFIX):
            continue
        if float(event.get("ts", 0)) <= cutoff:
            continue
        args = event.get("args", {})
        op_type = str(args.get("op_name", "?"))
        node = str(event["name"])[: -len(_KERNEL_SUFFIX)]
        duration_ms = float(event.get("dur", 0)) / 1000.0
        by_type.setdefault(op_type, []).append(duration_ms)
        by_node.setdefault(node, []).append(duration_ms)
        node_type[node] = op_type
        provider = str(args.get("provider", "?"))
        providers[provider] = providers.get(provider, 0) + 1
    total = float(sum(sum(v) for v in by_type.values()))

    def rank(groups: dict[str, list[float]], type_of) -> list[OperatorTime]:
        rows = [
            OperatorTime(
                key=key,
                op_type=type_of(key),
                total_ms=float(np.sum(times)),
                per_run_ms=float(np.sum(times)) / runs,
                calls=len(times),
                percent=100.0 * float(np.sum(times)) / total if total > 0 else 0.0,
            )
            for key, times in groups.items()
        ]
        return sorted(rows, key=lambda row: row.total_ms, reverse=True)[:top_k]

    return OperatorProfile(
        runs=runs,
        total_kernel_ms=total,
        by_op_type=rank(by_type, lambda k: k),
        by_node=rank(by_node, lambda k: node_type[k]),
        providers=providers,
    )


def profile_operators(
    model_path: str | Path,
    *,
    feeds: Sequence[Mapping[str, np.ndarray]],
    runs: int = 20,
    config=None,
    top_k: int = 15,
) -> OperatorProfile:
    """Run ``runs`` (+1 warm-up) profiled inferences in a separate session and aggregate kernel times."""
    provider = getattr(config, "provider", "cpu")
    intra = getattr(config, "intra_op_threads", 0)
    inter = getattr(config, "inter_op_threads", 0)
    with tempfile.TemporaryDirectory(prefix="fleetvision_profile_") as folder:
        session = make_session(
            model_path,
            provider=provider,
            intra_op_threads=intra,
            inter_op_threads=inter,
            enable_profiling=True,
            profile_prefix=Path(folder) / "ort_profile",
        )
        output_names = [o.name for o in session.get_outputs()]
        for index in range(runs + 1):
            session.run(output_names, dict(feeds[index % len(feeds)]))
        trace_path = session.end_profiling()
        trace = json.loads(Path(trace_path).read_text())
    return parse_profile(trace, skip_runs=1, top_k=top_k)


# Stages of a deploy graph, by the PyTorch module (dynamo's name scopes) a node comes from; first match wins.
DEPLOY_STAGES = (
    ("model.image_encoder", "image encoder"),
    ("model.lifting", "view transform"),
    ("model.bev_encoder", "BEV encoder"),
    ("model.fusion", "temporal fusion"),
    ("model.detection3d_head", "3D detection head"),
    ("model.segmentation_head", "segmentation head"),
    ("model.detection2d_head", "2D detection head"),
)
_ORT_SUFFIXES = re.compile(r"(_token_\d+|_nchwc|_quant|_QuantizeLinear|_DequantizeLinear)+$")


@dataclass
class StageProfile:
    """Kernel time per stage of a deploy graph (ms per run, median over runs of each node) and each stage's op
    types; ``unattributed`` holds nodes whose origin the runtime's renaming hides (layout transposes, etc.)."""

    runs: int
    total_ms: float
    stages: dict[str, float]
    ops: dict[str, dict[str, float]]

    def share(self, stage: str) -> float:
        """Fraction of the kernel time spent in ``stage``."""
        return self.stages.get(stage, 0.0) / self.total_ms if self.total_ms > 0 else 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def node_stages(source_model: str | Path, stages: Sequence[tuple[str, str]] = DEPLOY_STAGES) -> Callable[[str], str]:
    """A function from a profiled node name (onnxruntime may append fusion/layout suffixes, quantization adds
    ``<tensor>_QuantizeLinear`` nodes) to its stage, using ``source_model``'s module scopes (an export by the dynamo
    exporter: the FP32 file a quantized model was made from)."""
    import onnx

    from deploy.quantize.exported_model import module_scopes

    graph = onnx.load(str(source_model), load_external_data=False).graph
    scopes = module_scopes(source_model)
    producer = {output: node.name for node in graph.node for output in node.output}

    def stage_of(name: str) -> str:
        base = _ORT_SUFFIXES.sub("", name)
        scope = scopes.get(base) or scopes.get(producer.get(base, ""))
        if scope is None:
            return "unattributed" if base not in producer and base not in scopes else "graph (decode, warp)"
        return next((label for prefix, label in stages if scope.startswith(prefix)), "graph (decode, warp)")

    return stage_of


def profile_stages(
    model_path: str | Path,
    *,
    feeds: Sequence[Mapping[str, np.ndarray]],
    source_model: str | Path | None = None,
    runs: int = 20,
    intra_op_threads: int = 1,
) -> StageProfile:
    """Per-stage kernel time of a deploy graph (``DEPLOY_STAGES``); each node counts with its median time over
    ``runs`` profiled runs (one warm-up run skipped), which keeps the figure steady on a shared machine."""
    stage_of = node_stages(source_model or model_path)
    with tempfile.TemporaryDirectory(prefix="fleetvision_profile_") as folder:
        session = make_session(
            model_path,
            intra_op_threads=intra_op_threads,
            inter_op_threads=1,
            enable_profiling=True,
            profile_prefix=Path(folder) / "ort_profile",
        )
        for index in range(runs + 1):
            session.run(None, dict(feeds[index % len(feeds)]))
        trace = json.loads(Path(session.end_profiling()).read_text())
    model_runs = sorted((e for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run"),
                        key=lambda e: e["ts"])  # fmt: skip
    cutoff = float(model_runs[0]["ts"]) + float(model_runs[0]["dur"]) if model_runs else -1.0
    per_node: dict[str, tuple[str, list[float]]] = {}
    for event in trace:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith(_KERNEL_SUFFIX) or float(event.get("ts", 0)) <= cutoff:
            continue
        node = name[: -len(_KERNEL_SUFFIX)]
        op = str(event.get("args", {}).get("op_name", "?"))
        per_node.setdefault(node, (op, []))[1].append(float(event.get("dur", 0)) / 1000.0)
    stages: dict[str, float] = {}
    ops: dict[str, dict[str, float]] = {}
    for node, (op, times) in per_node.items():
        per_run = float(np.median(times)) * len(times) / runs  # nodes that run once per run: their median
        stage = stage_of(node)
        stages[stage] = stages.get(stage, 0.0) + per_run
        ops.setdefault(stage, {})
        ops[stage][op] = ops[stage].get(op, 0.0) + per_run
    order = sorted(stages, key=stages.get, reverse=True)
    return StageProfile(
        runs=runs,
        total_ms=float(sum(stages.values())),
        stages={stage: stages[stage] for stage in order},
        ops={stage: dict(sorted(ops[stage].items(), key=lambda item: -item[1])) for stage in order},
    )
