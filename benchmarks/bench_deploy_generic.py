"""Generic deployment benchmark: YOLOX-Nano and TwinLiteNet, FP32 vs our INT8 (QDQ) vs shipped INT8 vs FP16, on CPU.

Run:  .venv/bin/python benchmarks/bench_deploy_generic.py [--quick]
Writes benchmarks/results/deploy_generic.md (+ per-model JSON/PNG in benchmarks/results/deploy_generic/).
Accuracy columns are agreement with the FP32 model on real frames (no ground truth here):
TwinLiteNet: drivable-area mIoU of argmax masks vs FP32 on the 7 BDD100K samples (also used for calibration);
YOLOX-Nano: F1 between the sets of anchors with score (obj * best class) > 0.3 in FP32 and in the variant,
over 12 Udacity dash-cam stills (calibration used the 6 vehicle stills).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deploy.bench import BenchConfig, benchmark_variants  # noqa: E402
from deploy.bench_report import format_table, write_reports  # noqa: E402
from deploy.budget import Budget  # noqa: E402
from deploy.onnx_utils import candidate_float_nodes, list_nodes, make_session  # noqa: E402
from deploy.quantize.calibration import PreprocessSpec, image_folder_inputs  # noqa: E402
from deploy.quantize.fp16 import convert_fp16  # noqa: E402
from deploy.quantize.output_error import argmax_miou_metric, compare_outputs  # noqa: E402
from deploy.quantize.sensitivity import node_sensitivity  # noqa: E402
from deploy.quantize.static_int8 import preprocess_model, quantize_static  # noqa: E402
from perception.atomic import atomic_write_bytes  # noqa: E402

DATA = REPO / "../shared/data"
TWIN = DATA / "models/twinlitenet_bdd100k"
YOLOX = DATA / "models/yolox_nano_coco/yolox_nano.onnx"
UDACITY = DATA / "udacity_dashcam"
RESULTS = REPO / "benchmarks/results"


def yolox_anchor_f1(candidate, reference, threshold: float = 0.3) -> float:
    """F1 of confident-anchor sets (score = objectness * best class prob > threshold), candidate vs FP32."""
    tp = fp = fn = 0
    for cand, ref in zip(candidate, reference):
        c = cand["output"][0]
        r = ref["output"][0]
        c_set = c[:, 4] * c[:, 5:].max(axis=1) > threshold
        r_set = r[:, 4] * r[:, 5:].max(axis=1) > threshold
        tp += int(np.count_nonzero(c_set & r_set))
        fp += int(np.count_nonzero(c_set & ~r_set))
        fn += int(np.count_nonzero(~c_set & r_set))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test of the script)")
    parser.add_argument("--budget", type=Path, default=REPO / "configs/deploy/rate_20hz.yaml")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for path in (TWIN / "twinlitenet.onnx", YOLOX, TWIN / "bdd100k_samples", UDACITY / "vehicle_test_images"):
        if not path.exists():
            print(f"missing shared data: {path} (see ../shared/data/README.md)")
            return 1
    budget = Budget.load(args.budget)
    config = (
        BenchConfig(
            warmup_runs=3,
            warmup_s=0.2,
            min_runs=20,
            min_duration_s=1.0,
            throughput_s=1.0,
            intra_op_threads=args.threads,
            inter_op_threads=1,
            profile_runs=3,
        )
        if args.quick
        else BenchConfig(
            warmup_runs=20,
            warmup_s=2.0,
            min_runs=200,
            min_duration_s=8.0,
            throughput_s=4.0,
            intra_op_threads=args.threads,
            inter_op_threads=1,
            profile_runs=20,
        )
    )
    load_before = os.getloadavg()
    out_dir = RESULTS / "deploy_generic"
    with tempfile.TemporaryDirectory(prefix="bench_deploy_generic_") as scratch:
        work = Path(scratch)

        # ---------------- TwinLiteNet ----------------
        print("TwinLiteNet: quantizing ...", flush=True)
        twin_feeds = image_folder_inputs(
            TWIN / "bdd100k_samples", input_name="input", spec=PreprocessSpec(width=320, height=320)
        )
        quant_lines = []
        twin_variants = {"ORT FP32": TWIN / "twinlitenet.onnx"}
        for method in ("minmax", "entropy", "percentile"):
            t0 = time.perf_counter()
            result = quantize_static(
                TWIN / "twinlitenet.onnx",
                work / f"twin_int8_{method}.onnx",
                calibration_inputs=twin_feeds,
                method=method,
                per_channel=True,
            )
            quant_lines.append(
                f"- INT8 {method}: {result.size_mb:.2f} MB, {result.calibration_samples} calibration "
                f"frames, {time.perf_counter() - t0:.1f} s to quantize"
            )
            twin_variants[f"ORT INT8 ours ({method})"] = result.path
        twin_variants["ORT INT8 shipped"] = TWIN / "twinlitenet_preprocessed_quantized.onnx"
        twin_variants["ORT FP16 (keep_io)"] = convert_fp16(TWIN / "twinlitenet.onnx", work / "twin_fp16.onnx")
        reference = make_session(TWIN / "twinlitenet.onnx")
        candidates = {label: make_session(path) for label, path in twin_variants.items() if label != "ORT FP32"}
        drivable = compare_outputs(
            reference,
            candidates,
            twin_feeds,
            reference_label="ORT FP32",
            metric=argmax_miou_metric("drivable_area", num_classes=2),
        )
        lanes = compare_outputs(
            reference,
            candidates,
            twin_feeds,
            reference_label="ORT FP32",
            metric=argmax_miou_metric("lanes", num_classes=2),
        )
        print("TwinLiteNet: benchmarking ...", flush=True)
        twin_results = benchmark_variants(
            twin_variants,
            accuracy={v.label: v.metric for v in drivable},
            accuracy_name="drivable mIoU vs FP32",
            inputs=twin_feeds,
            config=config,
            budget=budget,
            progress=True,
        )
        write_reports(twin_results, out_dir, budget=budget, stem="twinlitenet", title="TwinLiteNet on CPU")
        error_lines = [
            "| variant | drivable mIoU vs FP32 | lanes mIoU vs FP32 | drivable mean/max abs | lanes mean/max abs |",
            "|---|---|---|---|---|",
        ]
        for d, l in zip(drivable, lanes):
            error_lines.append(
                f"| {d.label} | {d.metric:.4f} | {l.metric:.4f} | {d.errors[0].mean_abs:.4f} / "
                f"{d.errors[0].max_abs:.3f} | {d.errors[1].mean_abs:.4f} / {d.errors[1].max_abs:.3f} |"
            )

        print("TwinLiteNet: per-node sensitivity ...", flush=True)
        pre = preprocess_model(TWIN / "twinlitenet.onnx", work / "twin_pre.onnx")
        cand = candidate_float_nodes(pre, last_k=4, op_types=["MatMul"])
        first_conv = next(name for name, op in list_nodes(pre) if op == "Conv")
        cand = [first_conv, *cand]
        baseline, sensitivity = node_sensitivity(
            pre,
            candidates=cand,
            calibration_inputs=twin_feeds,
            eval_inputs=twin_feeds,
            pre_process=False,
            method="percentile",
            metric=argmax_miou_metric("drivable_area", num_classes=2),
        )
        sens_lines = [
            f"Baseline (all INT8, percentile): mean abs error averaged over outputs "
            f"{baseline.average_mean_abs():.4f}, drivable mIoU vs FP32 {baseline.metric:.4f}.",
            "",
            "| node kept float | avg mean abs | improvement | drivable mIoU vs FP32 |",
            "|---|---|---|---|",
        ]
        sens_lines += [
            f"| `{','.join(r.nodes)}` | {r.score:.4f} | {r.improvement:+.4f} | {r.accuracy.metric:.4f} |"
            for r in sensitivity
        ]

        # ---------------- YOLOX-Nano ----------------
        print("YOLOX-Nano: quantizing ...", flush=True)
        spec = PreprocessSpec(width=416, height=416, channel_order="BGR", scale=1.0, letterbox=True, pad_value=114.0)
        calib = image_folder_inputs(UDACITY / "vehicle_test_images", input_name="images", spec=spec)
        evaluation = calib + image_folder_inputs(UDACITY / "lane_test_images", input_name="images", spec=spec)
        yolox_variants = {"ORT FP32": YOLOX}
        for method in ("minmax", "percentile"):
            t0 = time.perf_counter()
            yolox_int8 = quantize_static(
                YOLOX, work / f"yolox_int8_{method}.onnx", calibration_inputs=calib, method=method
            )
            quant_lines.append(
                f"- YOLOX-Nano INT8 {method}: {yolox_int8.size_mb:.2f} MB, {len(calib)} calibration "
                f"frames, {time.perf_counter() - t0:.1f} s to quantize"
            )
            yolox_variants[f"ORT INT8 ours ({method})"] = yolox_int8.path
        yolox_variants["ORT FP16 (keep_io)"] = convert_fp16(YOLOX, work / "yolox_fp16.onnx")
        yolox_acc = compare_outputs(
            make_session(YOLOX),
            {k: make_session(v) for k, v in yolox_variants.items() if k != "ORT FP32"},
            evaluation,
            metric=yolox_anchor_f1,
            reference_label="ORT FP32",
        )
        print("YOLOX-Nano: benchmarking ...", flush=True)
        yolox_results = benchmark_variants(
            yolox_variants,
            accuracy={v.label: v.metric for v in yolox_acc},
            accuracy_name="anchor F1 vs FP32",
            inputs=evaluation,
            config=config,
            budget=budget,
            progress=True,
        )
        write_reports(yolox_results, out_dir, budget=budget, stem="yolox_nano", title="YOLOX-Nano on CPU")

    load_after = os.getloadavg()
    env = twin_results[0].environment
    command = "python benchmarks/bench_deploy_generic.py" + (" --quick" if args.quick else "")
    lines = [
        "# Generic deployment benchmark (CPU, onnxruntime)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {env.cpu_model}, {env.logical_cores} logical cores (affinity {env.affinity_cores}), {env.os}; "
        f"onnxruntime {env.onnxruntime}, provider {env.provider}, intra-op threads {env.intra_op_threads}, "
        f"inter-op {env.inter_op_threads}; measured {env.date_utc}.  ",
        f"Method: warm-up {config.warmup_runs} runs and {config.warmup_s:g} s; latency = one query at a time, "
        f">= {config.min_runs} runs and >= {config.min_duration_s:g} s, real frames cycled; throughput = 1 thread back "
        f"to back for {config.throughput_s:g} s. Budget `{budget.name}` (p99 <= {budget.p99_ms} ms, deadline "
        f"{budget.effective_deadline_ms:g} ms, max miss rate {budget.max_miss_rate}). The machine is shared with "
        f"other jobs (1-min load average {load_before[0]:.1f} at start, {load_after[0]:.1f} at end, on "
        f"{env.logical_cores} cores), so absolute times and tails (p99/max) are inflated and noisy; compare rows.",
        "",
        "## TwinLiteNet (320x320, BDD100K)",
        "",
        format_table(twin_results),
        "",
        "Output agreement with FP32 on the 7 BDD100K frames:",
        "",
        *error_lines,
        "",
        "Quantization:",
        "",
        *quant_lines[:3],
        "",
        "Per-node sensitivity (INT8 percentile with one node kept float; candidates = first Conv, MatMul nodes, "
        "the 4 quantizable nodes nearest the outputs):",
        "",
        *sens_lines,
        "",
        "## YOLOX-Nano (416x416, COCO)",
        "",
        format_table(yolox_results),
        "",
        *quant_lines[3:],
        "",
        "Per-model reports with operator profiles and latency histogram/CDF: `benchmarks/results/deploy_generic/`.",
        "",
    ]
    report = "\n".join(lines)
    atomic_write_bytes(RESULTS / "deploy_generic.md", report.encode())
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
