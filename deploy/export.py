"""``deploy export``: a checkpoint -> one self-describing ONNX file with decoding inside the graph.

The graph takes what the runtime has: ``images`` uint8 [1, N, H, W, 3] BGR (it flips to RGB and casts; the model
normalises), the calibration, the previous state and the ego motion; it returns decoded detections (sigmoid, 3x3
max-pool peak suppression, top-K over classes x cells: scores, class ids, boxes in ego metres), segmentation
probabilities, per-camera 2D detections (if the head exists) and the next state. The runtime only thresholds.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deploy.metadata import METADATA_SCHEMA_VERSION, set_metadata, tensor_spec
from perception import model_input
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


class ExportError(RuntimeError):
    """Export could not produce a valid model (message names the checkpoint/file and the reason)."""


# ---------------------------------------------------------------------------------------------- checkpoint
def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, metadata) via ``perception.training.checkpoint.load_model_checkpoint``
    (``torch.load(weights_only=True)``: a checkpoint from an unknown source cannot run code)."""
    import pickle

    from perception.training.checkpoint import load_model_checkpoint

    try:
        return load_model_checkpoint(path)
    except pickle.UnpicklingError as error:
        raise ExportError(
            f"{path}: refused: the checkpoint holds objects other than tensors and plain types, and "
            f"is loaded with torch.load(weights_only=True) ({str(error).splitlines()[0]})"
        ) from error
    except (ValueError, KeyError, RuntimeError) as error:
        raise ExportError(f"{path}: cannot load the checkpoint: {error}") from error


def state_dict_sha256(model: nn.Module) -> str:
    """sha256 over the state_dict (names, dtypes, shapes and bytes, in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{array.dtype}|{tuple(array.shape)}|".encode())
        digest.update(array.numpy().tobytes() if array.dtype != torch.bfloat16 else array.float().numpy().tobytes())
    return digest.hexdigest()


def resolve_rig(meta: dict[str, Any], rig_path: str | Path | None) -> tuple[Rig, list[str]]:
    """The rig and camera order to bake in: ``--rig`` (rig.yaml or a clip folder) overrides the checkpoint's."""
    if rig_path is not None:
        path = Path(rig_path)
        rig = Rig.load(path / "rig.yaml" if path.is_dir() else path)
    elif meta.get("rig"):
        rig = Rig.from_dict(meta["rig"], source="checkpoint 'rig'")
    else:
        raise ExportError(
            "the checkpoint carries no rig; pass --rig RIG.yaml (or a clip folder) so the exported file "
            "knows its cameras, image sizes and calibration"
        )
    cameras = list(meta.get("cameras") or rig.names)
    missing = [name for name in cameras if name not in rig.names]
    if missing:
        raise ExportError(f"rig cameras {rig.names} lack the checkpoint's cameras {missing}")
    return rig, cameras


# ---------------------------------------------------------------------------------------------- the graph
class DeployGraph(nn.Module):
    """Model + in-graph input conversion and decoding (fixed shapes; see module doc for the contract)."""

    def __init__(self, model: nn.Module, *, top_k: int = 100, top_k_2d: int = 50) -> None:
        super().__init__()
        folded = fold_bgr_into_stem(model)  # None: flip the channels in the graph instead
        self.flip_in_graph = folded is None
        self.model = model if folded is None else folded  # submodule name 'model': weights stay 'model.<module path>'
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
        from perception.models.decode import decode_det2d_topk, decode_topk

        if self.flip_in_graph:
            images = torch.index_select(images, 4, self.bgr_to_rgb)
        pixels = images.permute(0, 1, 4, 2, 3).to(torch.float32)  # BGR when the stem conv was folded, else RGB
        out = self.model(
            pixels, intrinsics, camera_from_ego, distortion, camera_valid, prev_state, prev_from_curr, state_valid
        )
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


