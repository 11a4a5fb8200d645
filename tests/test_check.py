"""``perception check``: every broken-clip case gives an error that names the file, the field and the problem."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

from perception.check import check_clip, main
from perception.clip import ClipWriter
from perception.geometry import se3, yaw_matrix
from perception.labels import Boxes2D, Boxes3D, ClipLabels, FrameLabels, make_provenance
from perception.rig import Camera, Rig

FRAMES = 10


def _rig() -> Rig:
    K = np.array([[60.0, 0, 32], [0, 60, 24], [0, 0, 1]])
    camera_from_ego_axes = np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], dtype=float)  # x fwd -> z fwd
    return Rig(
        [
            Camera("front", 64, 48, K, se3(camera_from_ego_axes.T, [1.5, 0, 1.5])),
            Camera("left", 64, 48, K, se3(yaw_matrix(np.pi / 2) @ camera_from_ego_axes.T, [1.0, 0.5, 1.5])),
        ]
    )


def write_clip(path: Path, image_format: str = "mp4", labels: bool = True) -> Path:
    rng = np.random.default_rng(0)
    rig = _rig()
    frames = []
    with ClipWriter(path, rig, fps=10, image_format=image_format) as writer:
        for i in range(FRAMES):
            images = {name: rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for name in rig.names}
            t = 0.1 * i
            writer.add_frame(images, t, se3(np.eye(3), [t * 5, 0, 0]), {"front": t + 0.001, "left": t + 0.02})
            boxes = Boxes3D(
                np.array([[8.0, 0.5, 0.8]]),
                np.array([[4.0, 1.8, 1.6]]),
                np.array([0.1]),
                class_id=np.array([0]),
                track_id=np.array([3]),
            )
            frames.append(FrameLabels(boxes, {"front": Boxes2D(np.array([[10.0, 10, 30, 30]]), np.array([0]))}))
        if labels:
            writer.set_labels(ClipLabels(["car"], frames, make_provenance("ground_truth", "test")))
    return path


@pytest.fixture()
def clip(tmp_path) -> Path:
    return write_clip(tmp_path / "clip")


def _edit_rig(clip: Path, edit) -> None:
    data = yaml.safe_load((clip / "rig.yaml").read_text())
    edit(data)
    (clip / "rig.yaml").write_text(yaml.safe_dump(data))


def _errors(clip: Path) -> str:
    report = check_clip(clip)
    assert not report.ok, "expected the check to fail"
    return "\n".join(report.errors)


def test_good_clip_passes(clip, capsys):
    report = check_clip(clip)
    assert report.ok, report.errors
    assert main([str(clip)]) == 0
    printed = capsys.readouterr()
    assert "OK" in printed.out
    assert f"{2 * FRAMES}frame" in printed.err.replace(" ", "").replace("/", "")  # bar: every frame decoded
    assert main([str(clip), "--no-progress"]) == 0
    assert "decoding" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda d: d["cameras"][0].update(K=[[60, 0, 32], [0, 60, 24]]), r"cameras\[0\]\.K'.*3x3"),
        (lambda d: d["cameras"][1]["K"][0].__setitem__(0, -5.0), r"cameras\[1\]\.K'.*positive focal"),
        (
            lambda d: d["cameras"][0].update(
                ego_from_camera={"matrix": [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}
            ),
            r"cameras\[0\]\.ego_from_camera'.*orthonormal",
        ),
        (lambda d: d["cameras"][1].update(name="front"), r"unique camera names.*front"),
        (lambda d: d["cameras"][0].pop("width"), r"cameras\[0\]\.width'.*required field"),
    ],
    ids=["K-shape", "focal", "rotation", "duplicate-names", "missing-field"],
)
def test_malformed_rig(clip, edit, expected):
    _edit_rig(clip, edit)
    errors = _errors(clip)
    assert "rig.yaml" in errors
    assert __import__("re").search(expected, errors), errors


def test_missing_camera_file(clip):
    (clip / "cameras" / "left.mp4").unlink()
    errors = _errors(clip)
    assert "'left'" in errors and "cameras/left.mp4" in errors


def test_frame_count_mismatch(clip):
    lines = (clip / "frames.csv").read_text().splitlines()
    (clip / "frames.csv").write_text("\n".join(lines[:-2]) + "\n")
    errors = _errors(clip)
    assert f"holds {FRAMES} frames but frames.csv lists {FRAMES - 2}" in errors


def test_non_monotonic_timestamps(clip):
    lines = (clip / "frames.csv").read_text().splitlines()
    header = lines[0].split(",")
    row = lines[4].split(",")
    row[header.index("t_left")] = "0.05"
    lines[4] = ",".join(row)
    (clip / "frames.csv").write_text("\n".join(lines) + "\n")
    errors = _errors(clip)
    assert "column 't_left'" in errors and "must increase" in errors and "frame 3" in errors


def _move_moov_first(data: bytes) -> bytes:
    """Rewrite an MP4 with its 'moov' index before 'mdat' (as phones and ffmpeg -movflags faststart do)."""
    atoms, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        atoms.append((kind, data[offset : offset + size]))
        offset += size
    moov = bytearray(next(body for kind, body in atoms if kind == b"moov"))

    def shift_chunk_offsets(start: int, end: int) -> None:
        pos = start
        while pos + 8 <= end:
            size, kind = struct.unpack(">I4s", moov[pos : pos + 8])
            if kind in (b"trak", b"mdia", b"minf", b"stbl"):
                shift_chunk_offsets(pos + 8, pos + size)
            elif kind == b"stco":
                count = struct.unpack(">I", moov[pos + 12 : pos + 16])[0]
                for i in range(count):
                    at = pos + 16 + 4 * i
                    moov[at : at + 4] = struct.pack(">I", struct.unpack(">I", moov[at : at + 4])[0] + len(moov))
            pos += size

    shift_chunk_offsets(8, len(moov))
    kinds = [kind for kind, _ in atoms]
    first = kinds.index(b"mdat")
    ordered = [body for kind, body in atoms[:first] if kind != b"moov"] + [bytes(moov)]
    ordered += [body for kind, body in atoms[first:] if kind != b"moov"]
    return b"".join(ordered)


def test_truncated_video_reports_last_good_frame(clip):
    path = clip / "cameras" / "front.mp4"
    path.write_bytes(_move_moov_first(path.read_bytes()))
    assert check_clip(clip).ok  # the rewritten container is still valid
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    errors = _errors(clip)
    assert "front.mp4" in errors and "last good frame: " in errors
    last = int(errors.split("last good frame: ")[1].split(")")[0].split()[-1])
    assert 0 <= last < FRAMES - 1


def test_truncated_video_without_index_is_explained(clip):
    path = clip / "cameras" / "left.mp4"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    errors = _errors(clip)
    assert "left.mp4" in errors and "'moov'" in errors and "last good frame: none" in errors


def test_labels_with_unknown_camera(clip):
    document = json.loads((clip / "labels.json").read_text())
    document["frames"][2]["boxes2d"]["rear"] = document["frames"][2]["boxes2d"].pop("front")
    (clip / "labels.json").write_text(json.dumps(document))
    errors = _errors(clip)
    assert "frames[2].boxes2d" in errors and "'rear'" in errors and "front" in errors


def test_missing_image_in_folder_clip(tmp_path, capsys):
    clip = write_clip(tmp_path / "jpg_clip", image_format="jpg")
    (clip / "cameras" / "left" / "000009.jpg").unlink()
    assert main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "ERROR" in out and "left" in out and "frames.csv lists 10" in out
