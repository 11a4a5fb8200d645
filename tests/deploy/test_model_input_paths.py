"""One rule for "frame -> model input" (``perception.model_input``): the training data (frame cache + dataset), the
auto-labelling teacher, export and the runtime (offline steps and the real-time engine) feed the model identical
tensors for the same frames and rig, with cameras below and above the model's resolution and a radtan or fisheye
lens; a lens the model cannot take is refused by each of them with the same actionable error, and models exported
under the previous rule (radtan-only distortion) still get what they take."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic_clip import write_synthetic_clip

from deploy.metadata import read_metadata
from deploy.runtime import DeployedModel, Runtime, RuntimeConfig
from deploy.runtime.clip_inputs import clip_steps
from perception import model_input
from perception.clip import ClipError, DriveClip
from perception.geometry import invert_se3
from perception.rig import Rig, ring_rig

torch = pytest.importorskip("torch")

SIZE_HW = (64, 128)  # the exported tiny model's image size (tests/deploy/conftest.py)
RADTAN = np.array([-0.05, 0.01, 0.001, -0.001, 0.002])
FISHEYE = np.array([0.03, -0.01, 0.001, -0.0002])


def _rig(lens_model: str = "radtan", coefficients: np.ndarray = RADTAN) -> Rig:
    """cam0 160x96 (shrunk to 128x64: INTER_AREA), cam1 100x50 with a lens (enlarged to 128x64: INTER_LINEAR)."""
    ring = ring_rig(num_cameras=2, width=160, height=96)
    cam1 = ring.cameras[1].resized(100, 50)
    cam1.distortion_model, cam1.distortion = lens_model, np.asarray(coefficients, np.float64)
    return Rig([ring.cameras[0], cam1])


class RecordingSession:
    """A fake onnxruntime session: keeps a copy of every feed dict, answers zeros shaped like the model's outputs."""

    def __init__(self, metadata: dict) -> None:
        self.outputs = metadata["outputs"]
        self.feeds: list[dict[str, np.ndarray]] = []

    def run(self, names, feeds):
        self.feeds.append({name: np.array(value) for name, value in feeds.items()})
        return [np.zeros(spec["shape"], dtype=spec["dtype"]) for spec in self.outputs]


def _expected(clip: DriveClip, cameras: list[str]) -> dict[str, np.ndarray]:
    """What the rule says, computed camera by camera from the decoded frames ([T, N, ...])."""
    frames = list(clip.frames(cameras=cameras))
    return {
        "images": np.stack(
            [
                np.stack([model_input.prepare_image(f.images[n], SIZE_HW).transpose(2, 0, 1) for n in cameras])
                for f in frames
            ]
        ),
        "intrinsics": np.stack([model_input.model_intrinsics(clip.rig[n], SIZE_HW) for n in cameras]).astype(
            np.float32
        ),
        "distortion": np.stack([model_input.model_distortion(clip.rig[n]) for n in cameras]).astype(np.float32),
        "camera_from_ego": np.stack([[clip.camera_from_ego(f.index, n) for n in cameras] for f in frames]),
        "prev_from_curr": np.stack(
            [np.eye(4)]
            + [invert_se3(clip.world_from_ego[t - 1]) @ clip.world_from_ego[t] for t in range(1, len(frames))]
        ),
        "bgr": [{n: f.images[n] for n in cameras} for f in frames],
    }


def _runtime_rgb(images_bgr_nhwc: np.ndarray) -> np.ndarray:
    """The exported graph's input (uint8 [N, H, W, 3] BGR) as the torch model sees it (RGB [N, 3, H, W])."""
    return images_bgr_nhwc[..., ::-1].transpose(0, 3, 1, 2)


