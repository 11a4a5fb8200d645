"""An exported model as the runtime sees it: an onnxruntime session plus its fleetvision metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from deploy.metadata import METADATA_KEY, MetadataError, parse_metadata
from deploy.runtime.baked_rig import VIEW_TRANSFORM_KEY, RigMismatchError, is_baked, mismatch_error, rig_differences
from perception.geometry import BevGrid
from perception.model_input import check_description, distortion_layout
from perception.rig import Rig


class Session(Protocol):
    """What the runtime needs from an inference session (onnxruntime's, or a fake in tests)."""

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...


def create_session(
    path: str | Path,
    *,
    provider: str = "cpu",
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
    allow_spinning: bool = True,
):
    """onnxruntime session with all graph optimisations; threads 0 = onnxruntime's default."""
    import onnxruntime as ort

    from deploy.onnx_utils import open_session, resolve_providers

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(intra_op_threads)
    options.inter_op_num_threads = int(inter_op_threads)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return open_session(path, options, resolve_providers(provider))


class DeployedModel:
    """Session + metadata: camera order, input size, state shape, classes, grids, output names."""

    def __init__(
        self,
        metadata: dict[str, Any],
        session: Session,
        path: Path | None = None,
        *,
        session_options: dict[str, Any] | None = None,
    ) -> None:
        """``session_options``: ``load``'s keyword arguments, reused to open a baked model's dynamic fallback."""
        self.metadata = metadata
        self.session = session
        self.path = path
        self.session_options = dict(session_options or {})
        self.view_transform: dict[str, Any] = metadata.get(VIEW_TRANSFORM_KEY) or {"mode": "dynamic"}
        self.cameras: list[str] = list(metadata["cameras"])
        self.size_hw: tuple[int, int] = (int(metadata["image_size"][0]), int(metadata["image_size"][1]))
        try:  # the input rule the model was exported with must be the one this runtime applies
            self.preprocess = check_description(
                metadata.get("preprocess"), size_hw=self.size_hw, source=str(path or "<model>")
            )
        except ValueError as error:
            raise MetadataError(str(error)) from error
        self.distortion_layout: str = distortion_layout(self.preprocess)  # what FramePreprocessor must feed
        self.rig = Rig.from_dict(metadata["rig"], source=f"{path or '<model>'}: metadata 'rig'")
        self.output_names: list[str] = [entry["name"] for entry in metadata["outputs"]]
        self.state_shape: tuple[int, ...] = tuple(
            int(v) for v in next(entry["shape"] for entry in metadata["inputs"] if entry["name"] == "prev_state")
        )
        self.classes: dict[str, list[str] | None] = metadata["classes"]
        self.head_grid = BevGrid.from_dict(metadata["head_grid"]) if metadata.get("head_grid") else None
        self.bev_grid = BevGrid.from_dict(metadata["bev_grid"]) if metadata.get("bev_grid") else None
        self.budget: dict[str, Any] | None = metadata.get("latency_budget")

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        provider: str = "cpu",
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
        allow_spinning: bool = True,
    ) -> DeployedModel:
        """Open an exported ONNX file; ``MetadataError`` (with the reason) when it lacks fleetvision metadata.
        ``allow_spinning=False`` makes idle onnxruntime workers sleep instead of spin (better on shared cores)."""
        path = Path(path)
        options = dict(
            provider=provider,
            intra_op_threads=intra_op_threads,
            inter_op_threads=inter_op_threads,
            allow_spinning=allow_spinning,
        )
        session = create_session(path, **options)
        text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        metadata = parse_metadata(text, source=str(path))
        declared = {arg.name for arg in session.get_inputs()}
        expected = {entry["name"] for entry in metadata["inputs"]}
        if declared != expected:
            raise MetadataError(
                f"{path}: graph inputs {sorted(declared)} differ from the metadata's {sorted(expected)}"
            )
        return cls(metadata, session, path, session_options=options)

    def for_rig(self, rig: Rig, *, source: str) -> tuple[DeployedModel, str]:
        """(the model to run on frames of ``rig``, read from ``source``; how its view transform runs): this model
        when it is dynamic or baked for this rig; else the dynamic fallback exported beside it (``deploy export
        --bake-rig --dynamic-fallback``); else ``RigMismatchError`` naming what differs."""
        if not is_baked(self.metadata):
            return self, "dynamic"
        record = self.view_transform
        differences = rig_differences(record, rig, source=source)
        if not differences:
            return self, f"baked for rig sha256 {record['rig_sha256'][:12]}"
        name = str(self.path or "<model>")
        fallback = record.get("fallback")
        if not fallback or self.path is None or not (self.path.parent / fallback).is_file():
            error = mismatch_error(record, differences, model=name, source=source)
            if fallback:
                raise RigMismatchError(f"{error} (its dynamic fallback {fallback} is not beside it)")
            raise error
        dynamic = DeployedModel.load(self.path.parent / fallback, **self.session_options)
        return dynamic, f"dynamic fallback {fallback}: {source} is not the baked rig ({differences[0]})"

    def initial_state(self) -> np.ndarray:
        """Zero state [1, *state_shape] (fed with state_valid = 0)."""
        return np.zeros(self.state_shape, np.float32)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One inference: {output name: array}."""
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds)))
