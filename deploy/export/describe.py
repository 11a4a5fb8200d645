"""The ``fleetvision`` metadata of an exported graph: every input and output tensor with shape, dtype, meaning,
frame and units, plus cameras, rig, classes, grids, normalisation, model hashes and the latency budget (the schema
and its reader are ``deploy.metadata``)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deploy.export.checkpoint import state_dict_sha256
from deploy.export.graph import BOX3D_COLUMNS, DeployGraph
from deploy.metadata import METADATA_SCHEMA_VERSION, tensor_spec
from perception import model_input
from perception.hashing import file_sha256
from perception.rig import Rig


def build_metadata(
    graph: DeployGraph,
    *,
    rig: Rig,
    cameras: list[str],
    model_name: str | None,
    checkpoint: str | Path | None,
    budget: dict[str, Any] | None,
    exporter: str,
    feeds: dict[str, np.ndarray],
    outputs: dict[str, np.ndarray],
    view_transform: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``fleetvision`` metadata JSON (see ``deploy.metadata``); ``view_transform`` is ``{"mode": "dynamic"}``
    or a baked graph's record (``deploy.runtime.baked_rig.baked_record``)."""
    view_transform = view_transform or {"mode": "dynamic"}
    from perception import __version__

    model = graph.source_model
    config = model.config()
    height, width = config["image_size"]
    n = len(cameras)
    state_shape = [1, *model.state_shape()]
    inputs = [
        tensor_spec(
            "images",
            [1, n, height, width, 3],
            "uint8",
            f"camera images in 'cameras' order, BGR as decoded by OpenCV, resized to {width}x{height} "
            f"({model_input.RESIZE_RULE}); the graph converts to RGB float",
            units="pixel value 0..255",
        ),
        tensor_spec(
            "intrinsics",
            [1, n, 3, 3],
            "float32",
            f"K of each camera for the resized HxW image ({model_input.INTRINSICS_RULE})",
            frame="image",
            units="pixels",
        ),
        tensor_spec(
            "camera_from_ego",
            [1, n, 4, 4],
            "float32",
            "ego frame at the frame's reference time -> camera frame at that camera's capture time",
            frame="ego (x fwd, y left, z up) -> OpenCV camera",
            units="metres",
        ),
        tensor_spec(
            "distortion",
            [1, n, len(model_input.DISTORTION_COLUMNS)],
            "float32",
            f"lens of each camera, layout {model_input.MODEL_DISTORTION!r}: five coefficients, then the lens id "
            f"{model_input.LENS_IDS}; radtan {', '.join(model_input.LENS_COEFFICIENTS['radtan'])} (zeros = pinhole), "
            f"fisheye (equidistant) {', '.join(model_input.LENS_COEFFICIENTS['fisheye'])}, 0 "
            "(perception.model_input.model_distortion)",
        ),
        tensor_spec("camera_valid", [1, n], "float32", "1 = camera image present, 0 = missing (features masked)"),
        tensor_spec(
            "prev_state",
            state_shape,
            "float32",
            "the previous call's 'state' output (zeros with state_valid = 0 at the start or after a gap)",
            frame="BEV grid of the previous frame",
        ),
        tensor_spec(
            "prev_from_curr",
            [1, 4, 4],
            "float32",
            "maps current-ego points to previous-ego points "
            "(inv(world_from_ego[prev]) @ world_from_ego[curr]; identity if unknown)",
            frame="ego",
            units="metres",
        ),
        tensor_spec("state_valid", [1], "float32", "0 = reset the recurrent state, 1 = continue"),
    ]
    if view_transform.get("mode") == "baked":
        for spec in inputs:
            if spec["name"] in view_transform["ignored_inputs"]:
                spec["meaning"] += (
                    f"; IGNORED by this graph: the view transform is baked for rig sha256 "
                    f"{view_transform['rig_sha256'][:12]} (metadata view_transform)"
                )
    meanings = {
        "det3d_boxes": (
            "top-K 3D boxes, columns x, y, z (box centre), l, w, h, yaw, vx, vy; sorted by score",
            "ego frame of the current frame",
            "metres, radians, metres/second",
        ),
        "det3d_scores": ("detection score per slot (sigmoid heatmap peak after 3x3 max-pool suppression)", "", "0..1"),
        "det3d_class_id": ("index into classes.detection3d per slot", "", ""),
        "segmentation": (
            "per-class BEV probability (independent sigmoid) on bev_grid; row 0 = forward edge, col 0 = left edge",
            "ego BEV grid",
            "0..1",
        ),
        "det2d_boxes": (
            "top-K per-camera 2D boxes x1, y1, x2, y2 in the model's input image (scale by source/input "
            "size for the camera's own pixels)",
            "model input image",
            "pixels",
        ),
        "det2d_scores": ("2D detection score per slot", "", "0..1"),
        "det2d_class_id": ("index into classes.detection2d per slot", "", ""),
        "state": ("recurrent BEV state to feed back as prev_state", "BEV grid of the current frame", ""),
    }
    output_specs = []
    for name in graph.output_names():
        meaning, frame, units = meanings[name]
        value = outputs[name]
        output_specs.append(tensor_spec(name, list(value.shape), str(value.dtype), meaning, frame=frame, units=units))
    return {
        "schema_version": METADATA_SCHEMA_VERSION,
        "producer": "fleetvision deploy export",
        "fleetvision_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "exporter": exporter,
        "torch_version": torch.__version__,
        "cameras": list(cameras),
        "image_size": [int(height), int(width)],
        "camera_images": [
            {
                "name": name,
                "source_width": rig[name].width,
                "source_height": rig[name].height,
                "model_width": int(width),
                "model_height": int(height),
            }
            for name in cameras
        ],
        "rig": rig.subset(cameras).to_dict(),
        "inputs": inputs,
        "outputs": output_specs,
        "box3d_columns": list(BOX3D_COLUMNS),
        "top_k": graph.top_k if graph.has_det3d else None,
        "top_k_2d": graph.top_k_2d if graph.has_det2d else None,
        "classes": {
            "detection3d": config["detection3d_classes"],
            "segmentation": config["segmentation_classes"],
            "detection2d": config["detection2d_classes"],
        },
        "bev_grid": model.bev_grid() if getattr(model, "has_bev", False) else None,
        "head_grid": model.head_grid() if graph.has_det3d else None,
        "image_stride": graph.image_stride,
        "normalisation": {
            "input": "BGR uint8 0..255 -> float32 0..255 in graph; "
            + (
                "BGR->RGB flipped in graph"
                if graph.flip_in_graph
                else "BGR->RGB folded into the stem conv's input channels and the mean/std order"
            ),
            "mean": config["pixel_mean"],
            "std": config["pixel_std"],
            "formula": "(rgb - mean) / std, inside the model",
        },
        "preprocess": model_input.describe((height, width)),
        "model": {
            "name": model_name or "BevVideoNet",
            "class": type(model).__name__,
            "config": config,
            "state_dict_sha256": state_dict_sha256(model),
            "checkpoint": str(checkpoint) if checkpoint else None,
            "checkpoint_sha256": file_sha256(checkpoint) if checkpoint else None,
        },
        "latency_budget": budget,
        "state_shape": list(model.state_shape()),
        "view_transform": view_transform,
    }
