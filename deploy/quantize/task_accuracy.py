"""FP32 vs INT8 task metrics of a model made by ``deploy export``, on held-out drive clips.

Each variant runs over the clips carrying its OWN recurrent state (as in the vehicle) and is scored with BEV mAP /
NDS (``BevDetectionEvaluator``), BEV segmentation IoU and 2D AP against the clips' labels. Without labels (or when
the FP32 model scores zero) it scores agreement with the FP32 outputs instead, and says so.
Accuracy retained = INT8 metric / FP32 metric; MLPerf's rule is >= 99%.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploy.clip_feeds import resolve_clips, session_runner
from deploy.metadata import read_metadata
from deploy.quantize.exported_model import node_sensitivity_rows
from deploy.runtime.baked_rig import rig_checker
from deploy.runtime.clip_inputs import clip_steps, run_sequence
from deploy.runtime.quality import ground_truth_table, prediction_table
from perception.atomic import atomic_write_text

MLPERF_RETAINED = 0.99
MIN_MEANINGFUL = 0.05  # a ground-truth metric below this (e.g. an untrained model) cannot judge retention


@dataclass
class TaskMetrics:
    """Task metrics of one variant over the evaluation clips (nan = not measurable here)."""

    bev_map: float = math.nan
    bev_nds: float = math.nan
    seg_miou: float = math.nan
    det2d_ap: float = math.nan
    agreement_bev_map: float = math.nan  # mAP against the FP32 model's detections (score >= 0.3, >= top 10) as GT
    agreement_seg_iou: float = math.nan  # IoU of masks (p >= 0.5) against the FP32 model's masks
    frames: int = 0


def _run_variant(
    path: str | Path, clips: Sequence[Path], max_frames: int | None, progress: bool = False
) -> list[tuple[Any, dict]]:
    from tqdm import tqdm

    metadata = read_metadata(path)
    run = session_runner(path)
    state0 = np.zeros([1, *metadata["state_shape"]], np.float32)
    check, size_hw = rig_checker(metadata, model=str(path)), tuple(metadata["image_size"])
    records = []
    for clip in clips:
        steps = clip_steps(clip, cameras=metadata["cameras"], size_hw=size_hw, stop=max_frames, rig_check=check)
        runs = run_sequence(run, steps, state0)
        label = f"evaluating {Path(path).name} on {Path(clip).name}"
        records += [
            (clip, step.index, out) for step, _, out in tqdm(runs, desc=label, unit="frame", disable=not progress)
        ]
    return records


def _pred_table(outputs: dict[str, np.ndarray], threshold: float) -> dict[str, np.ndarray]:
    return prediction_table(outputs, threshold)


def score_variant(
    metadata: dict[str, Any],
    records: list,
    reference: list | None,
    labels_of: Callable[[Path], Any],
    score_threshold: float = 0.05,
) -> TaskMetrics:
    """Task metrics of one variant's outputs; ``reference`` = FP32 records for the agreement metrics."""
    from perception.geometry import BevGrid
    from perception.metrics import BevDetectionEvaluator, CocoDetectionEvaluator, SegmentationIoU

    classes = metadata["classes"]
    metrics = TaskMetrics(frames=len(records))
    det3d = classes.get("detection3d")
    seg = classes.get("segmentation")
    det2d = classes.get("detection2d")
    bev_eval = BevDetectionEvaluator(det3d) if det3d else None
    agree_eval = BevDetectionEvaluator(det3d) if det3d and reference is not None else None
    seg_eval = SegmentationIoU(seg) if seg else None
    seg_agree = SegmentationIoU(seg) if seg and reference is not None else None
    coco = CocoDetectionEvaluator(det2d) if det2d else None
    head_grid = BevGrid.from_dict(metadata["head_grid"]) if metadata.get("head_grid") else None
    bev_grid = BevGrid.from_dict(metadata["bev_grid"]) if metadata.get("bev_grid") else None
    seen_gt = {"bev": 0, "seg": 0, "det2d": 0}
    height, width = metadata["image_size"]
    for i, (clip, index, outputs) in enumerate(records):
        labels = labels_of(clip)
        frame = labels.frames[index] if labels is not None else None
        if bev_eval is not None:
            pred = _pred_table(outputs, score_threshold)
            if frame is not None:
                gt = _gt_boxes3d(frame.boxes3d, labels.classes, det3d, head_grid)
                seen_gt["bev"] += len(gt["center"])
                bev_eval.add_frame(pred, gt)
            if agree_eval is not None:
                agree_eval.add_frame(pred, _pseudo_gt(reference[i][2]))
        if seg_eval is not None and "segmentation" in outputs:
            probs = outputs["segmentation"][0]
            if labels is not None and labels.bev is not None and bev_grid is not None:
                gt_maps = _gt_segmentation(labels, index, seg, bev_grid)
                if gt_maps is not None:
                    seen_gt["seg"] += 1
                    seg_eval.update(probs, gt_maps)
            if seg_agree is not None:
                seg_agree.update(probs, (reference[i][2]["segmentation"][0] >= 0.5).astype(np.uint8))
        if coco is not None and frame is not None and "det2d_boxes" in outputs:
            for n, camera in enumerate(metadata["cameras"]):
                gt2d = frame.boxes2d.get(camera)
                if gt2d is None:
                    continue
                source = next(c for c in metadata["camera_images"] if c["name"] == camera)
                scale = np.array([width / source["source_width"], height / source["source_height"]] * 2)
                mapped = np.array(
                    [det2d.index(labels.classes[c]) if labels.classes[c] in det2d else -1 for c in gt2d.class_id],
                    np.int64,
                )
                keep = outputs["det2d_scores"][0, n] >= score_threshold
                seen_gt["det2d"] += int((mapped >= 0).sum())
                coco.add_image(
                    outputs["det2d_boxes"][0, n][keep],
                    outputs["det2d_scores"][0, n][keep],
                    outputs["det2d_class_id"][0, n][keep],
                    gt2d.xyxy[mapped >= 0] * scale,
                    mapped[mapped >= 0],
                )
    if bev_eval is not None and seen_gt["bev"]:
        result = bev_eval.compute()
        metrics.bev_map, metrics.bev_nds = result["mAP"], result["NDS"]
    if seg_eval is not None and seen_gt["seg"]:
        metrics.seg_miou = seg_eval.compute().get("mIoU", math.nan)
    if coco is not None and seen_gt["det2d"]:
        metrics.det2d_ap = coco.compute().get("AP", math.nan)
    if agree_eval is not None:
        metrics.agreement_bev_map = agree_eval.compute()["mAP"]
    if seg_agree is not None:
        metrics.agreement_seg_iou = seg_agree.compute().get("mIoU", math.nan)
    return metrics


