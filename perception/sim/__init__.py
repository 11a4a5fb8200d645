"""Synthetic multi-camera driving world: procedural roads, traffic and scenery rendered with numpy/OpenCV for any
rig, with exact ground truth (3D/2D boxes, BEV drivable/lane maps) and per-camera capture times.

``generate_clip`` / ``generate_dataset`` are imported lazily so ``import perception.sim`` stays cheap (no cv2, no
torch).
"""

from __future__ import annotations

from typing import Any

__all__ = ["BEV_CHANNELS", "camera_times", "clip_seed", "generate_clip", "generate_dataset"]


def __getattr__(name: str) -> Any:
    if name in ("generate_clip", "generate_dataset", "clip_seed", "camera_times"):
        from perception.sim import generate

        return getattr(generate, name)
    if name == "BEV_CHANNELS":
        from perception.sim.groundtruth import BEV_CHANNELS

        return BEV_CHANNELS
    raise AttributeError(f"module 'perception.sim' has no attribute {name!r}")
