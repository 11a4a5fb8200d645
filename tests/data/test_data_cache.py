"""Frame cache: decoded frames equal the clip's frames (RGB, resized), entries are reused, edits invalidate them."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import cv2
import numpy as np
from clip_factory import make_clip

from perception.clip import DriveClip
from perception.data.cache import FrameCache


def test_cache_matches_decoded_frames_and_is_reused(tmp_path: Path) -> None:
    clip = DriveClip.open(make_clip(tmp_path / "clip", frames=3))
    cache = FrameCache(tmp_path / "cache")
    frames = cache.frames(clip, "front", (64, 96))
    assert frames.shape == (3, 64, 96, 3) and frames.dtype == np.uint8
    for index in range(3):
        np.testing.assert_array_equal(frames[index], clip.read_frame(index).images["front"][..., ::-1])
    small = cache.frames(clip, "front", (32, 48))
    expected = cv2.resize(clip.read_frame(1).images["front"], (48, 32), interpolation=cv2.INTER_AREA)[..., ::-1]
    np.testing.assert_array_equal(small[1], expected)
    assert cache.decoded_entries == 2
    # a fresh cache object (another run or worker) reuses the files: nothing decoded
    again = FrameCache(tmp_path / "cache")
    np.testing.assert_array_equal(again.frames(DriveClip.open(clip.path), "front", (64, 96)), frames)
    assert again.decoded_entries == 0
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    # pickling (DataLoader workers) drops open memory maps but keeps the location
    clone = pickle.loads(pickle.dumps(again))
    assert clone.root == again.root and clone._open == {}


def test_cache_invalidated_when_the_video_changes(tmp_path: Path) -> None:
    clip = DriveClip.open(make_clip(tmp_path / "clip", frames=2))
    cache = FrameCache(tmp_path / "cache")
    before = np.array(cache.frames(clip, "left", (64, 96)))
    image_path = clip.sources["left"] / "000001.png"
    image = cv2.imread(str(image_path))
    image[:] = 7
    cv2.imwrite(str(image_path), image)
    os.utime(image_path, ns=(1, 1))  # a different mtime, as an edit gives
    fresh = FrameCache(tmp_path / "cache")
    after = fresh.frames(DriveClip.open(clip.path), "left", (64, 96))
    assert fresh.decoded_entries == 1
    assert np.all(after[1] == 7) and np.array_equal(after[0], before[0])
