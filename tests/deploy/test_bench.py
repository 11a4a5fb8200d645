"""Tests for the generic latency benchmark: statistics, budgets, reports, CLI exit codes (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from deploy.bench import (
    BenchConfig,
    BenchResult,
    benchmark_callable,
    benchmark_model,
    benchmark_variants,
    cpu_affinity,
)
from deploy.bench_report import comparison_rows, format_table, write_reports
from deploy.budget import EXIT_BUDGET_EXCEEDED, Budget, BudgetError, budget_exit_code, evaluate_budget
from deploy.cli import main
from deploy.onnx_utils import (
    InputSpec,
    ModelInputError,
    ProviderUnavailableError,
    candidate_float_nodes,
    resolve_providers,
    synthesize_inputs,
)
from deploy.profiling import parse_profile
from deploy.stats import LatencyStats, miss_rate, nearest_rank

# --- fixtures (kept in this file, not a shared conftest, so other deploy test files stay independent) ---
SHARED_MODELS = Path(__file__).resolve().parents[2] / "../shared/data/models"
TWINLITENET = SHARED_MODELS / "twinlitenet_bdd100k" / "twinlitenet.onnx"
TWINLITENET_INT8_SHIPPED = SHARED_MODELS / "twinlitenet_bdd100k" / "twinlitenet_preprocessed_quantized.onnx"
TWINLITENET_SAMPLES = SHARED_MODELS / "twinlitenet_bdd100k" / "bdd100k_samples"
YOLOX_NANO = SHARED_MODELS / "yolox_nano_coco" / "yolox_nano.onnx"


def _require(path: Path) -> Path:
    """Skip the test when a shared-data file is absent."""
    if not path.exists():
        pytest.skip(f"shared test data not found: {path.resolve()} (see ../shared/data/README.md)")
    return path


@pytest.fixture
def twinlitenet_path() -> Path:
    """TwinLiteNet FP32 ONNX (input [1,3,320,320] RGB/255; outputs drivable_area, lanes [1,2,320,320])."""
    return _require(TWINLITENET)


@pytest.fixture
def twinlitenet_int8_shipped_path() -> Path:
    """The INT8 TwinLiteNet shipped with the model."""
    return _require(TWINLITENET_INT8_SHIPPED)


@pytest.fixture
def twinlitenet_samples() -> Path:
    """Folder of 7 BDD100K sample frames (JPEG)."""
    return _require(TWINLITENET_SAMPLES)


@pytest.fixture
def yolox_path() -> Path:
    """YOLOX-Nano COCO ONNX (input [1,3,416,416] BGR 0..255)."""
    return _require(YOLOX_NANO)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """x [batch, 8] float32 -> MatMul(8x16) -> Relu -> MatMul(16x4) -> Add -> y [batch, 4]; batch is symbolic."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=(8, 16)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(16, 4)).astype(np.float32), "w2")
    bias = numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32), "bias")
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["h_relu"], name="relu1"),
        helper.make_node("MatMul", ["h_relu", "w2"], ["z"], name="fc2"),
        helper.make_node("Add", ["z", "bias"], ["y"], name="head_add"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[w1, w2, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save_model(model, str(path))
    return path


REPO = Path(__file__).resolve().parents[2]


def deploy_bench(argv: list[str]) -> int:
    """``deploy bench ARGV``: the command users run (the ``deploy`` console script calls ``deploy.cli.main``)."""
    return main(["bench", *argv])


QUICK = BenchConfig(
    warmup_runs=2,
    warmup_s=0.0,
    min_runs=12,
    min_duration_s=0.0,
    throughput_s=0.05,
    intra_op_threads=1,
    inter_op_threads=1,
)


def _assert_ordered(stats: LatencyStats) -> None:
    assert stats.min_ms <= stats.p50_ms <= stats.p90_ms <= stats.p99_ms <= stats.p999_ms <= stats.max_ms
    assert stats.min_ms <= stats.mean_ms <= stats.max_ms
    assert stats.std_ms >= 0.0


def test_nearest_rank_percentiles_are_observed_samples():
    samples = np.arange(1.0, 101.0)  # 1..100 ms
    stats = LatencyStats.from_samples(samples[::-1])
    assert (stats.p50_ms, stats.p90_ms, stats.p99_ms, stats.p999_ms) == (50.0, 90.0, 99.0, 100.0)
    assert stats.runs == 100 and stats.min_ms == 1.0 and stats.max_ms == 100.0
    assert stats.mean_ms == pytest.approx(50.5)
    assert nearest_rank(np.array([3.0]), 99.9) == 3.0
    with pytest.raises(ValueError):
        LatencyStats.from_samples(np.array([]))


def test_outliers_are_not_clipped():
    samples = np.r_[np.full(999, 10.0), 500.0]
    stats = LatencyStats.from_samples(samples)
    assert stats.max_ms == 500.0 and stats.p999_ms == 10.0 and stats.mean_ms > 10.0
    assert miss_rate(samples, 50.0) == pytest.approx(0.001)
    assert miss_rate(samples, 10.0) == pytest.approx(0.001)  # strictly slower than the deadline misses


def test_budget_verdict_and_exit_code():
    budget = Budget(name="fake", rate_hz=20.0, p99_ms=50.0, max_miss_rate=0.01)
    assert budget.effective_deadline_ms == pytest.approx(50.0)
    fast = np.full(200, 20.0)
    ok = evaluate_budget(fast, budget)
    assert ok.passed and {c.name for c in ok.checks} == {"p99_ms", "miss_rate"}
    slow_tail = np.r_[np.full(190, 20.0), np.full(10, 80.0)]  # 5% over deadline, p99 = 80 ms
    bad = evaluate_budget(slow_tail, budget)
    assert not bad.passed and bad.miss_rate == pytest.approx(0.05)
    assert {c.name for c in bad.checks if not c.passed} == {"p99_ms", "miss_rate"}
    assert budget_exit_code([ok, None]) == 0
    assert budget_exit_code([ok, bad]) == EXIT_BUDGET_EXCEEDED
    mean_budget = Budget(name="mean", mean_ms=10.0, max_ms=100.0)
    verdict = evaluate_budget(fast, mean_budget)
    assert not verdict.passed and verdict.failures() == ["mean_ms 20 > limit 10"]


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "deploy").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_budgets_load(path):
    budget = Budget.load(path)
    assert budget.name == path.stem
    assert budget.effective_deadline_ms is not None


def test_budget_errors_name_source_and_field(tmp_path):
    with pytest.raises(BudgetError, match=r"b\.yaml.*unknown field.*p99"):
        path = tmp_path / "b.yaml"
        path.write_text(yaml.safe_dump({"name": "x", "p99": 5}))
        Budget.load(path)
    with pytest.raises(BudgetError, match="'p99_ms' expected a non-negative number"):
        Budget.from_dict({"name": "x", "p99_ms": "fast"})
    with pytest.raises(BudgetError, match="no limit set"):
        Budget.from_dict({"name": "x"})
    with pytest.raises(BudgetError, match="max_miss_rate"):
        Budget.from_dict({"name": "x", "rate_hz": 10, "max_miss_rate": 5})
    with pytest.raises(BudgetError, match="'priority' expected one of"):
        Budget.from_dict({"name": "x", "rate_hz": 10, "priority": "urgent"})
    assert Budget.from_dict({"name": "x", "rate_hz": 10, "priority": "realtime"}).to_dict()["priority"] == "realtime"


def test_synthesize_inputs_seeded_and_symbolic_dims():
    specs = [InputSpec("image", ("batch", 3, 4, None), np.float32), InputSpec("ids", (2,), np.int64)]
    first = synthesize_inputs(specs, default_dim=2, dim_overrides={"batch": 5}, seed=7)
    again = synthesize_inputs(specs, default_dim=2, dim_overrides={"batch": 5}, seed=7)
    other = synthesize_inputs(specs, default_dim=2, dim_overrides={"batch": 5}, seed=8)
    assert first["image"].shape == (5, 3, 4, 2) and first["image"].dtype == np.float32
    assert first["ids"].dtype == np.int64 and first["ids"].shape == (2,)
    np.testing.assert_array_equal(first["image"], again["image"])
    assert not np.array_equal(first["image"], other["image"])


def test_benchmark_model_structure(tiny_model):
    result = benchmark_model(
        tiny_model, label="tiny", config=QUICK, budget=Budget(name="loose", deadline_ms=1000.0, p99_ms=1000.0)
    )
    assert result.stats.runs >= QUICK.min_runs == len(result.latencies_ms)
    _assert_ordered(result.stats)
    assert result.throughput_per_s > 0
    assert result.verdict is not None and result.verdict.passed
    assert result.file_size_mb is not None and result.file_size_mb > 0
    env = result.environment
    assert env.onnxruntime and env.active_providers[0] == "CPUExecutionProvider" and env.logical_cores >= 1
    assert env.intra_op_threads == 1 and env.date_utc.endswith("+00:00")


def test_benchmark_model_caller_inputs_cycle_and_validate(tiny_model):
    feeds = [{"x": np.full((3, 8), v, np.float32)} for v in range(3)]
    result = benchmark_model(tiny_model, config=QUICK, inputs=feeds)
    _assert_ordered(result.stats)
    with pytest.raises(ModelInputError, match="missing"):
        benchmark_model(tiny_model, config=QUICK, inputs={"images": np.zeros((1, 8), np.float32)})
    with pytest.raises(ModelInputError, match="axis 1 expected 8"):
        benchmark_model(tiny_model, config=QUICK, inputs={"x": np.zeros((1, 7), np.float32)})


def test_benchmark_callable_uses_same_methodology():
    calls = []
    result = benchmark_callable(lambda: calls.append(1), label="eager", config=QUICK, accuracy=0.5, accuracy_name="mAP")
    assert len(calls) >= QUICK.warmup_runs + QUICK.min_runs
    _assert_ordered(result.stats)
    assert result.model_path is None and result.accuracy == 0.5


def test_cpu_affinity_restores_previous_mask():
    if not hasattr(__import__("os"), "sched_setaffinity"):
        pytest.skip("os.sched_setaffinity not available on this platform")
    import os

    before = os.sched_getaffinity(0)
    core = min(before)
    with cpu_affinity([core]):
        assert os.sched_getaffinity(0) == {core}
    assert os.sched_getaffinity(0) == before


def test_unavailable_provider_message():
    import onnxruntime as ort

    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("TensorRT is available here")
    with pytest.raises(ProviderUnavailableError, match="available:.*CPUExecutionProvider"):
        resolve_providers("tensorrt")
    assert resolve_providers("cpu") == ["CPUExecutionProvider"]


def test_operator_profile_aggregates_kernel_events(tiny_model):
    config = BenchConfig(**{**QUICK.to_dict(), "cpu_affinity": None, "profile_runs": 3, "profile_top_k": 50})
    profile = benchmark_model(tiny_model, config=config).profile
    assert profile.runs == 3
    assert {row.key for row in profile.by_op_type} >= {"MatMul"}
    assert sum(row.percent for row in profile.by_op_type) == pytest.approx(100.0, abs=1e-6)
    assert [r.total_ms for r in profile.by_node] == sorted((r.total_ms for r in profile.by_node), reverse=True)


def test_parse_profile_skips_warmup_run():
    trace = [
        {"cat": "Session", "name": "model_run", "ts": 0, "dur": 10},
        {"cat": "Node", "name": "conv1_kernel_time", "ts": 1, "dur": 999, "args": {"op_name": "Conv"}},
        {"cat": "Session", "name": "model_run", "ts": 20, "dur": 10},
        {"cat": "Node", "name": "conv1_kernel_time", "ts": 21, "dur": 3000, "args": {"op_name": "Conv"}},
        {"cat": "Node", "name": "relu1_kernel_time", "ts": 25, "dur": 1000, "args": {"op_name": "Relu"}},
        {"cat": "Node", "name": "relu1_fence_before", "ts": 25, "dur": 7, "args": {"op_name": "Relu"}},
    ]
    profile = parse_profile(trace, skip_runs=1)
    assert profile.runs == 1
    assert [(r.key, r.total_ms) for r in profile.by_op_type] == [("Conv", 3.0), ("Relu", 1.0)]
    assert profile.by_node[0].key == "conv1" and profile.by_node[0].percent == pytest.approx(75.0)


def test_reports_table_and_files(tiny_model, tmp_path):
    budget = Budget(name="strict", deadline_ms=1e-6, p99_ms=1e-6)
    first = benchmark_model(tiny_model, label="fp32", config=QUICK, budget=budget, accuracy=0.9)
    second = benchmark_callable(lambda: None, label="noop", config=QUICK, budget=budget)
    broken = BenchResult.failed("fp16", "no fp16 kernel", model_path=tiny_model)
    results = [first, second, broken]
    rows = comparison_rows(results)
    assert [r["variant"] for r in rows] == ["fp32", "noop", "fp16"]
    assert rows[0]["speedup"] == pytest.approx(1.0) and rows[0]["budget"] == "FAIL" and rows[2]["budget"] == "ERROR"
    table = format_table(results)
    assert table.count("\n") == 4 and "| fp32 |" in table
    paths = write_reports(results, tmp_path / "out", budget=budget, stem="tiny")
    payload = json.loads(paths.json.read_text())
    assert [r["variant"] for r in payload["table"]] == ["fp32", "noop", "fp16"]
    assert len(payload["results"][0]["latencies_ms"]) == first.stats.runs
    assert payload["budget"]["name"] == "strict"
    markdown = paths.markdown.read_text()
    assert "## Environment" in markdown and "FAIL" in markdown and "could not run: no fp16 kernel" in markdown
    assert paths.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind


def test_deploy_bench_exit_codes(tiny_model, tmp_path):
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump({"name": "strict", "p99_ms": 1e-6, "deadline_ms": 1e-6}))
    loose = tmp_path / "loose.yaml"
    loose.write_text(yaml.safe_dump({"name": "loose", "rate_hz": 0.01, "p99_ms": 1e5}))
    common = [
        str(tiny_model),
        "--min-runs",
        "5",
        "--min-duration-s",
        "0",
        "--warmup-runs",
        "1",
        "--warmup-s",
        "0",
        "--throughput-s",
        "0.02",
        "--out",
        str(tmp_path / "r"),
        "--no-plot",
    ]
    assert deploy_bench([*common, "--budget", str(strict)]) == EXIT_BUDGET_EXCEEDED
    assert deploy_bench([*common, "--budget", str(strict), "--exit-zero"]) == 0
    assert json.loads((tmp_path / "r" / "bench.json").read_text())["table"][0]["budget"] == "FAIL"
    assert deploy_bench([*common, "--budget", str(loose)]) == 0
    assert deploy_bench(common) == 0
    assert deploy_bench([*common, "--provider", "no_such_provider"]) == 2
    npz = tmp_path / "inputs.npz"
    np.savez(npz, x=np.ones((2, 8), np.float32))
    assert deploy_bench([*common, "--inputs", str(npz)]) == 0
    np.savez(npz, images=np.ones((2, 8), np.float32))
    assert deploy_bench([*common, "--inputs", str(npz)]) == 2  # wrong input name -> usage error naming the names
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nrate: 20\n")
    assert deploy_bench([*common, "--budget", str(bad)]) == 2


