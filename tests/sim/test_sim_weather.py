"""Weather in the synthetic world (``perception synth --weather``): the same world and labels as the clear clip of
the seed, deterministic, worse with severity, and rendered with depth (fog thickens with distance, headlights light
what is near and ahead)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from perception.clip import DriveClip
from perception.rig import Rig
from perception.sim.cli import main as synth_main
from perception.sim.generate import generate_clip
from perception.sim.look import headlight_gain, sample_look, with_weather

RIG = Path(__file__).resolve().parents[2] / "configs" / "rigs" / "front_1cam.yaml"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[tuple[str, int], DriveClip]:
    """The clear clip of seed 4 and the same clip under each weather at severities 1 and 3 (2 frames, one camera)."""
    root = tmp_path_factory.mktemp("weather")
    rig = Rig.load(RIG)
    out = {}
    for weather, severity in [("clear", 0), ("fog", 1), ("fog", 3), ("low_light", 1), ("low_light", 3), ("snow", 1),
                              ("snow", 3)]:  # fmt: skip
        path = generate_clip(
            root / f"{weather}{severity}",
            rig,
            frames=2,
            seed=4,
            image_format="png",
            weather=None if weather == "clear" else weather,
            weather_severity=max(severity, 1),
        )
        out[weather, severity] = DriveClip.open(path)
    return out


def _image(clip: DriveClip, frame: int = 1) -> np.ndarray:
    return next(f for f in clip.frames() if f.index == frame).images[clip.rig.names[0]].astype(np.float64)


def test_weather_keeps_the_world_and_labels(clips):
    clear = clips["clear", 0]
    for (weather, severity), clip in clips.items():
        if weather == "clear":
            continue
        for a, b in zip(clear.labels.frames, clip.labels.frames):
            np.testing.assert_array_equal(a.boxes3d.center, b.boxes3d.center)
            np.testing.assert_array_equal(a.boxes3d.class_id, b.boxes3d.class_id)
        np.testing.assert_array_equal(clear.world_from_ego, clip.world_from_ego)
        assert clip.labels.provenance["weather"] == weather and clip.labels.provenance["weather_severity"] == severity
        assert np.abs(_image(clip) - _image(clear)).mean() > 3.0
    assert clear.labels.provenance["weather"] == "clear"


def test_weather_is_deterministic(clips, tmp_path):
    again = generate_clip(tmp_path / "again", Rig.load(RIG), frames=2, seed=4, image_format="png", weather="snow",
                          weather_severity=3)  # fmt: skip
    np.testing.assert_array_equal(_image(DriveClip.open(again)), _image(clips["snow", 3]))


def test_severity_makes_each_weather_worse(clips):
    clear = _image(clips["clear", 0])
    for weather in ("fog", "low_light", "snow"):
        light, heavy = _image(clips[weather, 1]), _image(clips[weather, 3])
        assert np.abs(heavy - clear).mean() > np.abs(light - clear).mean(), weather
    grey = {k: cv2.cvtColor(_image(c).astype(np.uint8), cv2.COLOR_BGR2GRAY) for k, c in clips.items()}
    assert grey["fog", 3].std() < grey["fog", 1].std()  # fog flattens the contrast
    assert grey["low_light", 3].mean() < grey["low_light", 1].mean() < grey["clear", 0].mean()


def test_fog_and_headlights_act_with_depth(clips):
    """Fog hides the far road more than the near road; headlights light near objects ahead, not those behind."""
    clear, fog = _image(clips["clear", 0]), _image(clips["fog", 3])
    height = clear.shape[0]
    near_rows, far_rows = slice(height - 20, height), slice(height // 2 + 2, height // 2 + 12)  # road: near / horizon
    change_near = np.abs(fog[near_rows] - clear[near_rows]).mean()
    change_far = np.abs(fog[far_rows] - clear[far_rows]).mean()
    assert change_far > change_near
    look = with_weather(sample_look(np.random.default_rng(0)), "low_light", 2, np.random.default_rng(1))
    gain = headlight_gain(look, np.array([[10.0, 0.0, 0.5], [25.0, 0.0, 0.5], [10.0, 12.0, 0.5], [-10.0, 0.0, 0.5]]))
    assert gain[0] > gain[1] > 0 and gain[2] == 0 and gain[3] == 0  # ahead and near > far; nothing aside or behind
    with pytest.raises(ValueError, match="weather"):
        with_weather(look, "hail", 1, np.random.default_rng(0))


def test_synth_cli_weather(tmp_path):
    code = synth_main(["--rig", str(RIG), "--clips", "1", "--frames", "1", "--out", str(tmp_path / "fog"),
                       "--weather", "fog", "--weather-severity", "3", "--quiet"])  # fmt: skip
    assert code == 0
    clip = DriveClip.open(tmp_path / "fog" / "clip_0000")
    assert clip.labels.provenance["weather"] == "fog" and clip.labels.provenance["weather_severity"] == 3
