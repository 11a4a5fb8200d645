"""``deploy export --bake-rig``: the view transform evaluated once for the deployed rig (``perception.models.
baked_lifting``), and the check that the baked graph computes what the dynamic one does.

The baked graph keeps all eight inputs (one feed builder serves both kinds of export) but ignores
``intrinsics`` and ``distortion``: the rig's static calibration was baked (``deploy.runtime.baked_rig``).
``camera_from_ego`` carries each camera's capture time (the ego moves between a camera's capture and the frame's
reference time); the baked graph follows that motion to first order around the static extrinsics
(``BakedBevLifting``'s motion correction); ``benchmarks/bench_deploy.py`` measures what remains on a clip.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from deploy.export import ExportError
from deploy.runtime.baked_rig import rig_calibration
from perception.rig import Rig

PARITY_TOLERANCE = 1e-4  # max |baked - dynamic| per raw output, as a fraction of that output's max |dynamic|


def feature_size(model: nn.Module) -> tuple[int, int]:
    """(h, w) of the image encoder's feature map for the model's input size."""
    height, width = model.config()["image_size"]
    with torch.no_grad():
        features = model.image_encoder(torch.zeros(1, 3, int(height), int(width)))
    return int(features.shape[-2]), int(features.shape[-1])


def bake_lifting(model: nn.Module, rig: Rig, cameras: Sequence[str]):
    """``BakedBevLifting`` of ``model.lifting`` for ``rig`` (cameras in model order), from the model inputs the
    runtime would feed (``deploy.runtime.baked_rig.rig_calibration``)."""
    from perception.models.baked_lifting import BakedBevLifting

    if not getattr(model, "has_bev", False):
        raise ExportError("--bake-rig: this model has no view transform to bake (no BEV detection/segmentation head)")
    size_hw = tuple(model.config()["image_size"])
    calibration = rig_calibration(rig, cameras, size_hw)
    return BakedBevLifting.bake(
        model.lifting,
        intrinsics=torch.from_numpy(calibration["intrinsics"]),
        camera_from_ego=torch.from_numpy(calibration["camera_from_ego"]),
        distortion=torch.from_numpy(calibration["distortion"]),
        image_size=size_hw,
        feature_hw=feature_size(model),
    )


def baked_copy(model: nn.Module, rig: Rig, cameras: Sequence[str], *, in_place: bool = False) -> nn.Module:
    """``model`` (a deep copy unless ``in_place``) with its ``lifting`` replaced by the baked one."""
    target = model if in_place else copy.deepcopy(model)
    target.lifting = bake_lifting(target, rig, cameras)
    return target.eval()


def parity_feeds(example: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Feeds that exercise the baked graph: the example frame (state reset), the next frame carrying a non-zero state,
    and the same with the second camera dead (``camera_valid`` 0)."""
    rng = np.random.default_rng(1)
    carried = {**example, "prev_state": rng.standard_normal(example["prev_state"].shape).astype(np.float32)}
    carried["state_valid"] = np.ones_like(example["state_valid"])
    dead = {**carried, "camera_valid": example["camera_valid"].copy()}
    dead["camera_valid"][0, min(1, dead["camera_valid"].shape[1] - 1)] = 0.0
    return [example, carried, dead]


def bake_parity(dynamic_graph: nn.Module, baked_graph: nn.Module, feeds: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Raw model outputs (before decoding) of the baked vs the dynamic deploy graph on the same feeds:
    {"outputs": {name: {"max_abs", "scale", "relative"}}, "worst_relative", "tolerance", "passed"}."""
    outputs: dict[str, dict[str, float]] = {}
    for feed in feeds:
        reference = dynamic_graph.raw_outputs(feed)
        got = baked_graph.raw_outputs(feed)
        for name, value in reference.items():
            entry = outputs.setdefault(name, {"max_abs": 0.0, "scale": 0.0})
            entry["max_abs"] = max(entry["max_abs"], float((got[name] - value).abs().max()))
            entry["scale"] = max(entry["scale"], float(value.abs().max()))
    for entry in outputs.values():
        entry["relative"] = entry["max_abs"] / max(entry["scale"], 1e-12)
    worst = max(entry["relative"] for entry in outputs.values())
    return {
        "outputs": outputs,
        "worst_relative": worst,
        "tolerance": PARITY_TOLERANCE,
        "feeds": ["example frame", "state carried", "camera 2 dead"],
        "passed": worst <= PARITY_TOLERANCE,
    }