def test_deploy_bench_command_reads_inputs_npz(tiny_model, tmp_path):
    """The ``deploy`` command in a fresh process: the arrays of ``--inputs`` are what the model runs on."""
    npz = tmp_path / "x.npz"
    quick = ["--min-runs", "3", "--min-duration-s", "0", "--warmup-runs", "1", "--warmup-s", "0", "--throughput-s", "0"]
    command = [sys.executable, "-m", "deploy", "bench", str(tiny_model), "--inputs", str(npz), *quick, "--no-plot"]
    np.savez(npz, x=np.ones((1, 7), np.float32))
    refused = subprocess.run([*command, "--out", str(tmp_path / "a")], capture_output=True, text=True, cwd=REPO)
    assert refused.returncode == 2 and "axis 1 expected 8" in refused.stderr, refused.stderr
    np.savez(npz, x=np.ones((3, 8), np.float32))
    done = subprocess.run([*command, "--out", str(tmp_path / "b")], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "| tiny |" in done.stdout


def test_benchmark_variants_mixes_onnx_callables_and_failures(tiny_model, tmp_path):
    missing = tmp_path / "missing.onnx"
    results = benchmark_variants(
        {"eager": lambda: None, "fp32": tiny_model, "int8": missing},
        config=QUICK,
        accuracy={"fp32": 0.5},
        accuracy_name="agreement",
    )
    assert [r.label for r in results] == ["eager", "fp32", "int8"]
    assert results[1].accuracy == 0.5 and results[1].model_path == str(tiny_model)
    assert results[2].stats is None and "not found" in results[2].error
    assert comparison_rows(results)[2]["budget"] == "ERROR"


def test_candidate_float_nodes(tiny_model):
    assert candidate_float_nodes(tiny_model, last_k=1) == ["fc2"]
    assert candidate_float_nodes(tiny_model, last_k=5) == ["fc2", "fc1"]
    assert candidate_float_nodes(tiny_model, prefixes=["head"], op_types=["Relu"]) == ["relu1", "head_add"]


@pytest.mark.shared_data
def test_real_models_short_bench(twinlitenet_path, yolox_path, tmp_path):
    results = [
        benchmark_model(
            path,
            config=BenchConfig(
                warmup_runs=1, warmup_s=0.0, min_runs=3, min_duration_s=0.0, throughput_s=0.0, profile_runs=1
            ),
        )
        for path in (yolox_path, twinlitenet_path)
    ]
    for result in results:
        _assert_ordered(result.stats)
        assert result.profile.by_op_type and result.profile.by_op_type[0].key  # Conv-heavy models
    paths = write_reports(results, tmp_path, budget=Budget.load(REPO / "configs/deploy/rate_20hz.yaml"))
    assert {r["variant"] for r in json.loads(paths.json.read_text())["table"]} == {"yolox_nano", "twinlitenet"}


def test_bench_and_quantize_do_not_import_torch_or_pyplot():
    code = (
        "import sys; import deploy.cli, deploy.bench, deploy.bench_report, deploy.budget, deploy.quantize.calibration, "
        "deploy.quantize.static_int8, deploy.quantize.fp16, deploy.quantize.output_error, deploy.quantize.sensitivity; "
        "bad = [m for m in ('torch', 'matplotlib.pyplot', 'matplotlib') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
