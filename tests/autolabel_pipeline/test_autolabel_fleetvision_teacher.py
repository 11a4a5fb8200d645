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


def _save_tiny(path: Path, *, seed: int = 0, cameras: tuple[str, ...] = ("front", "rear")) -> Path:
    from perception.models.bevnet import BevVideoNet
    from perception.training.checkpoint import model_metadata

    torch.manual_seed(seed)
    model = BevVideoNet(**TINY).eval()
    meta = model_metadata(model, model_name="tiny_test", rig=None, cameras=list(cameras))
    torch.save({**meta, "state_dict": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return _save_tiny(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


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
    assert second["prev_state"] is teacher._states[0]
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


def _every_pass_encoded(teacher, clip, frames) -> list:
    """The offline views as ``forward`` computes them, the image encoder run in every pass (no feature reuse)."""
    from perception.models.tta import average_outputs, mirror_inputs, unmirror_outputs, unreverse_outputs

    arrays = [teacher._frame_arrays(clip, frame) for frame in frames]
    fused: list[list] = [[] for _ in arrays]
    for model in teacher.models:
        for reverse, mirrored in teacher.views:
            state, previous = None, None
            for index in range(len(arrays) - 1, -1, -1) if reverse else range(len(arrays)):
                pose = arrays[index]["world_from_ego"]
                step = invert_se3(previous) @ pose if previous is not None else np.eye(4)
                inputs = teacher._feeds(arrays[index], state, step, model)
                with torch.inference_mode():
                    outputs = model(**(mirror_inputs(inputs) if mirrored else inputs))
                state, previous = outputs["state"], pose
                view = {k: outputs[k] for k in teacher._fused_keys()}
                view = unmirror_outputs(view, bev_grid=model.head_grid()) if mirrored else view
                fused[index].append(unreverse_outputs(view) if reverse else view)
    return [teacher._decode(average_outputs(views) if len(views) > 1 else views[0]) for views in fused]


@pytest.mark.parametrize("mirror", [False, True])
def test_the_reversed_pass_reuses_the_forward_pass_features_with_the_same_labels(
    checkpoint: Path, tmp_path: Path, mirror: bool
) -> None:
    """Bidirectional (and mirrored) views and a two-member ensemble: the labels are exactly those of running the
    whole model in every pass, while the image encoder runs once per frame, view mirroring and member, instead of
    once per pass; a cache too small for the clip re-encodes only what did not fit; no cache encodes every pass."""
    from autolabel.teachers.fleetvision import FleetvisionTeacher

    clip = DriveClip.open(write_blob_clip(tmp_path / "clip", frames=5))
    frames = list(clip.frames())
    members = [checkpoint, _save_tiny(tmp_path / "other.pt", seed=1)]
    one_frame_mb = 8 * 16 * 16 * 4 / 2**20  # TINY's BEV features of one frame (8 channels, 16 x 16 cells, float32)
    calls: list[int] = []
    for cache_mb, encoded_per_member in ((1024.0, 5), (2 * one_frame_mb, 8), (0.0, 10)):
        teacher = FleetvisionTeacher(
            members, score_threshold=0.0, max_boxes=6, bidirectional=True, mirror=mirror, feature_cache_mb=cache_mb
        )
        calls.clear()
        hooks = [m.image_encoder.register_forward_hook(lambda *_: calls.append(1)) for m in teacher.models]
        labels = teacher.predict_clip(clip, frames)
        for hook in hooks:
            hook.remove()
        assert len(calls) == encoded_per_member * len(members) * (2 if mirror else 1), cache_mb
        for a, b in zip(labels, _every_pass_encoded(teacher, clip, frames)):
            np.testing.assert_array_equal(_rows(a), _rows(b))
    with pytest.raises(ValueError, match="feature_cache_mb"):
        FleetvisionTeacher(checkpoint, feature_cache_mb=-1)


def test_an_ensemble_fuses_its_members_and_refuses_mismatched_ones(checkpoint: Path, tmp_path: Path) -> None:
    """Two copies of one checkpoint give that checkpoint's boxes (online and offline: fusion is the mean); a second,
    different member changes them; members with other cameras are refused by name; the labels hash both files."""
    from autolabel.teachers.fleetvision import FleetvisionTeacher

    clip = DriveClip.open(write_blob_clip(tmp_path / "clip", frames=3))
    frames = list(clip.frames())
    other = _save_tiny(tmp_path / "other.pt", seed=1)
    options = {"score_threshold": 0.0, "max_boxes": 6, "bidirectional": True}
    single = FleetvisionTeacher(checkpoint, **options).predict_clip(clip, frames)
    twice = FleetvisionTeacher([checkpoint, checkpoint], **options)
    for a, b in zip(twice.predict_clip(clip, frames), single):
        np.testing.assert_allclose(_rows(a), _rows(b), rtol=1e-4, atol=1e-5)
    online, online_twice = FleetvisionTeacher(checkpoint, **options), FleetvisionTeacher([checkpoint] * 2, **options)
    for frame in frames:
        np.testing.assert_allclose(
            _rows(online_twice.predict_frame(clip, frame)), _rows(online.predict_frame(clip, frame)), atol=1e-5
        )
    assert len(online_twice._states) == 2
    mixed = FleetvisionTeacher([checkpoint, other], **options)
    assert mixed.name == "fleetvision:tiny_test+tiny_test"
    alone = FleetvisionTeacher(other, **options).predict_clip(clip, frames)
    fused = mixed.predict_clip(clip, frames)
    assert not np.allclose(_rows(fused[1]), _rows(single[1])) and not np.allclose(_rows(fused[1]), _rows(alone[1]))
    with pytest.raises(ValueError, match="2D labels"):
        mixed.predict_batch([np.zeros((32, 64, 3), np.uint8)])

    front_only = _save_tiny(tmp_path / "front_only.pt", cameras=("front",))
    with pytest.raises(ValueError, match=r"front_only.pt: cameras \['front'\] differ"):
        FleetvisionTeacher([checkpoint, front_only])
    with pytest.raises(ValueError, match="empty list"):
        FleetvisionTeacher([])

    inputs = tmp_path / "in"
    write_blob_clip(inputs / "clip_a", frames=4)
    digests = []
    for members in ([checkpoint, other], [checkpoint, _save_tiny(tmp_path / "third.pt", seed=2)]):
        out = tmp_path / f"out_{len(digests)}"
        spec = "fleetvision:" + ",".join(str(m) for m in members)
        assert main([str(inputs), "--out", str(out), "--teacher", spec, "--no-progress"]) == 0
        provenance = ClipLabels.load(out / "clip_a" / "labels.json").provenance
        assert provenance["teacher"] == "fleetvision:tiny_test+tiny_test"
        digests.append((provenance["weights_sha256"], provenance["config_sha256"]))
    assert digests[0][0] != digests[1][0] and digests[0][1] != digests[1][1]  # a new member relabels
