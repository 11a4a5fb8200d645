"""Model feeds from real drive-clip frames, built exactly as the runtime builds them, the recurrent state carried by
the model itself: for calibration, accuracy evaluation and latency benchmarks of a model made by ``deploy export``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from deploy.metadata import read_metadata
from deploy.onnx_utils import make_session
from deploy.runtime.baked_rig import rig_checker
from deploy.runtime.clip_inputs import clip_steps, run_sequence
from perception.clip import find_clips


def resolve_clips(paths: Sequence[str | Path]) -> list[Path]:
    """Clip folders from arguments that are clip folders or folders of clips (sorted, de-duplicated)."""
    clips: list[Path] = []
    for path in paths:
        path = Path(path)
        found = [path] if (path / "rig.yaml").is_file() else find_clips(path)
        if not found:
            raise FileNotFoundError(
                f"{path}: no drive clips here (expected a folder with rig.yaml + frames.csv, "
                f"or a folder of such folders)"
            )
        clips += [c for c in found if c not in clips]
    return clips


def session_runner(path: str | Path, threads: int = 0) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    session = make_session(path, intra_op_threads=threads)
    names = [o.name for o in session.get_outputs()]
    return lambda feeds: dict(zip(names, session.run(names, feeds)))


def clip_feeds(
    model_path: str | Path,
    clips: Sequence[str | Path],
    *,
    frames_per_clip: int = 16,
    stride: int = 1,
    progress: bool = False,
) -> list[dict[str, np.ndarray]]:
    """Feed dicts from real clip frames, state carried by ``model_path`` itself (for calibration / benchmarks);
    ``progress``: a bar over the frames run."""
    from tqdm import tqdm

    metadata = read_metadata(model_path)
    rig_check = rig_checker(metadata, model=str(model_path))
    run = session_runner(model_path)
    state0 = np.zeros([1, *metadata["state_shape"]], np.float32)
    feeds: list[dict[str, np.ndarray]] = []
    bar = tqdm(total=len(clips) * frames_per_clip, desc="calibration frames", unit="frame", disable=not progress)
    for clip in clips:
        steps = clip_steps(
            clip,
            cameras=metadata["cameras"],
            size_hw=tuple(metadata["image_size"]),
            stop=frames_per_clip * stride,
            stride=stride,
            rig_check=rig_check,
        )
        for _, full, _ in run_sequence(run, steps, state0):
            feeds.append(full)
            bar.update(1)
    bar.close()
    return feeds
