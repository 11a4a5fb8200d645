"""Offline model inputs from a clip, frame by frame, preprocessed exactly like the runtime (for parity checks,
INT8 calibration and accuracy evaluation): the caller carries the recurrent state. Clips are read by
``perception.clip.DriveClip`` (lenient: cameras the model does not use may lack videos)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.runtime.preprocess import FramePreprocessor
from perception.clip import ClipError, DriveClip
from perception.geometry import invert_se3
from perception.rig import Rig


@dataclass
class ClipStep:
    """One frame's feeds minus the state: everything the model needs except ``prev_state``."""

    index: int
    timestamp: float
    feeds: dict[
        str, np.ndarray
    ]  # images, intrinsics, camera_from_ego, distortion, camera_valid, prev_from_curr, state_valid
    images: dict[str, np.ndarray]


def clip_steps(
    clip_path: str | Path,
    *,
    cameras: Sequence[str],
    size_hw: tuple[int, int],
    start: int = 0,
    stop: int | None = None,
    stride: int = 1,
    rig_check: Callable[[Rig, str], None] | None = None,
) -> Iterator[ClipStep]:
    """Sequential steps of a clip (every ``stride``-th frame from ``start``); state_valid = 0 on the first step.
    ``rig_check(rig, rig.yaml path)`` may refuse the clip's rig (a baked model's: ``baked_rig.rig_checker``)."""
    clip = DriveClip.open(clip_path, lenient=True)
    if rig_check is not None:
        rig_check(clip.rig, str(clip.path / "rig.yaml"))
    missing = [name for name in cameras if name not in clip.sources]
    if missing:
        reasons = "; ".join(clip.missing.get(name, f"{name!r} is not in rig.yaml") for name in missing)
        raise ClipError(
            f"{clip.path}: the model's cameras {missing} have no usable video here "
            f"(clip cameras with video: {sorted(clip.sources)}): {reasons}"
        )
    preprocessor = FramePreprocessor(clip.rig, cameras, size_hw, source=str(clip.path / "rig.yaml"))
    previous: int | None = None
    for frame in clip.frames(cameras=cameras, start=start, stop=stop):
        index = frame.index
        if (index - start) % stride:
            continue
        camera_from_ego = np.stack([clip.camera_from_ego(index, name) for name in cameras])
        prev_from_curr = (
            np.eye(4) if previous is None else invert_se3(clip.world_from_ego[previous]) @ clip.world_from_ego[index]
        )
        feeds = preprocessor.feeds(
            frame.images,
            camera_from_ego=camera_from_ego,
            prev_state=np.zeros(1, np.float32),
            prev_from_curr=prev_from_curr,
            state_valid=previous is not None,
        )
        del feeds["prev_state"]
        yield ClipStep(index, frame.timestamp, feeds, frame.images)
        previous = index


def run_sequence(
    run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    steps: Sequence[ClipStep] | Iterator[ClipStep],
    initial_state: np.ndarray,
) -> Iterator[tuple[ClipStep, dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Run a model over steps carrying its own state; yields (step, full feeds, outputs)."""
    state = initial_state
    for step in steps:
        feeds = {**step.feeds, "prev_state": np.asarray(state, np.float32)}
        outputs = run(feeds)
        state = outputs.get("state", state)
        yield step, feeds, outputs
