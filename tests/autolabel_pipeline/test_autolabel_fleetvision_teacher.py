"""The fleetvision checkpoint teacher: per-frame model inputs follow the clip geometry; 3D labelling end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from autolabel_fakes import write_blob_clip  # noqa: E402

from autolabel.cli import main  # noqa: E402
from perception.clip import DriveClip  # noqa: E402
from perception.geometry import invert_se3  # noqa: E402
from perception.labels import ClipLabels  # noqa: E402

TINY = {
    "backbone": "resnet18",
    "backbone_stages": 2,
    "image_channels": 8,
    "image_stride": 4,
    "image_size": [32, 64],
    "x_range": [-8.0, 8.0],
    "y_range": [-8.0, 8.0],
    "resolution": 1.0,
    "z_range": [-1.0, 3.0],
    "num_heights": 2,
    "bev_channels": 8,
    "bev_blocks": 1,
    "head_channels": 8,
    "head_stride": 1,
    "detection3d_classes": ["car", "truck", "bus", "pedestrian", "cyclist", "traffic_cone"],
    "segmentation_classes": None,
    "detection2d_classes": None,
    "temporal": True,
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from perception.models.bevnet import BevVideoNet
    from perception.training.checkpoint import model_metadata

    torch.manual_seed(0)
    model = BevVideoNet(**TINY).eval()
    meta = model_metadata(model, model_name="tiny_test", rig=None, cameras=["front", "rear"])
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save({**meta, "state_dict": model.state_dict()}, path)
    return path


def test_inputs_follow_clip_geometry_and_state_is_carried(checkpoint: Path, tmp_path: Path) -> None:
    from autolabel.teachers.fleetvision import FleetvisionTeacher

    clip = DriveClip.open(write_blob_clip(tmp_path / "clip", frames=3))
    teacher = FleetvisionTeacher(checkpoint, score_threshold=0.0, max_boxes=4)
    frames = list(clip.frames())
    first = teacher._inputs(clip, frames[0])
    assert float(first["state_valid"][0]) == 0.0
    np.testing.assert_allclose(first["intrinsics"][0, 0].numpy(), clip.rig["front"].resized(64, 32).K, rtol=1e-6)
    np.testing.assert_allclose(first["camera_from_ego"][0, 1].numpy(), clip.camera_from_ego(0, "rear"), atol=1e-6)
    boxes = teacher.predict_frame(clip, frames[0])
    assert len(boxes) == 4
    second = teacher._inputs(clip, frames[1])
    assert float(second["state_valid"][0]) == 1.0
    expected = invert_se3(clip.world_from_ego[0]) @ clip.world_from_ego[1]
    np.testing.assert_allclose(second["prev_from_curr"][0].numpy(), expected, atol=1e-6)
    assert second["prev_state"] is teacher._state
    teacher.reset()
    assert float(teacher._inputs(clip, frames[1])["state_valid"][0]) == 0.0


def test_fleetvision_teacher_labels_a_clip_in_3d(checkpoint: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    write_blob_clip(inputs / "clip_a", frames=6)
    config = tmp_path / "job.yaml"
    config.write_text(
        "teacher: {class_path: autolabel.teachers.fleetvision.FleetvisionTeacher, init_args: "
        f"{{checkpoint_path: {checkpoint}, score_threshold: 0.0, max_boxes: 3}}}}\n"
        "tracking3d: {min_score: 0.0, new_track_score: 0.0, min_track_score: 0.0, min_length: 1}\n"
    )
    assert main([str(inputs), "--out", str(tmp_path / "out"), "-c", str(config), "--no-progress"]) == 0
    labels = ClipLabels.load(tmp_path / "out" / "clip_a" / "labels.json")
    assert labels.provenance["teacher"] == "fleetvision:tiny_test"
    assert len(labels.frames) == 6
    assert sum(len(f.boxes3d) for f in labels.frames) > 0
    assert all((f.boxes3d.track_id >= 1).all() for f in labels.frames)
    assert set(labels.frames[0].boxes2d) == {"front", "rear"}


def _rows(boxes) -> np.ndarray:
    return np.column_stack([boxes.center, boxes.size, boxes.yaw, boxes.velocity, boxes.class_id, boxes.score])


def test_offline_views_fuse_the_whole_clip(checkpoint: Path, tmp_path: Path) -> None:
    """One view equals the online frame-by-frame teacher; the backward pass sees the future (frame 0 changes); with
    one frame both directions see the same input, so only the velocity differs (it cancels); mirroring changes
    the boxes of a model that is not mirror-symmetric (the view really ran)."""
    from autolabel.teachers.fleetvision import FleetvisionTeacher

    clip = DriveClip.open(write_blob_clip(tmp_path / "clip", frames=3))
    frames = list(clip.frames())
    online = FleetvisionTeacher(checkpoint, score_threshold=0.0, max_boxes=6)
    expected = [online.predict_frame(clip, frame) for frame in frames]
    counted: list[int] = []
    single = FleetvisionTeacher(checkpoint, score_threshold=0.0, max_boxes=6).predict_clip(
        clip, iter(frames), progress=counted.append
    )
    assert sum(counted) == 3
    for a, b in zip(single, expected):
        np.testing.assert_allclose(_rows(a), _rows(b), rtol=1e-5, atol=1e-5)

    both = FleetvisionTeacher(checkpoint, score_threshold=0.0, max_boxes=6, bidirectional=True)
    assert both.views == [(False, False), (True, False)]
    fused = both.predict_clip(clip, frames)
    assert not np.allclose(_rows(fused[0])[:, -1], _rows(expected[0])[:, -1])  # frame 0 now holds the future
    one = both.predict_clip(clip, frames[:1])[0]
    np.testing.assert_allclose(_rows(one)[:, :7], _rows(expected[0])[:, :7], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(one.velocity, 0.0, atol=1e-6)

    mirrored = FleetvisionTeacher(checkpoint, score_threshold=0.0, max_boxes=6, mirror=True)
    assert mirrored.views == [(False, False), (False, True)]
    assert not np.allclose(_rows(mirrored.predict_clip(clip, frames[:1])[0]), _rows(expected[0]))
