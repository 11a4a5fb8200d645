"""A fleetvision checkpoint (``perception.training.load_model_checkpoint``) as a teacher.

3D (BEV detection head) on multi-camera clips: the temporal BEV model runs over the clip frame by frame carrying its
state: each frame's images are prepared exactly as in training (``perception.model_input``: resize rule, RGB,
intrinsics scaled, lens model as the model's distortion input), placed with
``clip.camera_from_ego(frame, camera)`` (per-camera capture time honoured), and the ego motion
``prev_from_curr = inv(world_from_ego[t-1]) @ world_from_ego[t]`` warps the previous state; the decoded boxes are in
the ego frame of each frame. 2D (per-camera detection head): ``predict_batch`` on single images, boxes mapped back
to the input pixels.

Offline (``predict_clip``), the teacher sees the whole clip: with ``bidirectional`` the clip also runs from its last
frame to its first, so each frame's temporal state holds the future as well as the past, and with ``mirror`` each
direction also runs on the mirrored ego frame; the views are fused in BEV per frame (``perception.models.tta``)
before decoding. Models trained with ``bev_augmentation.reverse_time_prob`` and ``flip_y_prob`` see both views in
training. Memory: the prepared model-size images of the clip are kept (uint8, N x 3 x H x W per frame), and
with ``bidirectional`` up to ``feature_cache_mb`` of the forward pass's BEV features, which the time-reversed pass
reuses (the image encoder, most of a step's cost, runs once per frame; the labels are the same as without).

An ensemble: ``checkpoint_path`` a list of checkpoints with the same 3D classes, cameras, input size and BEV grid
(e.g. several seeds or training lengths of one recipe); every model runs every view, each with its own temporal
state, and all outputs are fused per frame like the views. The labels' provenance hashes every checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from autolabel.teachers.base import Teacher
from perception.clip import ClipError
from perception.geometry import invert_se3
from perception.labels import Boxes2D, Boxes3D
from perception.model_input import (
    DISTORTION_COLUMNS,
    UnsupportedDistortionError,
    model_distortion,
    model_intrinsics,
    prepare_image,
)

__all__ = ["FleetvisionTeacher"]


class _FeatureCache:
    """BEV features one pass keeps for the next (frame index -> tensor), up to ``limit_bytes`` in all."""

    def __init__(self, limit_bytes: float) -> None:
        self.free = limit_bytes
        self.kept: dict[int, object] = {}

    def take(self, index: int):
        """The features kept for frame ``index`` (None if none), handed over once."""
        return self.kept.pop(index, None)

    def offer(self, index: int, bev) -> None:
        """Keep ``bev`` for frame ``index`` if it fits in what is left."""
        size = bev.element_size() * bev.numel()
        if size <= self.free:
            self.kept[index], self.free = bev, self.free - size


class FleetvisionTeacher(Teacher):
    """BEV video model from a LOCAL checkpoint; ``predict_frame`` (3D, stateful) and ``predict_batch`` (2D)."""

    weights_argument = "checkpoint_path"

    def __init__(
        self,
        checkpoint_path: list[str | Path] | str | Path,
        *,
        score_threshold: float = 0.3,
        max_boxes: int = 100,
        device: str = "cpu",
        bidirectional: bool = False,
        mirror: bool = False,
        feature_cache_mb: float = 1024.0,
    ) -> None:
        import torch

        from perception.training.checkpoint import load_model_checkpoint

        self.torch = torch
        paths = [checkpoint_path] if isinstance(checkpoint_path, (str, Path)) else list(checkpoint_path)
        if not paths:
            raise ValueError("checkpoint_path: expected a checkpoint or a list of checkpoints, found an empty list")
        loaded = [load_model_checkpoint(path, map_location=device) for path in paths]
        self.models = [model.eval().to(device) for model, _ in loaded]
        metas = [meta for _, meta in loaded]
        self.model, self.meta = self.models[0], metas[0]
        meta = self.meta
        self.device = device
        self.model_name = "+".join(str(m.get("model_name") or Path(p).stem) for m, p in zip(metas, paths))
        self.name = f"fleetvision:{self.model_name}"
        classes = meta.get("classes") or {}
        self.classes3d = classes.get("detection3d")
        self.classes2d = classes.get("detection2d")
        self.predicts_3d = self.classes3d is not None
        self.predicts_2d = self.classes2d is not None
        self.class_names = list(self.classes3d if self.predicts_3d else (self.classes2d or []))
        if self.predicts_3d and self.predicts_2d and list(self.classes2d) != list(self.classes3d):
            raise ValueError(
                f"{checkpoint_path}: detection2d classes {self.classes2d} differ from detection3d "
                f"{self.classes3d}; one class list per teacher is supported"
            )
        self.cameras = list(meta.get("cameras") or [])
        self.image_size = (int(meta["image_size"][0]), int(meta["image_size"][1]))  # H, W
        if len(paths) > 1:
            self._check_ensemble(paths, metas)
            self.predicts_2d = False  # members' 2D heads are not fused: stills and 2D-only rigs need one checkpoint
        self.score_threshold = score_threshold
        self.max_boxes = max_boxes
        self.bidirectional, self.mirror = bool(bidirectional), bool(mirror)
        if not feature_cache_mb >= 0:
            raise ValueError(f"feature_cache_mb: expected megabytes >= 0, found {feature_cache_mb!r}")
        self.feature_cache_mb = float(feature_cache_mb)
        self.reset()

    def _check_ensemble(self, paths: list, metas: list[dict]) -> None:
        """Every member must predict the same 3D classes for the same cameras at the same input size on one grid."""
        if not self.predicts_3d:
            raise ValueError(f"{paths[0]}: an ensemble of checkpoints labels in 3D; this one has no 3D detection head")

        def signature(meta: dict, model) -> dict:
            return {
                "detection3d classes": list((meta.get("classes") or {}).get("detection3d") or []),
                "cameras": list(meta.get("cameras") or []),
                "image_size": [int(v) for v in meta.get("image_size") or []],
                "BEV grid": dict(model.head_grid()),
            }

        expected = signature(metas[0], self.models[0])
        for path, meta, model in zip(paths[1:], metas[1:], self.models[1:]):
            for field, found in signature(meta, model).items():
                if found != expected[field]:
                    raise ValueError(
                        f"{path}: {field} {found} differ from {paths[0]}'s {expected[field]}; the checkpoints of an "
                        "ensemble must share 3D classes, cameras, input size and BEV grid"
                    )

    @property
    def views(self) -> list[tuple[bool, bool]]:
        """(reversed time, mirrored) of every pass ``predict_clip`` runs."""
        directions = [False, True] if self.bidirectional else [False]
        mirrors = [False, True] if self.mirror else [False]
        return [(reverse, mirror) for reverse in directions for mirror in mirrors]

    # ------------------------------------------------------------------ 3D, stateful over a clip
    def reset(self) -> None:
        """Forget the temporal state (call at the start of each clip)."""
        self._states: list | None = None  # one per model
        self._previous_pose: np.ndarray | None = None

    def supports_clip(self, clip) -> bool:
        """True when the model predicts 3D boxes and the clip's rig has at least one of the model's cameras."""
        return self.predicts_3d and any(name in clip.rig.names for name in self.cameras)

    def _inputs(self, clip, frame, member: int = 0) -> dict:
        """The online (frame-by-frame) inputs of model ``member`` for ``frame``, from the carried state."""
        pose = np.asarray(frame.world_from_ego, dtype=np.float64)
        has_state = self._states is not None and self._previous_pose is not None
        prev_from_curr = invert_se3(self._previous_pose) @ pose if has_state else np.eye(4)
        state = self._states[member] if has_state else None
        return self._feeds(self._frame_arrays(clip, frame), state, prev_from_curr, self.models[member])

    def _feeds(self, arrays: dict[str, np.ndarray], state, prev_from_curr: np.ndarray, model=None) -> dict:
        """Model inputs from one frame's arrays (``_frame_arrays``), the previous state (None = start) and the ego
        motion from the previous frame of the pass."""
        torch = self.torch
        model = self.model if model is None else model

        def as_tensor(a) -> object:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.device)

        return {
            "images": as_tensor(arrays["images"]),
            "intrinsics": as_tensor(arrays["intrinsics"]),
            "camera_from_ego": as_tensor(arrays["camera_from_ego"]),
            "distortion": as_tensor(arrays["distortion"]),
            "camera_valid": as_tensor(arrays["camera_valid"]),
            "prev_state": state if state is not None else model.initial_state(1),
            "prev_from_curr": as_tensor(prev_from_curr[None]),
            "state_valid": as_tensor([1.0 if state is not None else 0.0]),
        }

    def _frame_arrays(self, clip, frame) -> dict[str, np.ndarray]:
        """One frame's images (uint8 [1,N,3,H,W] RGB at the model size) and geometry, prepared as in training."""
        height, width = self.image_size
        present = [name for name in self.cameras if name in frame.images]
        if not present:
            raise ClipError(
                f"{clip.path}: none of the model's cameras {self.cameras} in the clip (rig: {clip.rig.names})"
            )
        n = len(self.cameras)
        images = np.zeros((1, n, 3, height, width), np.uint8)
        intrinsics = np.tile(np.eye(3, dtype=np.float32), (1, n, 1, 1))
        camera_from_ego = np.tile(np.eye(4, dtype=np.float32), (1, n, 1, 1))
        distortion = np.zeros((1, n, len(DISTORTION_COLUMNS)), np.float32)
        valid = np.zeros((1, n), np.float32)
        for i, name in enumerate(self.cameras):
            if name not in frame.images:
                continue
            camera = clip.rig[name]
            try:
                distortion[0, i] = model_distortion(camera, source=str(Path(clip.path) / "rig.yaml"))
            except UnsupportedDistortionError as error:
                raise ClipError(str(error)) from error  # the job skips this clip and goes on
            images[0, i] = prepare_image(frame.images[name], self.image_size).transpose(2, 0, 1)
            intrinsics[0, i] = model_intrinsics(camera, self.image_size)
            camera_from_ego[0, i] = clip.camera_from_ego(frame.index, name)
            valid[0, i] = 1.0
        return {
            "images": images,
            "intrinsics": intrinsics,
            "camera_from_ego": camera_from_ego,
            "distortion": distortion,
            "camera_valid": valid,
            "world_from_ego": np.asarray(frame.world_from_ego, dtype=np.float64),
        }

    def predict_frame(self, clip, frame) -> Boxes3D:
        """3D boxes (ego frame at the frame's reference time) for one ``perception.clip.Frame``; updates the state."""

        if not self.predicts_3d:
            raise ValueError(f"{self.model_name}: the checkpoint has no 3D detection head")
        from perception.models.tta import average_outputs

        outputs = []
        for member, model in enumerate(self.models):
            inputs = self._inputs(clip, frame, member)
            with self.torch.inference_mode():
                outputs.append(model(**inputs))
        self._states = [output["state"] for output in outputs]
        self._previous_pose = np.asarray(frame.world_from_ego, dtype=np.float64)
        if len(outputs) == 1:
            return self._decode(outputs[0])
        keys = self._fused_keys()
        return self._decode(average_outputs([{k: output[k] for k in keys} for output in outputs]))

    def _fused_keys(self) -> list[str]:
        """The outputs fused across views and models (the 3D detection maps)."""
        skip = ("state", "segmentation", "det2d_heatmap", "det2d_box")
        return [k for k in self.model.output_names() if k not in skip]

    def _decode(self, outputs) -> Boxes3D:
        from perception.models.decode import decode_bev_detections

        decoded = decode_bev_detections(
            outputs, grid=self.model.head_grid(), k=self.max_boxes, score_threshold=self.score_threshold
        )[0]
        return Boxes3D(
            center=decoded["center"],
            size=decoded["size"],
            yaw=decoded["yaw"],
            velocity=decoded["velocity"],
            class_id=decoded["class_id"],
            score=decoded["score"],
        )

    def predict_clip(self, clip, frames: Iterable, progress: Callable[[int], None] | None = None) -> list[Boxes3D]:
        """3D boxes for every frame of ``clip`` (``frames``: its ``perception.clip.Frame`` s in order), fusing the
        offline views (``views``) per frame in BEV before decoding; one view = ``predict_frame`` frame by frame.

        A frame's BEV features before temporal fusion do not depend on the pass, so the time-reversed pass reuses
        the forward pass's (``feature_cache_mb`` of them per model and mirroring; frames beyond it are encoded
        again): the image encoder runs once per frame instead of once per pass, with the same numbers."""
        from perception.models.tta import average_outputs

        if not self.predicts_3d:
            raise ValueError(f"{self.model_name}: the checkpoint has no 3D detection head")
        arrays = []
        for frame in frames:
            arrays.append(self._frame_arrays(clip, frame))
            if progress is not None:
                progress(1)
        per_frame: list[list[dict]] = [[] for _ in arrays]
        for model in self.models:  # fused in (model, view) order, as the views are listed
            passes = {}
            for mirrored in (False, True) if self.mirror else (False,):
                cache = _FeatureCache(self.feature_cache_mb * 2**20)  # the forward pass's features, for the reversed
                for reverse in (False, True) if self.bidirectional else (False,):
                    keep = self.bidirectional and not reverse
                    passes[reverse, mirrored] = self._offline_pass(model, arrays, reverse, mirrored, cache, keep)
            for view in self.views:
                for index, outputs in enumerate(passes[view]):
                    per_frame[index].append(outputs)
        return [self._decode(average_outputs(fused) if len(fused) > 1 else fused[0]) for fused in per_frame]

    def _offline_pass(
        self, model, arrays: list[dict], reverse: bool, mirrored: bool, cache: _FeatureCache, keep: bool
    ) -> list[dict]:
        """One view of the clip: the fused outputs of every frame (in frame order, mapped back to the real ego frame
        and time direction), the temporal state carried through the pass; BEV features come from ``cache`` when the
        previous pass of this mirroring kept them, and with ``keep`` this pass offers its own to the next."""
        from perception.models.tta import mirror_inputs, unmirror_outputs, unreverse_outputs

        torch = self.torch
        keys, grid = self._fused_keys(), model.head_grid()
        out: list[dict] = [{} for _ in arrays]
        state, previous = None, None
        for index in range(len(arrays) - 1, -1, -1) if reverse else range(len(arrays)):
            pose = arrays[index]["world_from_ego"]
            prev_from_curr = invert_se3(previous) @ pose if previous is not None else np.eye(4)
            inputs = self._feeds(arrays[index], state, prev_from_curr, model)
            if mirrored:
                inputs = mirror_inputs(inputs)
            with torch.inference_mode():
                bev = cache.take(index)
                if bev is None:
                    bev = model.encode_bev(
                        images=inputs["images"],
                        intrinsics=inputs["intrinsics"],
                        camera_from_ego=inputs["camera_from_ego"],
                        distortion=inputs["distortion"],
                        camera_valid=inputs["camera_valid"],
                    )
                    if keep:
                        cache.offer(index, bev)
                outputs = model.bev_step(
                    bev, inputs["camera_valid"], inputs["prev_state"], inputs["prev_from_curr"], inputs["state_valid"]
                )
            state, previous = outputs["state"], pose
            view = {k: outputs[k] for k in keys}
            if mirrored:
                view = unmirror_outputs(view, bev_grid=grid)
            out[index] = unreverse_outputs(view) if reverse else view
        return out

    # ------------------------------------------------------------------ 2D, per image
    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Boxes2D]:
        """Per-camera 2D boxes (input pixels) from the model's 2D head, one image at a time as camera 0."""
        from perception.models.decode import decode_det2d

        if len(self.models) > 1:
            raise ValueError(f"{self.model_name}: an ensemble labels in 3D only; pass one checkpoint for 2D labels")
        if not self.predicts_2d:
            raise ValueError(
                f"{self.model_name}: the checkpoint has no 2D detection head (3D models label drive clips "
                f"with cameras {self.cameras})"
            )
        torch = self.torch
        height, width = self.image_size
        n = max(len(self.cameras), 1)
        results = []
        for frame in frames:
            images = np.zeros((1, n, 3, height, width), np.float32)
            images[0, 0] = prepare_image(frame, self.image_size).transpose(2, 0, 1)
            valid = np.zeros((1, n), np.float32)
            valid[0, 0] = 1.0
            inputs = {
                "images": torch.from_numpy(images),
                "intrinsics": torch.eye(3).repeat(1, n, 1, 1),
                "camera_from_ego": torch.eye(4).repeat(1, n, 1, 1),
                "distortion": torch.zeros(1, n, len(DISTORTION_COLUMNS)),
                "camera_valid": torch.from_numpy(valid),
                "prev_state": self.model.initial_state(1),
                "prev_from_curr": torch.eye(4)[None],
                "state_valid": torch.zeros(1),
            }
            with torch.inference_mode():
                outputs = self.model(**{k: v.to(self.device) for k, v in inputs.items()})
            stride = int(self.meta.get("model_config", {}).get("image_stride", 8))
            decoded = decode_det2d(outputs, stride=stride, k=self.max_boxes, score_threshold=self.score_threshold)[0][0]
            scale = np.array([frame.shape[1] / width, frame.shape[0] / height] * 2)
            xyxy = decoded["xyxy"] * scale
            xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, frame.shape[1])
            xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, frame.shape[0])
            results.append(Boxes2D(xyxy=xyxy, score=decoded["score"], class_id=decoded["class_id"]))
        return results
