"""Good inputs for the reliability cases (built once), and a per-case workspace with a file that must never change.

A workspace is a folder holding copies of the inputs a case needs, an ``out/`` folder the command may write into and
``outside/important.txt``: the harness checks that nothing outside ``out/`` was created, changed or removed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception.clip import ClipWriter
from perception.geometry import BevGrid, se3, yaw_matrix
from perception.labels import BevMaps, Boxes2D, Boxes3D, ClipLabels, FrameLabels, make_provenance
from perception.rig import Camera, Rig

FRAMES = 4
WIDTH, HEIGHT = 64, 48
SENTINEL = "outside/important.txt"
SENTINEL_TEXT = "results someone cares about\n"


def small_rig() -> Rig:
    """Two pinhole cameras, front and left, 64x48 pixels."""
    K = np.array([[60.0, 0, 32], [0, 60, 24], [0, 0, 1]])
    axes = np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], dtype=float)  # camera z forward = ego x
    return Rig(
        [
            Camera("front", WIDTH, HEIGHT, K, se3(axes.T, [1.5, 0, 1.5])),
            Camera("left", WIDTH, HEIGHT, K, se3(yaw_matrix(np.pi / 2) @ axes.T, [1.0, 0.5, 1.5])),
        ]
    )


def write_small_clip(path: Path, image_format: str = "png", frames: int = FRAMES) -> Path:
    """A valid clip: 2 cameras, ``frames`` frames, dense poses, labels with one car and BEV maps (labels_bev.npz)."""
    rng = np.random.default_rng(0)
    rig = small_rig()
    grid = BevGrid(-8.0, 8.0, -8.0, 8.0, 1.0)
    label_frames = []
    with ClipWriter(path, rig, fps=10, image_format=image_format) as writer:
        for i in range(frames):
            t = 0.1 * i
            images = {name: rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8) for name in rig.names}
            writer.add_frame(images, t, se3(np.eye(3), [t * 5, 0, 0]), {"front": t + 0.001, "left": t + 0.02})
            writer.add_pose(t, se3(np.eye(3), [t * 5, 0, 0]))
            writer.add_pose(t + 0.05, se3(np.eye(3), [(t + 0.05) * 5, 0, 0]))
            boxes = Boxes3D(
                np.array([[8.0, 0.5, 0.8]]),
                np.array([[4.0, 1.8, 1.6]]),
                np.array([0.1]),
                class_id=np.array([0]),
                track_id=np.array([3]),
            )
            label_frames.append(
                FrameLabels(boxes, {"front": Boxes2D(np.array([[10.0, 10, 30, 30]]), np.array([0]), track_id=[3])})
            )
        bev = BevMaps(grid, ["drivable"], np.ones((frames, 1, *grid.shape), np.uint8))
        writer.set_labels(ClipLabels(["car", "pedestrian"], label_frames, make_provenance("ground_truth", "test"), bev))
    return path


def write_onnx(path: Path, shape: list, *, opset: int = 17) -> Path:
    """A one-Conv ONNX model: input ``image`` of ``shape`` (ints or symbolic names), output ``features``."""
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], np.full(4 * 27, 0.01, np.float32).tolist())
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["features"], pads=[1, 1, 1, 1], name="conv")],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, None)],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save_model(model, str(path))
    return path


@dataclass
class Templates:
    """Paths of the good inputs: clips (PNG and MP4), a video, ONNX models, a budget and an autolabel job config."""

    root: Path
    clip_png: Path
    clip_mp4: Path
    video: Path
    model_static: Path
    model_dynamic: Path
    model_dynamic_batch: Path
    budget: Path

    @classmethod
    def build(cls, root: Path) -> Templates:
        from autolabel_fakes import write_blob_video

        root.mkdir(parents=True, exist_ok=True)
        budget = root / "budget.yaml"
        budget.write_text("name: tiny\np99_ms: 10000\n")
        return cls(
            root=root,
            clip_png=write_small_clip(root / "clip_png"),
            clip_mp4=write_small_clip(root / "clip_mp4", image_format="mp4"),
            video=write_blob_video(root / "drive.mp4", frames=6),
            model_static=write_onnx(root / "static.onnx", [1, 3, 8, 8]),
            model_dynamic=write_onnx(root / "dynamic.onnx", ["batch", 3, "height", "width"]),
            model_dynamic_batch=write_onnx(root / "dynamic_batch.onnx", ["batch", 3, 8, 8]),
            budget=budget,
        )


class Workspace:
    """One case's folder: inputs copied from the templates, ``out/`` for outputs, and the sentinel file outside."""

    def __init__(self, root: Path, templates: Templates) -> None:
        self.root = Path(root)
        self.templates = templates
        self.out = self.root / "out"
        self.out.mkdir(parents=True, exist_ok=True)
        self.before: object = None  # what a scenario recorded before the judged run
        sentinel = self.root / SENTINEL
        sentinel.parent.mkdir(parents=True, exist_ok=True)
        sentinel.write_text(SENTINEL_TEXT)

    @property
    def sentinel(self) -> Path:
        return self.root / SENTINEL

    def copy(self, source: Path, name: str | None = None) -> Path:
        """A copy of a template file or folder inside the workspace."""
        target = self.root / (name or source.name)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        return target

    def clip(self, kind: str = "png", name: str = "clip") -> Path:
        return self.copy(self.templates.clip_png if kind == "png" else self.templates.clip_mp4, name)
