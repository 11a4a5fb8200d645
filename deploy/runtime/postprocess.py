"""The runtime's only post-processing: threshold + slice the in-graph decoded outputs into label containers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from perception.labels import Boxes2D, Boxes3D


def boxes3d_from_outputs(outputs: Mapping[str, np.ndarray], score_threshold: float) -> Boxes3D:
    """``det3d_boxes`` [1,K,9] (x,y,z,l,w,h,yaw,vx,vy; ego frame, m, rad, m/s), scores, class ids -> Boxes3D."""
    if "det3d_boxes" not in outputs:
        return Boxes3D.empty()
    boxes = np.asarray(outputs["det3d_boxes"])[0].astype(np.float64)
    scores = np.asarray(outputs["det3d_scores"])[0]
    keep = scores >= score_threshold
    boxes = boxes[keep]
    return Boxes3D(
        center=boxes[:, 0:3],
        size=boxes[:, 3:6],
        yaw=boxes[:, 6],
        velocity=boxes[:, 7:9],
        class_id=np.asarray(outputs["det3d_class_id"])[0][keep].astype(np.int64),
        score=scores[keep].astype(np.float32),
    )


def boxes2d_from_outputs(
    outputs: Mapping[str, np.ndarray],
    cameras: Sequence[str],
    model_size_hw: tuple[int, int],
    source_sizes_wh: Mapping[str, tuple[int, int]],
    score_threshold: float,
    camera_valid: np.ndarray | None = None,
) -> dict[str, Boxes2D]:
    """Per-camera 2D boxes, scaled from the model's input pixels to each camera's own image pixels."""
    if "det2d_boxes" not in outputs:
        return {}
    xyxy_all = np.asarray(outputs["det2d_boxes"])[0]
    scores_all = np.asarray(outputs["det2d_scores"])[0]
    class_all = np.asarray(outputs["det2d_class_id"])[0]
    out = {}
    for n, name in enumerate(cameras):
        if camera_valid is not None and camera_valid[n] <= 0:
            continue
        keep = scores_all[n] >= score_threshold
        width, height = source_sizes_wh[name]
        scale = np.array([width / model_size_hw[1], height / model_size_hw[0]] * 2)
        out[name] = Boxes2D(
            xyxy=xyxy_all[n][keep].astype(np.float64) * scale,
            class_id=class_all[n][keep].astype(np.int64),
            score=scores_all[n][keep].astype(np.float32),
        )
    return out
