"""``DeployGraph``: the model plus in-graph input conversion and decoding, with fixed shapes.

The graph takes what the runtime has: ``images`` uint8 [1, N, H, W, 3] BGR (it flips to RGB and casts; the model
normalises), the calibration, the previous state and the ego motion; it returns decoded detections (sigmoid, 3x3
max-pool peak suppression, top-K over classes x cells: scores, class ids, boxes in ego metres), segmentation
probabilities, per-camera 2D detections (if the head exists) and the next state. The runtime only thresholds.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from perception.rig import Rig

LOG = logging.getLogger(__name__)
INPUT_NAMES = (
    "images",
    "intrinsics",
    "camera_from_ego",
    "distortion",
    "camera_valid",
    "prev_state",
    "prev_from_curr",
    "state_valid",
)
BOX3D_COLUMNS = ("x", "y", "z", "l", "w", "h", "yaw", "vx", "vy")


class DeployGraph(nn.Module):
    """Model + in-graph input conversion and decoding (fixed shapes; see module doc for the contract)."""

    def __init__(
        self,
        model: nn.Module,
        *,
        top_k: int = 100,
        top_k_2d: int = 50,
        bake_for: tuple[Rig, list[str]] | None = None,
    ) -> None:
        """``bake_for`` (rig, cameras): the view transform is evaluated once for that rig (``deploy.export.bake``)
        and the graph ignores its intrinsics and distortion (camera_from_ego drives a first-order motion correction);
        None: the dynamic view transform, any rig."""
        super().__init__()
        folded = fold_bgr_into_stem(model)  # None: flip the channels in the graph instead
        self.flip_in_graph = folded is None
        runnable = model if folded is None else folded
        self.baked = bake_for is not None
        if bake_for is not None:
            from deploy.export.bake import baked_copy

            runnable = baked_copy(runnable, *bake_for, in_place=folded is not None)
        self.model = runnable  # submodule name 'model': weights stay 'model.<module path>'
        object.__setattr__(self, "source_model", model)  # the checkpoint's model (not a registered submodule)
        config = model.config()
        self.has_det3d = config["detection3d_classes"] is not None
        self.has_seg = config["segmentation_classes"] is not None
        self.has_det2d = config["detection2d_classes"] is not None
        self.head_grid = model.head_grid() if self.has_det3d else None
        self.image_stride = int(config["image_stride"])
        self.top_k, self.top_k_2d = int(top_k), int(top_k_2d)
        self.register_buffer("bgr_to_rgb", torch.tensor([2, 1, 0]), persistent=False)

    def output_names(self) -> list[str]:
        names = []
        if self.has_det3d:
            names += ["det3d_boxes", "det3d_scores", "det3d_class_id"]
        if self.has_seg:
            names.append("segmentation")
        if self.has_det2d:
            names += ["det2d_boxes", "det2d_scores", "det2d_class_id"]
        return [*names, "state"]

    def forward(
        self,
        images: torch.Tensor,
        intrinsics: torch.Tensor,
        camera_from_ego: torch.Tensor,
        distortion: torch.Tensor,
        camera_valid: torch.Tensor,
        prev_state: torch.Tensor,
        prev_from_curr: torch.Tensor,
        state_valid: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        if self.flip_in_graph:
            images = torch.index_select(images, 4, self.bgr_to_rgb)
        pixels = images.permute(0, 1, 4, 2, 3).to(torch.float32)  # BGR when the stem conv was folded, else RGB
        out = self.model(
            pixels, intrinsics, camera_from_ego, distortion, camera_valid, prev_state, prev_from_curr, state_valid
        )
        return self._decode(out)

    def raw_outputs(self, feeds: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """The model's own outputs (heatmaps, regressions, state; before decoding) for numpy ``feeds``."""
        images, *rest = (torch.from_numpy(np.ascontiguousarray(feeds[name])) for name in INPUT_NAMES)
        with torch.no_grad():
            if self.flip_in_graph:
                images = torch.index_select(images, 4, self.bgr_to_rgb)
            return self.model(images.permute(0, 1, 4, 2, 3).to(torch.float32), *rest)

    def _decode(self, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        from perception.models.decode import decode_det2d_topk, decode_topk

        results: list[torch.Tensor] = []
        if self.has_det3d:
            heatmap = out["heatmap"]
            k = min(self.top_k, heatmap.shape[1] * heatmap.shape[2] * heatmap.shape[3])
            boxes, scores, class_id = decode_topk(
                heatmap, out["offset"], out["z"], out["size"], out["yaw"], out["velocity"], grid=self.head_grid, k=k
            )
            results += [boxes, scores, class_id]
        if self.has_seg:
            results.append(torch.sigmoid(out["segmentation"]))
        if self.has_det2d:
            heatmap2d = out["det2d_heatmap"]
            k2 = min(self.top_k_2d, heatmap2d.shape[2] * heatmap2d.shape[3] * heatmap2d.shape[4])
            results += list(decode_det2d_topk(heatmap2d, out["det2d_box"], stride=self.image_stride, k=k2))
        results.append(out["state"])
        return tuple(results)


def fold_bgr_into_stem(model: nn.Module) -> nn.Module | None:
    """A copy of ``model`` that takes BGR images: the per-channel normalisation (mean, std) and the input channels
    of the first 3-channel conv are reversed, which equals flipping BGR -> RGB before the model (a strided Gather
    over the last axis costs more than the whole normalisation). Verified numerically on the image encoder;
    None when the model has no such stem (the graph then flips the channels itself)."""
    import copy

    encoder = getattr(model, "image_encoder", None)
    if encoder is None or not hasattr(model, "pixel_mean"):
        return None
    stem_name = next((name for name, m in encoder.named_modules() if isinstance(m, nn.Conv2d)), None)
    if stem_name is None or encoder.get_submodule(stem_name).in_channels != 3:
        return None
    folded = copy.deepcopy(model).eval()
    stem = folded.image_encoder.get_submodule(stem_name)
    with torch.no_grad():
        stem.weight.copy_(stem.weight.flip(1))
    folded.pixel_mean = model.pixel_mean.flip(1).clone()
    folded.pixel_std = model.pixel_std.flip(1).clone()
    generator = torch.Generator().manual_seed(0)
    rgb = torch.rand(1, 3, 64, 64, generator=generator) * 255.0
    with torch.no_grad():
        expected = model.image_encoder((rgb - model.pixel_mean) / model.pixel_std)
        got = folded.image_encoder((rgb.flip(1) - folded.pixel_mean) / folded.pixel_std)
    if not torch.allclose(expected, got, atol=1e-4, rtol=1e-4):
        LOG.warning("BGR folding into the stem conv does not reproduce the model: flipping channels in the graph")
        return None
    return folded


def example_feeds(model: nn.Module, rig: Rig, cameras: list[str], *, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic feeds with the rig's real calibration (random images), numpy, as the runtime builds them."""
    from deploy.runtime.preprocess import FramePreprocessor

    height, width = model.config()["image_size"]
    rng = np.random.default_rng(seed)
    preprocessor = FramePreprocessor(rig, cameras, (height, width))
    images = {name: rng.integers(0, 256, (rig[name].height, rig[name].width, 3), dtype=np.uint8) for name in cameras}
    return preprocessor.feeds(
        images,
        camera_from_ego=None,
        prev_state=np.zeros((1, *model.state_shape()), np.float32),
        prev_from_curr=np.eye(4),
        state_valid=False,
    )


def torch_runner(graph: DeployGraph):
    """A callable feeds (numpy) -> {output name: numpy} running the PyTorch graph (eager, no grad)."""
    names = graph.output_names()

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            outputs = graph(*[torch.from_numpy(np.ascontiguousarray(feeds[name])) for name in INPUT_NAMES])
        return {name: value.numpy() for name, value in zip(names, outputs)}

    return run


def eager_step(checkpoint: str | Path, feeds: Sequence[dict[str, np.ndarray]] | None = None) -> Callable[[], None]:
    """A callable that runs the checkpoint's deploy graph once in PyTorch eager FP32 (decoding included), cycling
    through ``feeds`` (default: example feeds on the checkpoint's rig): the eager row beside ONNX Runtime rows."""
    from deploy.export.checkpoint import load_checkpoint, resolve_rig

    model, meta = load_checkpoint(checkpoint)
    graph = DeployGraph(model).eval()
    if not feeds:
        rig, cameras = resolve_rig(meta, None)
        feeds = [example_feeds(model, rig, cameras)]
    missing = sorted({name for f in feeds for name in INPUT_NAMES if name not in f})
    if missing:
        raise ValueError(f"{checkpoint}: the PyTorch row needs the deploy graph's inputs, the feeds lack {missing}")
    tensors = [tuple(torch.from_numpy(np.ascontiguousarray(f[name])) for name in INPUT_NAMES) for f in feeds]
    calls = itertools.count()

    def step() -> None:
        with torch.no_grad():
            graph(*tensors[next(calls) % len(tensors)])

    step.input_shapes = {name: list(np.shape(feeds[0][name])) for name in INPUT_NAMES}  # for the bench report
    return step
