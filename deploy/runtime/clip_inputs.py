"""Offline model inputs from a clip, frame by frame, preprocessed exactly like the runtime (for parity checks,
INT8 calibration and accuracy evaluation): the caller carries the recurrent state."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.runtime.preprocess import FramePreprocessor
from deploy.runtime.replay_clip import ReplayClip
from perception.clip import ClipError
from perception.geometry import invert_se3
from perception.video import VideoReader


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
) -> Iterator[ClipStep]:
    """Sequential steps of a clip (every ``stride``-th frame from ``start``); state_valid = 0 on the first step."""
    clip = ReplayClip.open(clip_path)
    missing = [name for name in cameras if name not in clip.sources]
    if missing:
        raise ClipError(
            f"{clip.path}: the model's cameras {missing} have no video here "
            f"(clip cameras with video: {sorted(clip.sources)})"
        )
    preprocessor = FramePreprocessor(clip.rig, cameras, size_hw)
    stop = clip.num_frames if stop is None else min(stop, clip.num_frames)
    readers = [VideoReader(clip.sources[name]) for name in cameras]
    iterators = [iter(reader) for reader in readers]
    previous: int | None = None
    try:
        for index in range(stop):
            images = {}
            for name, iterator in zip(cameras, iterators):
                try:
                    images[name] = next(iterator)
                except StopIteration:
                    raise ClipError(
                        f"{clip.sources[name]}: ends after {index} frames (frames.csv lists {clip.num_frames})"
                    ) from None
            if index < start or (index - start) % stride:
                continue
            camera_from_ego = np.stack([clip.camera_from_ego(index, name) for name in cameras])
            prev_from_curr = (
                np.eye(4)
                if previous is None
                else invert_se3(clip.world_from_ego[previous]) @ clip.world_from_ego[index]
            )
            feeds = preprocessor.feeds(
                images,
                camera_from_ego=camera_from_ego,
                prev_state=np.zeros(1, np.float32),
                prev_from_curr=prev_from_curr,
                state_valid=previous is not None,
            )
            del feeds["prev_state"]
            yield ClipStep(index, float(clip.timestamps[index]), feeds, images)
            previous = index
    finally:
        for reader in readers:
            reader.close()


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