@pytest.mark.parametrize(("lens_model", "coefficients"), [("radtan", RADTAN), ("fisheye", FISHEYE)])
def test_every_path_prepares_identical_inputs(
    exported, tmp_path: Path, tiny_model_args: dict, lens_model: str, coefficients: np.ndarray
) -> None:
    from autolabel.teachers.fleetvision import FleetvisionTeacher
    from deploy.export.checkpoint import load_checkpoint
    from deploy.export.graph import example_feeds
    from perception.data.cache import FrameCache
    from perception.data.dataset import ClipWindowDataset
    from perception.data.spec import target_spec_for

    model_path, checkpoint, _ = exported
    rig = _rig(lens_model, coefficients)
    path = write_synthetic_clip(tmp_path / "clip", rig=rig, frames=3, fps=20.0, seed=4, camera_offset_s=0.01)
    clip = DriveClip.open(path)
    cameras = rig.names
    expected = _expected(clip, cameras)
    frames = len(expected["bgr"])

    # the rule is what it claims, and the test can see the teacher's former drift (INTER_AREA when enlarging)
    assert rig["cam0"].height > SIZE_HW[0] > rig["cam1"].height
    enlarged = expected["bgr"][0]["cam1"]
    np.testing.assert_array_equal(
        model_input.resize_image(enlarged, SIZE_HW), cv2.resize(enlarged, SIZE_HW[::-1], interpolation=cv2.INTER_LINEAR)
    )
    area = cv2.resize(enlarged, SIZE_HW[::-1], interpolation=cv2.INTER_AREA)[..., ::-1].transpose(2, 0, 1)
    assert not np.array_equal(area, expected["images"][0, 1])
    assert np.any(expected["distortion"][1]) and not np.any(expected["distortion"][0])
    assert expected["distortion"][1, -1] == model_input.LENS_IDS[lens_model]

    # training: frame cache + dataset
    spec = target_spec_for("bev_tiny", tiny_model_args)
    assert tuple(spec["image_size"]) == SIZE_HW
    dataset = ClipWindowDataset(
        [clip], cameras=cameras, spec=spec, window=frames, cache=FrameCache(tmp_path / "cache"), with_targets=False
    )
    sample = dataset.build_sample(0, list(range(frames)), None)
    np.testing.assert_array_equal(sample["images"], expected["images"])
    for t in range(frames):
        np.testing.assert_array_equal(sample["intrinsics"][t], expected["intrinsics"])
        np.testing.assert_array_equal(sample["distortion"][t], expected["distortion"])
    np.testing.assert_allclose(sample["camera_from_ego"], expected["camera_from_ego"], atol=1e-6)
    np.testing.assert_allclose(sample["prev_from_curr"], expected["prev_from_curr"], atol=1e-6)
    np.testing.assert_array_equal(sample["state_valid"], [0.0] + [1.0] * (frames - 1))

    # auto-labelling teacher (the exported model's checkpoint), state carried frame to frame
    teacher = FleetvisionTeacher(checkpoint, score_threshold=0.0)
    assert teacher.cameras == cameras and teacher.image_size == SIZE_HW
    for t, frame in enumerate(clip.frames()):
        inputs = teacher._inputs(clip, frame)
        np.testing.assert_array_equal(inputs["images"][0].numpy(), expected["images"][t].astype(np.float32))
        np.testing.assert_array_equal(inputs["intrinsics"][0].numpy(), expected["intrinsics"])
        np.testing.assert_array_equal(inputs["distortion"][0].numpy(), expected["distortion"])
        np.testing.assert_allclose(inputs["camera_from_ego"][0].numpy(), expected["camera_from_ego"][t], atol=1e-6)
        np.testing.assert_allclose(inputs["prev_from_curr"][0].numpy(), expected["prev_from_curr"][t], atol=1e-6)
        assert float(inputs["state_valid"][0]) == sample["state_valid"][t]
        teacher.predict_frame(clip, frame)

    # runtime, offline steps (parity checks, INT8 calibration, accuracy)
    steps = list(clip_steps(path, cameras=cameras, size_hw=SIZE_HW))
    assert [step.index for step in steps] == list(range(frames))
    # runtime, the real-time engine (fast replay) with the exported model's metadata
    metadata = read_metadata(model_path)
    session = RecordingSession(metadata)
    summary = Runtime(DeployedModel(metadata, session), RuntimeConfig(realtime=False)).run_clip(path)
    assert summary.frames_processed == frames and len(session.feeds) == frames
    for t, feeds in enumerate([step.feeds for step in steps] + session.feeds):
        t %= frames
        np.testing.assert_array_equal(_runtime_rgb(feeds["images"][0]), expected["images"][t])
        np.testing.assert_array_equal(feeds["intrinsics"][0], expected["intrinsics"])
        np.testing.assert_array_equal(feeds["distortion"][0], expected["distortion"])
        np.testing.assert_allclose(feeds["camera_from_ego"][0], expected["camera_from_ego"][t], atol=1e-6)
        np.testing.assert_allclose(feeds["prev_from_curr"][0], expected["prev_from_curr"][t], atol=1e-6)
        assert feeds["state_valid"][0] == sample["state_valid"][t]

    # export: traced with the same calibration, and the rule it records is the one the runtime applies
    model, _ = load_checkpoint(checkpoint)
    traced = example_feeds(model, rig, cameras)
    np.testing.assert_array_equal(traced["intrinsics"][0], expected["intrinsics"])
    np.testing.assert_array_equal(traced["distortion"][0], expected["distortion"])
    assert metadata["preprocess"] == model_input.describe(SIZE_HW)
    assert model_input.RESIZE_RULE in {s["name"]: s for s in metadata["inputs"]}["images"]["meaning"]
    assert DeployedModel(metadata, session).preprocess["version"] == model_input.MODEL_INPUT_VERSION


