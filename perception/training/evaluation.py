"""Validation/test metrics from model outputs: BEV detection mAP (nuScenes centre distance), per-camera 2D AP,
BEV segmentation IoU. Per-frame records are plain numpy, gathered across DDP ranks before computing."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from perception.metrics import BevDetectionEvaluator, CocoDetectionEvaluator, SegmentationIoU


def _flat(x: torch.Tensor) -> torch.Tensor:
    """[B, T, ...] -> [B*T, ...]."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


class EvaluationRecords:
    """Collects per-frame predictions and ground truth of one evaluation epoch."""

    def __init__(
        self,
        spec: dict[str, Any],
        *,
        head_grid: dict | None,
        image_stride: int,
        score_threshold: float,
        det2d_score_threshold: float,
        max_detections: int,
    ) -> None:
        self.spec = spec
        self.head_grid, self.image_stride = head_grid, image_stride
        self.score_threshold, self.det2d_score_threshold = score_threshold, det2d_score_threshold
        self.max_detections = max_detections
        self.bev: list[tuple[dict, dict]] = []
        self.det2d: list[tuple[dict, dict]] = []
        classes = spec.get("segmentation_classes")
        self.segmentation = SegmentationIoU(classes, mode="multilabel", threshold=0.5) if classes else None

    def add_batch(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> None:
        from perception.models.decode import decode_bev_detections, decode_det2d

        if "heatmap" in outputs:
            flat = {k: _flat(outputs[k]).float() for k in ("heatmap", "offset", "z", "size", "yaw", "velocity")}
            preds = decode_bev_detections(
                flat, grid=self.head_grid, k=self.max_detections, score_threshold=self.score_threshold
            )
            boxes = _flat(batch["gt_boxes3d"]).cpu().numpy().astype(np.float64)
            classes = _flat(batch["gt_class3d"]).cpu().numpy()
            for pred, gt_boxes, gt_classes in zip(preds, boxes, classes):
                keep = gt_classes >= 0
                gt = {
                    "center": gt_boxes[keep, :3],
                    "size": gt_boxes[keep, 3:6],
                    "yaw": gt_boxes[keep, 6],
                    "velocity": gt_boxes[keep, 7:9],
                    "class_id": gt_classes[keep],
                }
                self.bev.append((pred, gt))
        if "segmentation" in outputs and self.segmentation is not None:
            probability = torch.sigmoid(_flat(outputs["segmentation"]).float()).cpu().numpy()
            self.segmentation.update(probability, _flat(batch["segmentation"]).cpu().numpy())
        if "det2d_heatmap" in outputs:
            flat = {k: _flat(outputs[k]).float() for k in ("det2d_heatmap", "det2d_box")}
            preds = decode_det2d(
                flat, stride=self.image_stride, k=self.max_detections, score_threshold=self.det2d_score_threshold
            )
            boxes = _flat(batch["gt_boxes2d"]).cpu().numpy()
            classes = _flat(batch["gt_class2d"]).cpu().numpy()
            for cameras, gt_boxes, gt_classes in zip(preds, boxes, classes):
                for n, pred in enumerate(cameras):
                    keep = gt_classes[n] >= 0
                    self.det2d.append((pred, {"xyxy": gt_boxes[n][keep], "class_id": gt_classes[n][keep]}))

    def gather(self) -> None:
        """Merge records of every DDP rank (no-op without torch.distributed)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        parts: list[Any] = [None] * dist.get_world_size()
        seg = self.segmentation
        dist.all_gather_object(parts, (self.bev, self.det2d, None if seg is None else (seg.intersection, seg.union)))
        self.bev = [r for p in parts for r in p[0]]
        self.det2d = [r for p in parts for r in p[1]]
        if seg is not None:
            seg.intersection = np.sum([p[2][0] for p in parts], 0)
            seg.union = np.sum([p[2][1] for p in parts], 0)

    def compute(self) -> tuple[dict[str, float], dict[str, Any]]:
        """(flat scalar metrics for logging, full report)."""
        scalars: dict[str, float] = {}
        report: dict[str, Any] = {}
        classes3d = self.spec.get("detection3d_classes")
        if self.bev and classes3d:
            evaluator = BevDetectionEvaluator(classes3d)
            for pred, gt in self.bev:
                evaluator.add_frame(pred, gt)
            result = evaluator.compute()
            report["bev_detection"] = result
            for key in ("mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE"):
                scalars[key] = result[key]
            for name, entry in result["per_class"].items():
                if entry["num_gt"] > 0:
                    for threshold, ap in entry["ap"].items():
                        scalars[f"AP_{name}@{float(threshold):g}m"] = ap
        if self.segmentation is not None:
            ious = self.segmentation.compute()
            report["segmentation_iou"] = ious
            for name, iou in ious.items():
                scalars["mIoU" if name == "mIoU" else f"IoU_{name}"] = iou
        classes2d = self.spec.get("detection2d_classes")
        if self.det2d and classes2d:
            coco = CocoDetectionEvaluator(classes2d)
            for pred, gt in self.det2d:
                coco.add_image(pred["xyxy"], pred["score"], pred["class_id"], gt["xyxy"], gt["class_id"])
            result = coco.compute()
            report["detection2d"] = result
            for key in ("AP", "AP50", "AP75"):
                if key in result:
                    scalars[f"det2d_{key}"] = result[key]
        return {k: float(v) for k, v in scalars.items() if v is not None}, report
