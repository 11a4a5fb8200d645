"""The job end to end on synthetic inputs: folder walk, failures.json + exit code 3, outputs, resumability."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from autolabel_fakes import BLOB_TEACHER

from autolabel.cli import main
from autolabel.sources import discover_sources
from perception.labels import ClipLabels


def test_discover_sources_kinds_and_mirrored_paths(input_tree: Path) -> None:
    found = {s.relative.as_posix(): s.kind for s in discover_sources(input_tree)}
    assert found == {
        "drive_a": "video",
        "seq/images": "images",
        "clips/clip_0000": "clip",
        "bad/empty": "video",
        "bad/corrupt": "video",
        "bad/truncated": "video",
        "bad/cut": "video",
    }


@pytest.fixture(scope="module")
def labelled(input_tree: Path, tmp_path_factory) -> tuple[Path, int]:
    out = tmp_path_factory.mktemp("labels")
    code = main([str(input_tree), "--out", str(out), "--teacher", BLOB_TEACHER, "--batch", "4", "--no-progress"])
    return out, code


def test_failures_logged_and_exit_code_3(labelled: tuple[Path, int]) -> None:
    out, code = labelled
    assert code == 3
    failures = json.loads((out / "failures.json").read_text())
    assert sorted(f["relative"] for f in failures) == ["bad/corrupt", "bad/cut", "bad/empty", "bad/truncated"]
    assert all(f["reason"] for f in failures)
    cut = next(f for f in failures if f["relative"] == "bad/cut")
    assert "last good frame" in cut["reason"]  # failed mid-stream, while the teacher was running
    assert not (out / "bad" / "empty").exists()


def test_every_good_input_labelled_with_tracks(labelled: tuple[Path, int]) -> None:
    out, _ = labelled
    for relative, cameras, frames in [
        ("drive_a", ["camera"], 24),
        ("seq/images", ["camera"], 12),
        ("clips/clip_0000", ["front", "rear"], 10),
    ]:
        folder = out / relative
        assert (folder / "done").is_file(), relative
        labels = ClipLabels.load(folder / "labels.json")
        assert len(labels.frames) == frames
        assert labels.provenance["source"] == "autolabel"
        assert len(labels.provenance["config_sha256"]) == 64
        for camera in cameras:
            ids = {int(t) for f in labels.frames for t in f.boxes2d[camera].track_id}
            assert len(ids) == 2, (relative, camera, ids)  # the red and the blue blob, one id each
            for name in labels.classes:  # one MOTChallenge file per class (benchmark convention)
                assert (folder / "mot" / name / f"{camera}.txt").is_file()
            assert (folder / "cvat" / f"{camera}.xml").is_file()
        all_ids = [{int(t) for f in labels.frames for t in f.boxes2d[c].track_id} for c in cameras]
        assert len(set().union(*all_ids)) == 2 * len(cameras)  # ids unique across cameras of a clip
        assert all(f.uncertainty is not None for f in labels.frames)


def test_track_follows_the_moving_blob(labelled: tuple[Path, int]) -> None:
    labels = ClipLabels.load(labelled[0] / "drive_a" / "labels.json")
    car = labels.classes.index("car")
    xs = [float(f.boxes2d["camera"].xyxy[f.boxes2d["camera"].class_id == car][0, 0]) for f in labels.frames]
    np.testing.assert_allclose(np.diff(xs), 3.0, atol=1.0)  # the red box moves 3 px per frame


def test_rerun_skips_done_inputs(labelled: tuple[Path, int], input_tree: Path) -> None:
    out, _ = labelled
    before = (out / "drive_a" / "labels.json").stat().st_mtime_ns
    code = main([str(input_tree), "--out", str(out), "--teacher", BLOB_TEACHER, "--no-progress"])
    assert code == 3  # the bad inputs still fail
    assert (out / "drive_a" / "labels.json").stat().st_mtime_ns == before


def test_changed_config_relabels(tmp_path: Path, input_tree: Path) -> None:
    out = tmp_path / "labels"
    source = input_tree / "drive_a.mp4"
    assert main([str(source), "--out", str(out), "--teacher", BLOB_TEACHER, "--no-progress"]) == 0
    first = json.loads((out / "drive_a" / "done").read_text())["config_sha256"]
    config = tmp_path / "job.yaml"
    config.write_text("teacher: {class_path: autolabel_fakes.BlobTeacher}\nexport: [mot]\n")
    assert main([str(source), "--out", str(out), "-c", str(config), "--no-progress"]) == 0
    second = json.loads((out / "drive_a" / "done").read_text())["config_sha256"]
    assert first != second
    assert not (out / "drive_a" / "cvat").exists()  # the folder was replaced, not merged


def test_bad_teacher_is_exit_code_2(tmp_path: Path, input_tree: Path) -> None:
    assert (
        main([str(input_tree), "--out", str(tmp_path), "--teacher", str(tmp_path / "missing.onnx"), "--no-progress"])
        == 2
    )


def test_preview_and_output_inside_input_tree(tmp_path: Path, input_tree: Path) -> None:
    import shutil

    from perception.video import VideoReader

    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(input_tree / "drive_a.mp4", inputs / "drive_a.mp4")
    out = inputs / "labels"  # the label folder lives inside the walked tree
    assert main([str(inputs), "--out", str(out), "--teacher", BLOB_TEACHER, "--preview", "--no-progress"]) == 0
    with VideoReader(out / "drive_a" / "preview.mp4") as reader:
        assert reader.frame_count == 24
    assert main([str(inputs), "--out", str(out), "--teacher", BLOB_TEACHER, "--preview", "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "config.yaml",
        "dataset",  # the YOLO / COCO training dataset (export: yolo, coco)
        "drive_a",
        "failures.json",
        "job.json",
    ]  # preview.mp4 not an input


def test_windowed_long_video_keeps_one_id_per_object(tmp_path: Path) -> None:
    from autolabel_fakes import write_blob_video

    video = write_blob_video(tmp_path / "in" / "long.mp4", frames=40)
    config = tmp_path / "job.yaml"
    config.write_text(
        "teacher: {class_path: autolabel_fakes.BlobTeacher}\nwindow_frames: 14\nwindow_overlap: 6\n"
    )  # windows 0-14, 8-22, 16-30, 24-38, 32-40
    assert main([str(video), "--out", str(tmp_path / "out"), "-c", str(config), "--no-progress"]) == 0
    labels = ClipLabels.load(tmp_path / "out" / "long" / "labels.json")
    per_class: dict[int, set[int]] = {}
    for frame in labels.frames:
        boxes = frame.boxes2d["camera"]
        assert len(boxes) == 2
        for class_id, track_id in zip(boxes.class_id, boxes.track_id):
            per_class.setdefault(int(class_id), set()).add(int(track_id))
    assert per_class == {labels.classes.index("car"): {1}, labels.classes.index("pedestrian"): {2}}


def test_window_ranges_cover_every_frame() -> None:
    from autolabel.windows import window_ranges

    assert window_ranges(40, 14, 6) == [(0, 14), (8, 22), (16, 30), (24, 38), (32, 40)]
    assert window_ranges(10, 900, 60) == [(0, 10)]