# ---------------------------------------------------------------------------------------------- metadata
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
) -> dict[str, Any]:
    """The ``fleetvision`` metadata JSON (see ``deploy.metadata``)."""
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
            [1, n, len(model_input.MODEL_DISTORTION_COEFFICIENTS)],
            "float32",
            f"OpenCV radtan {', '.join(model_input.MODEL_DISTORTION_COEFFICIENTS)} (zeros = pinhole)",
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
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
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
            "checkpoint_sha256": _file_sha256(checkpoint) if checkpoint else None,
        },
        "latency_budget": budget,
        "state_shape": list(model.state_shape()),
    }


def _file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- export
@dataclass
class ExportResult:
    """What ``export_onnx`` wrote."""

    path: Path
    exporter: str
    seconds: float
    size_mb: float
    metadata: dict[str, Any]
    simplified: bool = False
    notes: list[str] = field(default_factory=list)


def _torch_export(graph: DeployGraph, args: tuple[torch.Tensor, ...], path: Path, *, dynamo: bool) -> None:
    """``torch.onnx.export`` with fixed shapes into ``path`` (weights embedded)."""
    kwargs: dict[str, Any] = dict(input_names=list(INPUT_NAMES), output_names=graph.output_names())
    if dynamo:
        program = torch.onnx.export(graph, args, dynamo=True, optimize=True, external_data=False, **kwargs)
        program.save(str(path), external_data=False)
    else:
        torch.onnx.export(graph, args, str(path), dynamo=False, opset_version=17, do_constant_folding=True, **kwargs)


def export_onnx(
    model: nn.Module,
    *,
    rig: Rig,
    cameras: list[str],
    out: str | Path,
    top_k: int = 100,
    top_k_2d: int = 50,
    model_name: str | None = None,
    checkpoint: str | Path | None = None,
    budget: dict[str, Any] | None = None,
    simplify: bool = False,
    allow_legacy: bool = True,
) -> ExportResult:
    """Export ``model`` (fixed shapes from ``rig``/``cameras`` and the model's image size) to ``out`` atomically;
    runs the ONNX checker and strict shape inference and embeds the metadata. Dynamo first; TorchScript only if
    dynamo fails and ``allow_legacy`` (the reason is recorded in ``notes``)."""
    import onnx

    out = Path(out)
    model = model.eval()
    graph = DeployGraph(model, top_k=top_k, top_k_2d=top_k_2d).eval()
    feeds = example_feeds(model, rig, cameras)
    args = tuple(torch.from_numpy(feeds[name]) for name in INPUT_NAMES)
    notes: list[str] = []
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".onnx", dir=out.parent)
    os.close(handle)
    temporary = Path(temporary)
    try:
        exporter = "torch.onnx.export(dynamo=True)"
        try:
            _torch_export(graph, args, temporary, dynamo=True)
        except Exception as error:
            if not allow_legacy:
                raise ExportError(f"dynamo export failed: {error}") from error
            notes.append(f"dynamo export failed ({type(error).__name__}: {str(error)[:300]}); used dynamo=False")
            LOG.warning(notes[-1])
            exporter = "torch.onnx.export(dynamo=False)"
            _torch_export(graph, args, temporary, dynamo=False)
        proto = onnx.load(str(temporary))
        onnx.checker.check_model(proto, full_check=True)
        proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
        simplified = False
        if simplify:
            proto, simplified = _simplify(proto, notes)
        reference = torch_runner(graph)(feeds)
        metadata = build_metadata(
            graph,
            rig=rig,
            cameras=cameras,
            model_name=model_name,
            checkpoint=checkpoint,
            budget=budget,
            exporter=exporter + (" + onnxslim" if simplified else ""),
            feeds=feeds,
            outputs=reference,
        )
        set_metadata(proto, metadata)
        onnx.save_model(proto, str(temporary))
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    return ExportResult(
        path=out,
        exporter=metadata["exporter"],
        seconds=time.perf_counter() - started,
        size_mb=out.stat().st_size / 1e6,
        metadata=metadata,
        simplified=simplified,
        notes=notes,
    )


