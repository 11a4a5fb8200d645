"""Shared fixtures: a small input tree (video, image folder, two-camera clip, corrupt and empty files)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from autolabel_fakes import write_blob_clip, write_blob_images, write_blob_video  # noqa: E402


@pytest.fixture(scope="session")
def input_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    write_blob_video(root / "drive_a.mp4", frames=24)
    write_blob_images(root / "seq" / "images", frames=12)
    # frames.csv marks an image folder as a sequence (tracked); without it the images are independent stills
    (root / "seq" / "images" / "frames.csv").write_text(
        "index,timestamp\n" + "".join(f"{i},{0.1 * i}\n" for i in range(12))
    )
    write_blob_clip(root / "clips" / "clip_0000", frames=10)
    (root / "bad").mkdir()
    (root / "bad" / "empty.mp4").write_bytes(b"")
    (root / "bad" / "corrupt.avi").write_bytes(b"RIFF\x00\x00\x00\x00AVI garbage" * 50)
    truncated = write_blob_video(root / "bad" / "full.mp4", frames=24)
    data = truncated.read_bytes()
    (root / "bad" / "truncated.mp4").write_bytes(data[: len(data) // 2])
    truncated.unlink()
    # an AVI cut at 60%: it opens and declares 24 frames, decoding stops part-way (fails while labelling)
    cut = write_blob_video(root / "bad" / "cut_full.avi", frames=24)
    data = cut.read_bytes()
    (root / "bad" / "cut.avi").write_bytes(data[: int(len(data) * 0.6)])
    cut.unlink()
    return root
