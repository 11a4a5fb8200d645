"""Validation picture: camera mosaic (2D GT solid, 2D predictions dashed) beside the BEV (maps, GT boxes solid,
predicted boxes dashed), for the last frame of the first window of an evaluation epoch. Uses ``perception.viz``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def validation_picture(
    batch: dict[str, torch.Tensor],
    outputs: dict[str, torch.Tensor],
    spec: dict[str, Any],
    *,
    head_grid: dict | None,
    image_stride: int,
    score_threshold: float = 0.3,
    camera_names: list[str] | None = None,
) -> np.ndarray:
    """RGB uint8 picture (H, W, 3) of sample 0, last frame; ``batch``/``outputs`` are CPU tensors [1, T, ...]."""
    import cv2

    from perception.geometry import BevGrid
    from perception.labels import Boxes3D
    from perception.models.decode import decode_bev_detections, decode_det2d
    from perception.viz import draw_boxes2d_on_image, render_bev, render_mosaic

    t = batch["images"].shape[1] - 1
    images_rgb = batch["images"][0, t].permute(0, 2, 3, 1).numpy()
    classes2d = spec.get("detection2d_classes")
    preds2d = None
    if "det2d_heatmap" in outputs:
        preds2d = decode_det2d(
            {k: outputs[k][:, t] for k in ("det2d_heatmap", "det2d_box")},
            stride=image_stride,
            score_threshold=score_threshold,
        )[0]
    tiles = {}
    for n, image in enumerate(images_rgb):
        tile = np.ascontiguousarray(image[..., ::-1])
        keep = batch["gt_class2d"][0, t, n] >= 0
        tile = draw_boxes2d_on_image(
            tile,
            batch["gt_boxes2d"][0, t, n][keep].numpy(),
            batch["gt_class2d"][0, t, n][keep].numpy(),
            classes2d,
            style="gt",
        )
        if preds2d is not None:
            tile = draw_boxes2d_on_image(tile, preds2d[n]["xyxy"], preds2d[n]["class_id"], classes2d, style="pred")
        tiles[camera_names[n] if camera_names and n < len(camera_names) else f"cam{n}"] = tile
    mosaic = render_mosaic(tiles, columns=3, tile_width=320)
    panels = [mosaic]
    if spec.get("bev_grid") is not None:
        grid = BevGrid.from_dict(spec["bev_grid"])
        keep = batch["gt_class3d"][0, t] >= 0
        gt = batch["gt_boxes3d"][0, t][keep].double().numpy()
        gt_boxes = Boxes3D(gt[:, :3], gt[:, 3:6], gt[:, 6], gt[:, 7:9], batch["gt_class3d"][0, t][keep].numpy())
        pred_boxes = None
        if "heatmap" in outputs and head_grid is not None:
            decoded = decode_bev_detections(
                {k: outputs[k][:, t] for k in ("heatmap", "offset", "z", "size", "yaw", "velocity")},
                grid=head_grid,
                score_threshold=score_threshold,
            )[0]
            pred_boxes = Boxes3D(
                decoded["center"],
                decoded["size"],
                decoded["yaw"],
                decoded["velocity"],
                decoded["class_id"],
                decoded["score"],
            )
        maps, channels = None, None
        if "segmentation" in outputs:
            pred = (torch.sigmoid(outputs["segmentation"][0, t]) >= 0.5).numpy().astype(np.uint8)
            truth = batch["segmentation"][0, t].numpy().astype(np.uint8)
            maps = np.concatenate([truth, pred])
            names = spec["segmentation_classes"]
            channels = [*names, *[f"pred_{c}" for c in names]]
        panels.append(
            render_bev(
                gt_boxes,
                grid,
                bev_maps=maps,
                pred_boxes=pred_boxes,
                classes=spec.get("detection3d_classes"),
                bev_channels=channels,
                size=max(mosaic.shape[0], 320),
            )
        )
    height = max(p.shape[0] for p in panels)
    padded = [cv2.copyMakeBorder(p, 0, height - p.shape[0], 0, 0, cv2.BORDER_CONSTANT, value=0) for p in panels]
    return np.ascontiguousarray(np.concatenate(padded, axis=1)[..., ::-1])
