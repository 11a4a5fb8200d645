"""The one atomic-write family, the one file hash and the one video writer that every package uses."""

import gc
import hashlib
import json
import os
import stat

import numpy as np
import pytest

from perception.atomic import (
    FILE_MODE,
    PendingFile,
    atomic_directory,
    atomic_path,
    atomic_text_stream,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    make_staging_dir,
)
from perception.hashing import file_sha256
from perception.video import VideoError, VideoReader, VideoWriter


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_whole_file_writes_leave_ordinary_files_and_no_temporaries(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "sub" / "b.txt", "héllo")
    atomic_write_json(tmp_path / "c.json", {"x": [1, 2]}, indent=None)
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "sub" / "b.txt").read_text(encoding="utf-8") == "héllo"
    assert json.loads((tmp_path / "c.json").read_text()) == {"x": [1, 2]}
    assert stat.S_IMODE(os.stat(tmp_path / "a.bin").st_mode) == FILE_MODE
    assert _hidden(tmp_path) == [] and _hidden(tmp_path / "sub") == []


def test_failed_stream_keeps_the_old_file(tmp_path):
    target = tmp_path / "labels.xml"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_text_stream(target) as stream:
        stream.write("half a docu")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and _hidden(tmp_path) == []
    with atomic_text_stream(target) as stream:
        stream.write("new")
    assert target.read_text() == "new"


def test_pending_file_commit_abort_and_garbage(tmp_path):
    pending = PendingFile(tmp_path / "run.jsonl", "w")
    pending.write("line\n")
    pending.close()
    assert not (tmp_path / "run.jsonl").exists() and pending.temporary.is_file()
    assert pending.commit().read_text() == "line\n"
    forgotten = PendingFile(tmp_path / "never.txt", "w")
    temporary = forgotten.temporary
    del forgotten
    gc.collect()
    assert not temporary.exists() and not (tmp_path / "never.txt").exists()
    with atomic_path(tmp_path / "model.onnx", suffix=".onnx") as name:
        assert name.suffix == ".onnx" and name.parent == tmp_path
        name.write_bytes(b"onnx")
    assert (tmp_path / "model.onnx").read_bytes() == b"onnx" and _hidden(tmp_path) == []


def test_atomic_directory_replaces_or_keeps_the_old_folder(tmp_path):
    target = tmp_path / "clip_0000"
    with atomic_directory(target) as staging:
        assert staging.name.startswith(f".clip_0000.partial-{os.getpid()}-") and staging.name.endswith(".tmp")
        (staging / "labels.json").write_text("1")
    with pytest.raises(RuntimeError), atomic_directory(target) as staging:
        (staging / "labels.json").write_text("2")
        raise RuntimeError("killed")
    assert (target / "labels.json").read_text() == "1" and _hidden(tmp_path) == []
    with atomic_directory(target, tag="import") as staging:
        (staging / "labels.json").write_text("3")
    assert (target / "labels.json").read_text() == "3" and _hidden(tmp_path) == []
    assert make_staging_dir(tmp_path / "x", tag="import").name.startswith(f".x.import-{os.getpid()}-")


def test_file_sha256_is_sha256_of_the_bytes(tmp_path):
    data = os.urandom(3 << 20)
    (tmp_path / "w.bin").write_bytes(data)
    assert file_sha256(tmp_path / "w.bin") == hashlib.sha256(data).hexdigest()


def test_video_writer_opens_on_the_first_frame(tmp_path):
    frame = np.full((48, 64, 3), 128, np.uint8)
    with VideoWriter(tmp_path / "empty.mp4", 10.0) as writer:
        pass
    assert writer.frames_written == 0 and not (tmp_path / "empty.mp4").exists()
    with VideoWriter(tmp_path / "v.avi", 10.0) as writer:
        for _ in range(3):
            writer.write(frame)
        assert writer.size == (64, 48)
        with pytest.raises(VideoError, match="frame size 32x24 != video size 64x48"):
            writer.write(frame[:24, :32])
    with VideoReader(tmp_path / "v.avi") as reader:
        assert sum(1 for _ in reader) == 3
    with VideoWriter(tmp_path / "r.avi", 10.0, resize_mismatched=True) as writer:
        writer.write(frame)
        writer.write(frame[:24, :32])
    assert writer.frames_written == 2
    with pytest.raises(RuntimeError), VideoWriter(tmp_path / "killed.avi", 10.0) as writer:
        writer.write(frame)
        raise RuntimeError("killed")
    assert not (tmp_path / "killed.avi").exists() and _hidden(tmp_path) == []
