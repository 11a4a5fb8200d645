"""Which rig a baked export was made for, and whether a clip's rig is that rig (torch-free).

``deploy export --bake-rig`` evaluates the view transform's projection once for the rig (``perception.models.
baked_lifting``): the graph then ignores its ``intrinsics`` and ``distortion`` inputs and reads ``camera_from_ego``
only for the first-order correction of each camera's motion since the frame's reference time. Its
metadata carries a ``view_transform`` record (``baked_record``): the calibration that was baked, exactly as the model
takes it (``FramePreprocessor``: K scaled to the model's input size, the lens in the model's layout, the static
``camera_from_ego``), and its sha256. Every consumer of clips compares a clip's rig with it (``rig_differences``) and
refuses a different rig (``RigMismatchError``), or runs the dynamic graph exported alongside (``fallback``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deploy.runtime.preprocess import FramePreprocessor
from perception.rig import Rig

VIEW_TRANSFORM_KEY = "view_transform"
BAKED_INPUTS = ("intrinsics", "camera_from_ego", "distortion")
IGNORED_INPUTS = ("intrinsics", "distortion")  # camera_from_ego still drives the small-motion correction
# A clip's calibration matches the baked one within these absolute tolerances (model-input units).
TOLERANCES = {"intrinsics": 1e-3, "camera_from_ego": 1e-5, "distortion": 1e-6}  # pixels, metres / rotation, -


class RigMismatchError(ValueError):
    """A clip's rig is not the rig a baked model was exported for (message names camera, field and values)."""


def rig_calibration(
    rig: Rig, cameras: Sequence[str], size_hw: tuple[int, int], *, source: str | None = None
) -> dict[str, np.ndarray]:
    """{intrinsics [N,3,3], camera_from_ego [N,4,4], distortion [N,D]} float32, as the model's inputs (static)."""
    pre = FramePreprocessor(rig, cameras, size_hw, source=source)
    return {
        "intrinsics": pre.intrinsics,
        "camera_from_ego": pre.static_camera_from_ego,
        "distortion": pre.distortion,
    }


def rig_sha256(calibration: dict[str, np.ndarray]) -> str:
    """sha256 of the calibration arrays (rounded to 1e-6, so a rig.yaml rewritten with other float digits hashes
    the same); an identifier for reports, not the acceptance test (``rig_differences`` is)."""
    digest = hashlib.sha256()
    for name in BAKED_INPUTS:
        array = np.round(np.asarray(calibration[name], np.float64), 6) + 0.0  # + 0.0: no negative zero
        digest.update(f"{name}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def baked_record(rig: Rig, cameras: Sequence[str], size_hw: tuple[int, int], **extra: Any) -> dict[str, Any]:
    """The metadata ``view_transform`` record of a graph baked for ``rig`` (plus ``extra`` entries)."""
    calibration = rig_calibration(rig, cameras, size_hw)
    return {
        "mode": "baked",
        "rig_sha256": rig_sha256(calibration),
        "cameras": list(cameras),
        "size_hw": [int(size_hw[0]), int(size_hw[1])],
        "ignored_inputs": list(IGNORED_INPUTS),
        "calibration": {name: calibration[name].tolist() for name in BAKED_INPUTS},
        **extra,
    }


def is_baked(metadata: dict[str, Any]) -> bool:
    """True when the model's view transform was baked for one rig."""
    return (metadata.get(VIEW_TRANSFORM_KEY) or {}).get("mode") == "baked"


def rig_differences(record: dict[str, Any], rig: Rig, *, source: str | None = None) -> list[str]:
    """How ``rig`` differs from the baked calibration in ``record`` (empty: it is the baked rig, up to
    ``TOLERANCES``). Each entry names the camera, the input and the largest difference. Baked cameras absent from
    ``rig`` are not differences: the runtime treats them as missing cameras (``camera_valid`` 0)."""
    cameras, size_hw = list(record["cameras"]), tuple(record["size_hw"])
    present = [name for name in cameras if name in rig.names]
    if not present:
        return [f"none of the baked cameras {cameras} is in this rig (it has {rig.names})"]
    found = rig_calibration(rig, present, size_hw, source=source)
    differences = []
    for name in BAKED_INPUTS:
        baked = np.asarray(record["calibration"][name], np.float64)
        for i, camera in enumerate(present):
            here = np.asarray(found[name][i], np.float64)
            expected = baked[cameras.index(camera)]
            if expected.shape != here.shape:
                differences.append(
                    f"camera {camera!r}: {name} baked shape {list(expected.shape)}, this rig's {list(here.shape)}"
                )
                continue
            delta = np.abs(expected - here)
            if delta.max() > TOLERANCES[name]:
                where = np.unravel_index(int(delta.argmax()), delta.shape)
                differences.append(
                    f"camera {camera!r}: {name}{list(map(int, where))} baked {expected[where]:.6g}, "
                    f"this rig {here[where]:.6g} (tolerance {TOLERANCES[name]:g})"
                )
    return differences


def check_rig(metadata: dict[str, Any], rig: Rig, *, model: str, source: str) -> None:
    """Raise ``RigMismatchError`` when ``metadata`` is a baked model's and ``rig`` (read from ``source``) is not the
    rig it was baked for; a dynamic model accepts any rig."""
    if not is_baked(metadata):
        return
    record = metadata[VIEW_TRANSFORM_KEY]
    differences = rig_differences(record, rig, source=source)
    if differences:
        raise mismatch_error(record, differences, model=model, source=source)


def rig_checker(metadata: dict[str, Any], *, model: str) -> Callable[[Rig, str], None] | None:
    """``check_rig`` bound to a model, for ``clip_steps(rig_check=...)``; None for a dynamic model."""
    if not is_baked(metadata):
        return None
    return lambda rig, source: check_rig(metadata, rig, model=model, source=source)


def mismatch_error(record: dict[str, Any], differences: list[str], *, model: str, source: str) -> RigMismatchError:
    """The error for a clip of another rig: what differs, and what to do."""
    shown = "; ".join(differences[:4]) + (f"; and {len(differences) - 4} more" if len(differences) > 4 else "")
    return RigMismatchError(
        f"{source}: this rig is not the one {model} was exported for (its view transform is baked for rig "
        f"sha256 {record['rig_sha256'][:12]}): {shown}. Re-export for this rig (deploy export --bake-rig "
        f"--rig {source}), or export without --bake-rig for a model that takes any calibration"
    )