@pytest.mark.parametrize(
    ("lens_model", "coefficients"), [("radtan", [-0.05, 0.01, 0.001, -0.001, 0.002, 0.1, 0.0, 0.0])]
)
def test_unsupported_lens_is_refused_by_every_path(exported, tmp_path: Path, tiny_model_args, lens_model, coefficients):
    from autolabel.teachers.fleetvision import FleetvisionTeacher
    from perception.data.cache import FrameCache
    from perception.data.dataset import ClipWindowDataset
    from perception.data.spec import target_spec_for

    model_path, checkpoint, _ = exported
    rig = _rig(lens_model, np.array(coefficients))
    path = write_synthetic_clip(tmp_path / "clip", rig=rig, frames=2, fps=20.0, seed=5)
    clip = DriveClip.open(path)
    message = (
        re.escape(f"{path / 'rig.yaml'}: camera 'cam1': distortion model '{lens_model}'") + ".*undistort the images"
    )

    with pytest.raises(model_input.UnsupportedDistortionError, match=message):
        model_input.model_distortion(clip.rig["cam1"], source=str(path / "rig.yaml"))
    with pytest.raises(model_input.UnsupportedDistortionError, match=message):
        ClipWindowDataset(
            [clip],
            cameras=rig.names,
            spec=target_spec_for("bev_tiny", tiny_model_args),
            cache=FrameCache(tmp_path / "cache"),
            with_targets=False,
        )
    with pytest.raises(ClipError, match=message):  # a ClipError: the autolabel job logs it and skips the clip
        FleetvisionTeacher(checkpoint)._inputs(clip, next(iter(clip.frames())))
    with pytest.raises(model_input.UnsupportedDistortionError, match=message):
        next(clip_steps(path, cameras=rig.names, size_hw=SIZE_HW))
    metadata = read_metadata(model_path)
    with pytest.raises(model_input.UnsupportedDistortionError, match=message):
        Runtime(DeployedModel(metadata, RecordingSession(metadata)), RuntimeConfig(realtime=False)).run_clip(path)


def _version1_metadata(metadata: dict) -> dict:
    """The exported tiny model's metadata as an export under input rule 1 wrote it (radtan-only distortion [1,N,5])."""
    preprocess = {
        **metadata["preprocess"],
        "version": 1,
        "distortion": {"layout": "radtan5", "coefficients": ["k1", "k2", "p1", "p2", "k3"]},
    }
    inputs = [
        {**entry, "shape": [*entry["shape"][:-1], 5]} if entry["name"] == "distortion" else entry
        for entry in metadata["inputs"]
    ]
    return {**metadata, "preprocess": preprocess, "inputs": inputs}


def test_models_exported_under_rule_1_get_radtan_only_and_refuse_fisheye(exported, tmp_path: Path) -> None:
    model_path, _, _ = exported
    metadata = _version1_metadata(read_metadata(model_path))
    radtan = write_synthetic_clip(tmp_path / "radtan", rig=_rig(), frames=2, fps=20.0, seed=6)
    session = RecordingSession(metadata)
    model = DeployedModel(metadata, session)
    assert model.distortion_layout == "radtan5"
    Runtime(model, RuntimeConfig(realtime=False)).run_clip(radtan)
    assert len(session.feeds) == 2
    np.testing.assert_array_equal(session.feeds[0]["distortion"][0], [np.zeros(5), RADTAN.astype(np.float32)])
    fisheye = write_synthetic_clip(tmp_path / "fisheye", rig=_rig("fisheye", FISHEYE), frames=2, fps=20.0, seed=6)
    with pytest.raises(model_input.UnsupportedDistortionError, match="'radtan5'.*before fisheye support, re-export"):
        Runtime(DeployedModel(metadata, RecordingSession(metadata)), RuntimeConfig(realtime=False)).run_clip(fisheye)