def _pseudo_gt(fp32_outputs: dict[str, np.ndarray], threshold: float = 0.3, top: int = 10) -> dict[str, np.ndarray]:
    """The FP32 model's detections as pseudo ground truth: all scoring >= ``threshold``, at least the ``top`` best."""
    scores = fp32_outputs["det3d_scores"][0]
    count = max(int((scores >= threshold).sum()), min(top, len(scores)))
    return _pred_table(fp32_outputs, float(np.sort(scores)[::-1][count - 1]))


def _gt_boxes3d(boxes, label_classes: list[str], model_classes: list[str], grid) -> dict[str, np.ndarray]:
    return ground_truth_table(boxes, label_classes, model_classes, grid)


def _gt_segmentation(labels, index: int, classes: list[str], grid) -> np.ndarray | None:
    from perception.data.augment import resample_bev

    channels = [labels.bev.channels.index(c) if c in labels.bev.channels else -1 for c in classes]
    if all(c < 0 for c in channels):
        return None
    out = np.zeros((len(classes), *grid.shape), np.uint8)
    present = [i for i, c in enumerate(channels) if c >= 0]
    out[present] = resample_bev(labels.bev.data[index][[channels[i] for i in present]], labels.bev.grid, grid)
    return out


@dataclass
class AccuracyReport:
    """FP32 vs INT8 task metrics, the retained fraction of the primary metric and the MLPerf 99% verdict."""

    fp32_model: str
    int8_model: str
    eval_clips: list[str]
    fp32: TaskMetrics
    int8: TaskMetrics
    primary_metric: str
    fp32_value: float
    int8_value: float
    retained: float
    meets_mlperf_99: bool
    shortfall_points: float
    ground_truth: bool
    note: str = ""
    sensitivity: list[dict[str, Any]] = field(default_factory=list)
    nodes_kept_float: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))

    def markdown(self) -> str:
        lines = [
            f"# Quantization accuracy: `{Path(self.int8_model).name}` vs `{Path(self.fp32_model).name}`",
            "",
            f"Evaluation clips: {len(self.eval_clips)} ({self.fp32.frames} frames); each variant carries its own "
            f"recurrent state.",
            "",
            "| metric | FP32 | INT8 | retained |",
            "|---|---|---|---|",
        ]
        for name in ("bev_map", "bev_nds", "seg_miou", "det2d_ap", "agreement_bev_map", "agreement_seg_iou"):
            a, b = getattr(self.fp32, name), getattr(self.int8, name)
            retained = b / a if a and not math.isnan(a) and not math.isnan(b) and a > 0 else math.nan
            lines.append(f"| {name} | {_fmt(a)} | {_fmt(b)} | {_fmt(100 * retained, 2)}% |")
        verdict = "meets" if self.meets_mlperf_99 else f"MISSES by {self.shortfall_points:.2f} points"
        lines += [
            "",
            f"Primary metric: **{self.primary_metric}** "
            f"({'ground truth' if self.ground_truth else 'agreement with FP32'}): "
            f"FP32 {_fmt(self.fp32_value)}, INT8 {_fmt(self.int8_value)}, retained **{100 * self.retained:.2f}%**, "
            f"{verdict} the MLPerf 99% rule.",
            "",
        ]
        if self.note:
            lines += [self.note, ""]
        if self.nodes_kept_float:
            lines += [
                f"Nodes kept in float: {', '.join(f'`{n}`' for n in self.nodes_kept_float[:20])}"
                f"{' ...' if len(self.nodes_kept_float) > 20 else ''}",
                "",
            ]
        if self.sensitivity:
            lines += [
                "## Per-node sensitivity (keep one group in float, rest INT8; lower output error is better)",
                "",
                "| nodes kept float | mean abs output error | improvement |",
                "|---|---|---|",
            ]
            lines += [
                f"| `{', '.join(row['nodes'])}` | {row['score']:.4g} | {row['improvement']:.4g} |"
                for row in self.sensitivity
            ]
            lines += [
                "",
                "Try: `deploy quantize MODEL --calib CLIPS --keep-float "
                + " ".join(self.sensitivity[0]["nodes"])
                + "` (node names or prefixes such as "
                "`model.detection3d_head`)",
                "",
            ]
        return "\n".join(lines)


