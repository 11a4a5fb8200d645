"""The self-description stored in every exported model: JSON under ``metadata_props["fleetvision"]``.

The runtime reads nothing else: camera names and order, per-camera image sizes, the rig (so intrinsics and
extrinsics defaults travel with the file), every input/output tensor (meaning, shape, dtype, frame, units),
class names, BEV grids, normalisation, the input rule (``preprocess``: ``perception.model_input.describe``, checked
by the runtime with ``check_description``), the model name/config/sha256 and the latency budget.
Torch-free and onnx-free at import time (the runtime reads metadata through onnxruntime).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from perception.errors import InputError

METADATA_KEY = "fleetvision"
METADATA_SCHEMA_VERSION = 1
REQUIRED_FIELDS = ("schema_version", "cameras", "image_size", "rig", "inputs", "outputs", "classes", "model")


class MetadataError(InputError):
    """A model file lacks fleetvision metadata or holds malformed metadata (message names file and field)."""


def read_metadata_map(path: str | Path) -> dict[str, str]:
    """All ``metadata_props`` of an ONNX file as {key: value} (via onnxruntime; no onnx import)."""
    import onnxruntime as ort

    from deploy.onnx_utils import open_session

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = open_session(path, options, ["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def parse_metadata(text: str | None, *, source: str = "<model>") -> dict[str, Any]:
    """Parse and validate the JSON metadata string; raises ``MetadataError`` naming what is wrong."""
    if text is None:
        raise MetadataError(
            f"{source}: no '{METADATA_KEY}' entry in the ONNX metadata_props; this file was not exported by "
            f"'deploy export', so the runtime does not know its cameras, rig, classes or tensor meanings "
            f"(re-export it with 'deploy export CHECKPOINT --out model.onnx')"
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise MetadataError(f"{source}: metadata_props['{METADATA_KEY}'] is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise MetadataError(
            f"{source}: metadata_props['{METADATA_KEY}']: expected a JSON object, found {type(data).__name__}"
        )
    missing = [name for name in REQUIRED_FIELDS if name not in data]
    if missing:
        raise MetadataError(f"{source}: metadata_props['{METADATA_KEY}'] lacks fields {missing} (found {sorted(data)})")
    version = data["schema_version"]
    if version != METADATA_SCHEMA_VERSION:
        raise MetadataError(
            f"{source}: metadata field 'schema_version': expected {METADATA_SCHEMA_VERSION}, found {version!r}"
        )
    return data


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Validated fleetvision metadata of an ONNX file; ``MetadataError`` when absent or malformed."""
    return parse_metadata(read_metadata_map(path).get(METADATA_KEY), source=str(path))


def has_metadata(path: str | Path) -> bool:
    """True when the file carries valid fleetvision metadata."""
    try:
        read_metadata(path)
    except MetadataError:
        return False
    return True


def set_metadata(model: Any, metadata: dict[str, Any]) -> Any:
    """Store ``metadata`` (JSON) in an onnx ModelProto's metadata_props under ``METADATA_KEY``; returns the model."""
    text = json.dumps(metadata, sort_keys=False)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = text
            return model
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, text
    return model


def copy_metadata(source: str | Path, target: str | Path, *, update: dict[str, Any] | None = None) -> Path:
    """Copy fleetvision metadata from ``source`` into the ONNX file ``target`` (atomic rewrite), merging ``update``."""
    import onnx

    from deploy.onnx_utils import save_model_atomic

    metadata = read_metadata(source)
    metadata.update(update or {})
    model = onnx.load(str(target))
    return save_model_atomic(set_metadata(model, metadata), target)


def tensor_spec(name: str, shape: list[int], dtype: str, meaning: str, *, frame: str = "", units: str = "") -> dict:
    """One input/output description entry."""
    return {
        "name": name,
        "shape": [int(v) for v in shape],
        "dtype": dtype,
        "meaning": meaning,
        "frame": frame,
        "units": units,
    }