def _simplify(proto: Any, notes: list[str]) -> tuple[Any, bool]:
    """onnxslim graph simplification when installed (kept optional: ``--simplify``)."""
    try:
        import onnxslim
    except ImportError:
        notes.append("--simplify: onnxslim is not installed (pip install onnxslim); exported without simplification")
        return proto, False
    import onnx

    slimmed = onnxslim.slim(proto)
    onnx.checker.check_model(slimmed)
    return slimmed, True


def export_checkpoint_to_onnx(
    checkpoint: str | Path,
    out: str | Path,
    *,
    rig_path: str | Path | None = None,
    top_k: int = 100,
    top_k_2d: int = 50,
    budget: dict[str, Any] | None = None,
    simplify: bool = False,
) -> tuple[ExportResult, nn.Module, DeployGraph]:
    """Load a checkpoint (weights_only) and export it; returns (result, model, graph) for a parity check."""
    model, meta = load_checkpoint(checkpoint)
    rig, cameras = resolve_rig(meta, rig_path)
    result = export_onnx(
        model,
        rig=rig,
        cameras=cameras,
        out=out,
        top_k=top_k,
        top_k_2d=top_k_2d,
        model_name=meta.get("model_name"),
        checkpoint=checkpoint,
        budget=budget,
        simplify=simplify,
    )
    return result, model, DeployGraph(model, top_k=top_k, top_k_2d=top_k_2d).eval()


# ---------------------------------------------------------------------------------------------- parity
@dataclass
class OutputParity:
    """Absolute error of one output, ONNX Runtime vs PyTorch, over the frames checked."""

    name: str
    max_abs: float
    mean_abs: float
    limit: str
    passed: bool
    agreement: float | None = None  # detection outputs: fraction of PyTorch slots found in the ORT output


@dataclass
class ParityReport:
    """ORT vs PyTorch on real clip frames, the recurrent state carried in each."""

    model: str
    clip: str
    frames: list[int]
    outputs: list[OutputParity]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "clip": self.clip,
            "frames": self.frames,
            "passed": self.passed,
            "outputs": [o.__dict__ for o in self.outputs],
        }

    def format(self) -> str:
        lines = [
            f"parity {self.model} vs PyTorch on {self.clip} frames {self.frames}: {'PASS' if self.passed else 'FAIL'}",
            "| output | max abs | mean abs | limit | agreement | ok |",
            "|---|---|---|---|---|---|",
        ]
        for o in self.outputs:
            agreement = "-" if o.agreement is None else f"{o.agreement:.3f}"
            lines.append(
                f"| {o.name} | {o.max_abs:.3g} | {o.mean_abs:.3g} | {o.limit} | {agreement} | "
                f"{'yes' if o.passed else 'NO'} |"
            )
        return "\n".join(lines)


def _slot_errors(
    ref_boxes: np.ndarray,
    ref_scores: np.ndarray,
    ref_class: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    score_tol: float,
) -> tuple[list[float], int, int]:
    """Tie-tolerant slot matching of one top-K list: each reference slot clearly inside the top-K (score above the
    K-th score + tol) is matched to the candidate slots of the same class and equal score (within tol); the box
    error is the smallest over those (equal scores may come out of top-K in either order)."""
    errors: list[float] = []
    matched = considered = 0
    cutoff = ref_scores.min() + score_tol
    for j in np.flatnonzero(ref_scores > cutoff):
        considered += 1
        candidates = np.flatnonzero((classes == ref_class[j]) & (np.abs(scores - ref_scores[j]) <= score_tol))
        if len(candidates) == 0:
            continue
        matched += 1
        diff = np.abs(boxes[candidates].astype(np.float64) - ref_boxes[j].astype(np.float64))
        if ref_boxes.shape[-1] == len(BOX3D_COLUMNS):  # yaw column: compare on the circle
            yaw = BOX3D_COLUMNS.index("yaw")
            diff[:, yaw] = np.abs((diff[:, yaw] + np.pi) % (2 * np.pi) - np.pi)
        errors.append(float(diff.max(axis=1).min()))
    return errors, matched, considered