def _fmt(value: float, digits: int = 4) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _primary(fp32: TaskMetrics, int8: TaskMetrics) -> tuple[str, float, float, bool, str]:
    """(metric name, fp32, int8, is ground truth, note): the first ground-truth metric FP32 scores above zero."""
    for name in ("bev_map", "seg_miou", "det2d_ap"):
        a = getattr(fp32, name)
        if not math.isnan(a) and a >= MIN_MEANINGFUL:
            return name, a, getattr(int8, name), True, ""
    for name in ("agreement_bev_map", "agreement_seg_iou"):
        a = getattr(fp32, name)
        if not math.isnan(a) and a > 0:
            return (
                name,
                a,
                getattr(int8, name),
                False,
                f"No ground-truth metric is usable (no labels, or the FP32 model scores below {MIN_MEANINGFUL} on "
                "them, e.g. an untrained model): the primary metric is agreement with the FP32 model's own "
                "outputs (its top detections as pseudo ground truth).",
            )
    return "none", math.nan, math.nan, False, "No metric could be computed on these clips."


def compare_accuracy(
    fp32_path: str | Path,
    int8_path: str | Path,
    eval_clips: Sequence[str | Path],
    *,
    max_frames: int | None = None,
    sensitivity_calib: Sequence[dict] | None = None,
    sensitivity_method: str = "minmax",
    sensitivity_groups: int = 6,
    progress: bool = False,
) -> AccuracyReport:
    """Evaluate both variants on ``eval_clips``; when INT8 keeps < 99%, rank node groups to keep in float.
    ``progress``: bars over the frames evaluated."""
    from perception.labels import ClipLabels

    clips = resolve_clips(eval_clips)
    metadata = read_metadata(fp32_path)
    cache: dict[Path, Any] = {}

    def labels_of(clip: Path):
        if clip not in cache:
            path = Path(clip) / "labels.json"
            cache[clip] = ClipLabels.load(path) if path.is_file() else None
        return cache[clip]

    fp32_records = _run_variant(fp32_path, clips, max_frames, progress)
    int8_records = _run_variant(int8_path, clips, max_frames, progress)
    fp32 = score_variant(metadata, fp32_records, fp32_records, labels_of)
    int8 = score_variant(metadata, int8_records, fp32_records, labels_of)
    name, a, b, truth, note = _primary(fp32, int8)
    retained = b / a if a and not math.isnan(a) and not math.isnan(b) else math.nan
    meets = bool(retained >= MLPERF_RETAINED) if not math.isnan(retained) else False
    int8_meta = read_metadata(int8_path)
    report = AccuracyReport(
        fp32_model=str(fp32_path),
        int8_model=str(int8_path),
        eval_clips=[str(c) for c in clips],
        fp32=fp32,
        int8=int8,
        primary_metric=name,
        fp32_value=a,
        int8_value=b,
        retained=retained,
        meets_mlperf_99=meets,
        shortfall_points=0.0 if meets or math.isnan(retained) else 100 * (MLPERF_RETAINED - retained),
        ground_truth=truth,
        note=note,
        nodes_kept_float=list((int8_meta.get("quantization") or {}).get("nodes_kept_float", [])),
    )
    if not meets and sensitivity_calib and sensitivity_groups > 0:
        report.sensitivity = node_sensitivity_rows(
            fp32_path,
            sensitivity_calib,
            groups=sensitivity_groups,
            eval_feeds=sensitivity_calib[-4:],
            method=sensitivity_method,
        )
    return report


def write_accuracy_report(report: AccuracyReport, out_stem: str | Path) -> tuple[Path, Path]:
    """``<stem>.json`` and ``<stem>.md`` (atomic)."""
    stem = Path(out_stem)
    json_path, md_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".md")
    atomic_write_text(json_path, json.dumps(report.to_dict(), indent=1))
    atomic_write_text(md_path, report.markdown())
    return json_path, md_path
