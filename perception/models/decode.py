"""Decoders: model outputs -> boxes. ``decode_topk``/``decode_det2d_topk`` are tensor-only (fixed K, exportable
inside an ONNX graph); ``decode_bev_detections``/``decode_det2d`` add thresholds and return numpy per sample."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from perception.models.targets import grid_values

BOX3D_FIELDS = ("x", "y", "z", "l", "w", "h", "yaw", "vx", "vy")


def peak_topk(
    heatmap_logits: torch.Tensor, *, k: int, kernel: int = 3
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sigmoid, ``kernel`` max-pool peak suppression, top-``k`` over classes x cells.

    heatmap_logits [B,K,H,W] -> (scores [B,k], class_id [B,k] int64, cell index [B,k] int64 into H*W).
    ``k`` must be <= K*H*W.
    """
    prob = torch.sigmoid(heatmap_logits)
    peak = F.max_pool2d(prob, kernel, stride=1, padding=kernel // 2)
    prob = prob * (peak == prob).to(prob.dtype)
    cells = heatmap_logits.shape[-1] * heatmap_logits.shape[-2]
    scores, flat_index = torch.topk(prob.flatten(1), k, dim=1)
    class_id = torch.div(flat_index, cells, rounding_mode="floor")
    return scores, class_id, flat_index - class_id * cells


def gather_cells(maps: torch.Tensor, cell_index: torch.Tensor) -> torch.Tensor:
    """maps [B,C,H,W], cell_index [B,k] into H*W -> values [B,k,C]."""
    flat = maps.flatten(2)  # [B,C,H*W]
    index = cell_index.unsqueeze(1).expand(-1, flat.shape[1], -1)
    return torch.gather(flat, 2, index).transpose(1, 2)


def decode_topk(
    heatmap: torch.Tensor,
    offset: torch.Tensor,
    z: torch.Tensor,
    size: torch.Tensor,
    yaw: torch.Tensor,
    velocity: torch.Tensor,
    *,
    grid: Any,
    k: int = 100,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BEV head outputs [B,*,Hh,Wh] -> (boxes [B,k,9], scores [B,k], class_id [B,k]), tensor-only.

    ``grid`` is the head grid (``model.head_grid()`` or a ``BevGrid``). Box columns are ``BOX3D_FIELDS``:
    centre x, y, z (ego metres), size l, w, h (metres), yaw (rad), velocity vx, vy (m/s, ego frame).
    """
    _, x_max, _, y_max, res = grid_values(grid)
    width = heatmap.shape[-1]
    scores, class_id, cell = peak_topk(heatmap, k=k)
    row = torch.div(cell, width, rounding_mode="floor")
    col = cell - row * width
    regression = gather_cells(torch.cat([offset, z, size, yaw, velocity], dim=1), cell)  # [B,k,10]
    x = x_max - (row.to(regression.dtype) + regression[..., 0]) * res
    y = y_max - (col.to(regression.dtype) + regression[..., 1]) * res
    heading = torch.atan2(regression[..., 6], regression[..., 7])
    boxes = torch.cat(
        [
            x.unsqueeze(-1),
            y.unsqueeze(-1),
            regression[..., 2:3],
            torch.exp(regression[..., 3:6]),
            heading.unsqueeze(-1),
            regression[..., 8:10],
        ],
        dim=-1,
    )
    return boxes, scores, class_id


def decode_bev_detections(
    outputs: dict[str, torch.Tensor], *, grid: Any, k: int = 100, score_threshold: float = 0.1
) -> list[dict[str, np.ndarray]]:
    """Per sample: center (M,3), size (M,3), yaw (M,), velocity (M,2), class_id (M,) int64, score (M,) float32.

    ``outputs`` holds the BEV detection outputs of ``forward`` ([B,...]); ``grid`` = ``model.head_grid()``.
    """
    heatmap = outputs["heatmap"]
    k = min(k, heatmap.shape[1] * heatmap.shape[2] * heatmap.shape[3])
    with torch.no_grad():
        boxes, scores, class_id = decode_topk(
            heatmap,
            outputs["offset"],
            outputs["z"],
            outputs["size"],
            outputs["yaw"],
            outputs["velocity"],
            grid=grid,
            k=k,
        )
    results = []
    for sample_boxes, sample_scores, sample_class in zip(
        boxes.cpu().numpy(), scores.cpu().numpy(), class_id.cpu().numpy()
    ):
        keep = sample_scores >= score_threshold
        b = sample_boxes[keep].astype(np.float64)
        results.append(
            {
                "center": b[:, 0:3],
                "size": b[:, 3:6],
                "yaw": b[:, 6],
                "velocity": b[:, 7:9],
                "class_id": sample_class[keep].astype(np.int64),
                "score": sample_scores[keep].astype(np.float32),
            }
        )
    return results


def decode_det2d_topk(
    det2d_heatmap: torch.Tensor, det2d_box: torch.Tensor, *, stride: int, k: int = 100
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-camera 2D outputs [B,N,K2,h,w], [B,N,4,h,w] -> (xyxy [B,N,k,4] pixels, scores [B,N,k], class_id [B,N,k])."""
    b, n = det2d_heatmap.shape[0], det2d_heatmap.shape[1]
    heatmap = det2d_heatmap.flatten(0, 1)
    box = det2d_box.flatten(0, 1)
    width = heatmap.shape[-1]
    scores, class_id, cell = peak_topk(heatmap, k=k)
    row = torch.div(cell, width, rounding_mode="floor")
    col = cell - row * width
    values = gather_cells(box, cell)  # [B*N,k,4]
    cx = (col.to(values.dtype) + values[..., 0]) * stride
    cy = (row.to(values.dtype) + values[..., 1]) * stride
    half_w = 0.5 * torch.exp(values[..., 2]) * stride
    half_h = 0.5 * torch.exp(values[..., 3]) * stride
    xyxy = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)
    return xyxy.reshape(b, n, k, 4), scores.reshape(b, n, k), class_id.reshape(b, n, k)


def decode_det2d(
    outputs: dict[str, torch.Tensor], *, stride: int, k: int = 100, score_threshold: float = 0.3
) -> list[list[dict[str, np.ndarray]]]:
    """[sample][camera] -> dict xyxy (M,4) pixels of the model's input image, class_id (M,), score (M,)."""
    heatmap = outputs["det2d_heatmap"]
    k = min(k, heatmap.shape[2] * heatmap.shape[3] * heatmap.shape[4])
    with torch.no_grad():
        xyxy, scores, class_id = decode_det2d_topk(heatmap, outputs["det2d_box"], stride=stride, k=k)
    xyxy, scores, class_id = xyxy.cpu().numpy(), scores.cpu().numpy(), class_id.cpu().numpy()
    results = []
    for b in range(xyxy.shape[0]):
        cameras = []
        for n in range(xyxy.shape[1]):
            keep = scores[b, n] >= score_threshold
            cameras.append(
                {
                    "xyxy": xyxy[b, n][keep].astype(np.float64),
                    "class_id": class_id[b, n][keep].astype(np.int64),
                    "score": scores[b, n][keep].astype(np.float32),
                }
            )
        results.append(cameras)
    return results