def parity_check(
    onnx_path: str | Path,
    graph: DeployGraph,
    clip: str | Path,
    *,
    frames: int = 4,
    atol: float = 1e-3,
    rtol: float = 1e-3,
    box_atol: float = 1e-2,
    min_agreement: float = 0.98,
) -> ParityReport:
    """Run ONNX Runtime and PyTorch on the first ``frames`` frames of a real clip (each carrying its own state);
    dense outputs must satisfy |ort - torch| <= atol + rtol * |torch|; detections are matched slot by slot."""
    from deploy.metadata import read_metadata
    from deploy.onnx_utils import make_session
    from deploy.runtime.clip_inputs import clip_steps, run_sequence

    metadata = read_metadata(onnx_path)
    session = make_session(onnx_path)
    names = [o.name for o in session.get_outputs()]
    state0 = np.zeros([1, *metadata["state_shape"]], np.float32)
    steps = list(clip_steps(clip, cameras=metadata["cameras"], size_hw=tuple(metadata["image_size"]), stop=frames))
    if not steps:
        raise ExportError(f"{clip}: no frames to check parity on")
    ort_runs = [o for _, _, o in run_sequence(lambda f: dict(zip(names, session.run(names, f))), steps, state0)]
    torch_runs = [o for _, _, o in run_sequence(torch_runner(graph), steps, state0)]
    results: list[OutputParity] = []
    for name in names:
        ref = [np.asarray(t[name]) for t in torch_runs]
        got = [np.asarray(o[name]) for o in ort_runs]
        if name.endswith("class_id"):
            continue
        if name in ("det3d_boxes", "det2d_boxes"):
            prefix = name.split("_")[0]
            errors: list[float] = []
            matched = considered = 0
            for t_out, o_out in zip(torch_runs, ort_runs):
                rb, rs, rc = (np.asarray(t_out[f"{prefix}_{k}"]) for k in ("boxes", "scores", "class_id"))
                ob, os_, oc = (np.asarray(o_out[f"{prefix}_{k}"]) for k in ("boxes", "scores", "class_id"))
                width = rb.shape[-1]
                rb, ob = rb.reshape(-1, rs.shape[-1], width), ob.reshape(-1, os_.shape[-1], width)
                rs, os_, rc, oc = (a.reshape(-1, a.shape[-1]) for a in (rs, os_, rc, oc))
                for i in range(len(rs)):
                    e, m, c = _slot_errors(rb[i], rs[i], rc[i], ob[i], os_[i], oc[i], atol)
                    errors += e
                    matched, considered = matched + m, considered + c
            agreement = matched / considered if considered else 1.0
            worst = max(errors, default=0.0)
            results.append(
                OutputParity(
                    name,
                    worst,
                    float(np.mean(errors)) if errors else 0.0,
                    f"<= {box_atol:g}, agreement >= {min_agreement:g}",
                    agreement >= min_agreement and worst <= box_atol,
                    agreement,
                )
            )
            continue
        if name.endswith("scores"):
            ref = [-np.sort(-r, axis=-1) for r in ref]
            got = [-np.sort(-g, axis=-1) for g in got]
        diff = np.concatenate([np.abs(g.astype(np.float64) - r.astype(np.float64)).ravel() for g, r in zip(got, ref)])
        bound = np.concatenate([(atol + rtol * np.abs(r.astype(np.float64))).ravel() for r in ref])
        results.append(
            OutputParity(
                name, float(diff.max()), float(diff.mean()), f"<= {atol:g} + {rtol:g}|x|", bool(np.all(diff <= bound))
            )
        )
    return ParityReport(model=str(onnx_path), clip=str(clip), frames=[s.index for s in steps], outputs=results)
