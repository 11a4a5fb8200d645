"""perception.corruptions: every corruption deterministic for a seed, severities ordered, sensor failures nested."""

import cv2
import numpy as np
import pytest

from perception.corruptions import (
    CORRUPTIONS,
    IMAGE_CORRUPTIONS,
    SENSOR_CORRUPTIONS,
    ClipCorruption,
    corrupt_image,
    crashed_camera_count,
    parse_corruptions,
    seeded_rng,
    sensor_mask,
)


def scene(height: int = 96, width: int = 192) -> np.ndarray:
    """A street-like RGB test image: sky gradient, grey road, boxes with edges and a textured patch."""
    rng = np.random.default_rng(3)
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2] = np.linspace(220, 120, height // 2)[:, None, None].astype(np.uint8) * np.array(
        [0.6, 0.8, 1.0]
    )
    image[height // 2 :] = (90, 90, 95)
    cv2.rectangle(image, (30, 40), (70, 70), (180, 40, 40), -1)
    cv2.rectangle(image, (120, 35), (170, 75), (40, 160, 60), -1)
    cv2.line(image, (0, height - 1), (width // 2, height // 2), (230, 200, 40), 2)
    image[60:90, 80:110] = rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)
    return image


def change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def test_the_eight_robobev_families():
    assert set(CORRUPTIONS) == set(SENSOR_CORRUPTIONS) | set(IMAGE_CORRUPTIONS)
    assert len(CORRUPTIONS) == 8


@pytest.mark.parametrize("name", IMAGE_CORRUPTIONS)
def test_image_corruption_is_deterministic_for_a_seed(name):
    image = scene()
    first = ClipCorruption(name, 2, seed=7).image(image, "clip_0000", 3, 1)
    again = ClipCorruption(name, 2, seed=7).image(image, "clip_0000", 3, 1)
    assert first.dtype == np.uint8 and first.shape == image.shape
    np.testing.assert_array_equal(first, again)
    assert change(first, image) > 0.5  # it really corrupts
    if name in ("motion_blur", "low_light", "fog", "snow"):  # random angle / noise / pattern: the seed matters
        other = ClipCorruption(name, 2, seed=8).image(image, "clip_0000", 3, 1)
        other_frame = ClipCorruption(name, 2, seed=7).image(image, "clip_0000", 4, 1)
        assert change(first, other) > 0.05 and change(first, other_frame) > 0.05


@pytest.mark.parametrize("name", IMAGE_CORRUPTIONS)
def test_image_severity_ordering(name):
    """More severe = further from the clean image, on several images and seeds; severity 0 is the clean image."""
    for seed in range(3):
        image = np.roll(scene(), 17 * seed, axis=1)
        corrupted = [ClipCorruption(name, s, seed=seed).image(image, "c", 0, 0) for s in (0, 1, 2, 3)]
        np.testing.assert_array_equal(corrupted[0], image)
        distances = [change(c, image) for c in corrupted]
        assert distances[0] == 0.0
        assert distances[1] < distances[2] < distances[3], (name, seed, distances)


def test_motion_blur_removes_detail_with_severity():
    image = scene(192, 384)
    sharpness = [
        cv2.Laplacian(ClipCorruption("motion_blur", s).image(image, "c", 0, 0), cv2.CV_64F).var() for s in (0, 1, 2, 3)
    ]
    assert sharpness[0] > sharpness[1] > sharpness[2] > sharpness[3]


def test_low_light_darkens_and_fog_flattens_contrast():
    image = scene()
    means = [ClipCorruption("low_light", s).image(image, "c", 0, 0).mean() for s in (0, 1, 2, 3)]
    assert means[0] > means[1] > means[2] > means[3]
    for seed in range(4):
        fogged = [ClipCorruption("fog", s, seed=seed).image(image, "c", 0, 0) for s in (0, 1, 2, 3)]
        similarity = [np.corrcoef(f.ravel().astype(float), image.ravel().astype(float))[0, 1] for f in fogged]
        assert similarity[0] > similarity[1] > similarity[2] > similarity[3]  # the scene shows through less


def test_color_quant_levels():
    image = scene()
    for severity, bits in ((1, 4), (2, 3), (3, 2)):
        out = corrupt_image(image, "color_quant", severity, np.random.default_rng(0))
        assert len(np.unique(out)) <= 2**bits


def test_camera_crash_kills_whole_cameras_nested_by_severity():
    masks = [ClipCorruption("camera_crash", s, seed=1).camera_mask("clip_0003", 12, 6) for s in (1, 2, 3)]
    for severity, mask in zip((1, 2, 3), masks):
        assert mask.shape == (12, 6)
        assert (mask == mask[:1]).all()  # dead for the whole clip
        assert (~mask[0]).sum() == {1: 2, 2: 3, 3: 4}[severity]
    assert np.all(masks[0] >= masks[1]) and np.all(masks[1] >= masks[2])  # dead at 1 => dead at 2 and 3
    again = ClipCorruption("camera_crash", 2, seed=1).camera_mask("clip_0003", 12, 6)
    np.testing.assert_array_equal(again, masks[1])
    other_clips = {tuple(ClipCorruption("camera_crash", 1, seed=1).camera_mask(f"clip_{i}", 1, 6)[0]) for i in range(8)}
    assert len(other_clips) > 1  # which cameras die depends on the clip


def test_camera_crash_scales_with_the_rig():
    assert [crashed_camera_count(s, 6) for s in (0, 1, 2, 3)] == [0, 2, 3, 4]
    assert crashed_camera_count(1, 3) == 1 and crashed_camera_count(3, 3) == 2  # never every camera
    assert crashed_camera_count(3, 1) == 0


def test_frame_lost_rates_and_nesting():
    masks = [ClipCorruption("frame_lost", s, seed=2).camera_mask("clip", 2000, 6) for s in (1, 2, 3)]
    lost = [1.0 - m.mean() for m in masks]
    for rate, expected in zip(lost, (1 / 3, 2 / 3, 5 / 6)):
        assert abs(rate - expected) < 0.02
    assert np.all(masks[0] >= masks[1]) and np.all(masks[1] >= masks[2])
    image_mask = ClipCorruption("fog", 3).camera_mask("clip", 5, 6)
    assert image_mask.all()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="expected one of"):
        ClipCorruption("rain", 1)
    with pytest.raises(ValueError, match=r"severity expected in \[0, 3\]"):
        ClipCorruption("fog", 4)
    with pytest.raises(ValueError, match="sensor failure"):
        corrupt_image(scene(), "camera_crash", 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="image corruption"):
        sensor_mask("fog", 1, num_frames=2, num_cameras=6, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="RGB uint8"):
        corrupt_image(scene().astype(np.float32), "fog", 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown"):
        parse_corruptions(["fog", "hail"])
    assert parse_corruptions(None) == list(CORRUPTIONS)
    assert parse_corruptions(["snow", "fog"]) == ["fog", "snow"]


def test_seeded_rng_is_stable_across_processes():
    # CRC-32 of the strings, not Python's salted hash(): a fixed value for a fixed key
    assert seeded_rng(0, "fog", "clip_0000", 1, 2).integers(1 << 30) == seeded_rng(
        0, "fog", "clip_0000", 1, 2
    ).integers(1 << 30)
    import subprocess
    import sys

    code = "from perception.corruptions import seeded_rng; print(seeded_rng(0, 'fog', 'clip_0000', 1).integers(1<<30))"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout for _ in range(2)}
    assert len(runs) == 1 and runs.pop().strip().isdigit()
