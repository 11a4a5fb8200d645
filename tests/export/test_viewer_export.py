"""``perception export rerun|foxglove``: recordings read back with Rerun's own reader and the ``mcap`` library."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from clip_factory import make_clip

from perception.clip import DriveClip
from perception.export.cli import main
from perception.labels import ClipLabels, make_provenance


@pytest.fixture(scope="module")
def clip_with_predictions(tmp_path_factory) -> dict[str, Path]:
    """The 4-frame, 2-camera factory clip, a pseudo-label file (GT with scores) and a deploy-run detections file."""
    root = tmp_path_factory.mktemp("export")
    path = make_clip(root / "clip", frames=4)
    clip = DriveClip.open(path)
    pseudo = ClipLabels(clip.labels.classes, clip.labels.frames[:], make_provenance("autolabel", "tests"), None)
    for frame in pseudo.frames:
        frame.boxes3d.score[:] = 0.75
    pseudo.save(root / "pseudo.json")
    records = []
    for index in (0, 2):  # the runtime dropped frames 1 and 3
        boxes = clip.labels.frames[index].boxes3d[[0, 1]]
        record = {"index": index, "timestamp": float(clip.timestamps[index]), "boxes3d": boxes.to_dict()}
        record["boxes2d"] = {"front": clip.labels.frames[index].boxes2d["front"].to_dict()}
        records.append(json.dumps(record))
    (root / "detections.jsonl").write_text("\n".join(records) + "\n")
    return {"clip": path, "pseudo": root / "pseudo.json", "detections": root / "detections.jsonl"}


def _args(data: dict[str, Path], viewer: str, out: Path) -> list[str]:
    return [
        viewer,
        str(data["clip"]),
        "--out",
        str(out),
        "--labels",
        str(data["pseudo"]),
        "--detections",
        str(data["detections"]),
        "--no-progress",
    ]


def test_rerun_recording_reads_back_with_every_entity_and_time_point(clip_with_predictions, tmp_path):
    rr_chunk = pytest.importorskip("rerun.chunk", reason="rerun-sdk is not installed (Python >= 3.11)")
    out = tmp_path / "clip.rrd"
    assert main(_args(clip_with_predictions, "rerun", out)) == 0
    clip = DriveClip.open(clip_with_predictions["clip"])
    frames: dict[str, set[int]] = defaultdict(set)
    times: dict[str, list[int]] = defaultdict(list)
    rows: dict[str, list] = defaultdict(list)
    static: dict[str, dict] = defaultdict(dict)
    for chunk in rr_chunk.RrdReader(out).stream():
        batch = chunk.to_record_batch()
        columns = {name: batch.column(name).to_pylist() for name in batch.schema.names}
        if chunk.is_static:
            static[chunk.entity_path].update(columns)
            continue
        frames[chunk.entity_path].update(columns["frame"])
        times[chunk.entity_path] += batch.column("time").cast("int64").to_pylist()  # ns
        rows[chunk.entity_path] += list(zip(columns["frame"], columns.get("Boxes3D:centers", [None] * chunk.num_rows)))
    everything = {0, 1, 2, 3}
    for entity in [
        "/world/ego",
        "/world/ego/boxes/ground_truth",
        "/world/ego/boxes/autolabel",
        "/world/ego/boxes/deploy_run",
        "/world/cameras/front",
        "/world/cameras/front/image",
        "/world/cameras/left/image",
        "/world/cameras/front/boxes/ground_truth",
        "/world/cameras/front/boxes/deploy_run",
        "/bev/ground_truth",
    ]:
        assert frames[entity] == everything, entity
    assert "/world/trajectory" in static and "/world/cameras/left" in static
    np.testing.assert_allclose(
        np.asarray(static["/world/cameras/left"]["Pinhole:image_from_camera"][0]).reshape(3, 3).T,
        clip.rig["left"].K,
    )
    # images sit at each camera's capture time, boxes at the frame's reference time (durations, ns)
    expected = (clip.camera_timestamps["left"] * 1e9).round().astype(int).tolist()
    assert sorted(times["/world/cameras/left/image"]) == expected
    counts = {f: len(c or []) for f, c in rows["/world/ego/boxes/ground_truth"]}
    assert counts == {i: len(clip.labels.frames[i].boxes3d) for i in range(4)}
    dropped = {f: len(c or []) for f, c in rows["/world/ego/boxes/deploy_run"]}
    assert dropped == {0: 2, 1: 0, 2: 2, 3: 0}


def _decoder(schema):
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    files = descriptor_pb2.FileDescriptorSet.FromString(schema.data)
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:
        pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(schema.name))


def _read_mcap(path: Path) -> tuple[dict[str, str], dict[str, list]]:
    from mcap.reader import make_reader

    schemas, messages = {}, defaultdict(list)
    with open(path, "rb") as stream:
        reader = make_reader(stream)
        decoders = {}
        for schema, channel, message in reader.iter_messages():
            schemas[channel.topic] = schema.name
            decoder = decoders.setdefault(schema.id, _decoder(schema))
            messages[channel.topic].append((message.log_time, decoder.FromString(message.data)))
    return schemas, messages


def test_foxglove_mcap_reads_back_with_foxglove_schemas(clip_with_predictions, tmp_path):
    pytest.importorskip("foxglove", reason="foxglove-sdk is not installed")
    pytest.importorskip("mcap")
    out = tmp_path / "clip.mcap"
    assert main(_args(clip_with_predictions, "foxglove", out)) == 0
    clip = DriveClip.open(clip_with_predictions["clip"])
    schemas, messages = _read_mcap(out)
    assert schemas["/fleetvision/front/image/compressed"] == "foxglove.CompressedImage"
    assert schemas["/fleetvision/front/calibration"] == "foxglove.CameraCalibration"
    assert schemas["/fleetvision/front/annotations/deploy_run"] == "foxglove.ImageAnnotations"
    assert schemas["/fleetvision/boxes/autolabel"] == "foxglove.SceneUpdate"
    assert schemas["/fleetvision/bev/ground_truth"] == "foxglove.Grid"
    assert schemas["/tf"] == "foxglove.FrameTransforms"
    for topic in [
        "/fleetvision/left/image/compressed",
        "/fleetvision/left/calibration",
        "/fleetvision/boxes/autolabel",
    ]:
        assert len(messages[topic]) == 4, topic
    # images: the clip's own PNG bytes at each capture time
    for k, (log_time, image) in enumerate(messages["/fleetvision/left/image/compressed"]):
        assert log_time == round(clip.camera_timestamps["left"][k] * 1e9)
        assert image.data == (clip_with_predictions["clip"] / "cameras" / "left" / f"{k:06d}.png").read_bytes()
        assert image.format == "png" and image.frame_id == "fleetvision/left"
    calibration = messages["/fleetvision/left/calibration"][0][1]
    np.testing.assert_allclose(np.reshape(calibration.K, (3, 3)), clip.rig["left"].K)
    assert (calibration.width, calibration.height) == (clip.rig["left"].width, clip.rig["left"].height)
    # transforms: odom -> base_link = world_from_ego, base_link -> camera = ego_from_camera
    first = messages["/tf"][0][1].transforms
    by_child = {t.child_frame_id: t for t in first}
    mount = by_child["fleetvision/left"]
    np.testing.assert_allclose(
        [mount.translation.x, mount.translation.y, mount.translation.z], clip.rig["left"].ego_from_camera[:3, 3]
    )
    assert by_child["base_link"].parent_frame_id == "odom"
    np.testing.assert_allclose(by_child["base_link"].translation.x, clip.world_from_ego[0][0, 3])
    # 3D boxes: one cube per box, the box's size, deleted and replaced each frame
    for k, (_, update) in enumerate(messages["/fleetvision/boxes/ground_truth"]):
        boxes = clip.labels.frames[k].boxes3d
        assert len(update.entities) == len(boxes) and len(update.deletions) == 1
        sizes = sorted((round(e.cubes[0].size.x, 4), round(e.cubes[0].size.y, 4)) for e in update.entities)
        assert sizes == sorted((round(float(s[0]), 4), round(float(s[1]), 4)) for s in boxes.size)
    detections = [len(u.entities) for _, u in messages["/fleetvision/boxes/deploy_run"]]
    assert detections == [2, 0, 2, 0]
    annotations = messages["/fleetvision/front/annotations/ground_truth"][0][1]
    assert len(annotations.points) == len(clip.labels.frames[0].boxes2d["front"])
    # BEV grid: a cell read back at a known ego position holds the map value there
    grid = messages["/fleetvision/bev/ground_truth"][0][1]
    bev = clip.labels.bev
    data = np.frombuffer(grid.data, np.uint8).reshape(-1, grid.column_count, grid.cell_stride)
    for x, y in [(10.3, 5.2), (-7.7, -2.9), (0.4, 8.1)]:
        col = int((x - grid.pose.position.x) // grid.cell_size.x)
        row = int((y - grid.pose.position.y) // grid.cell_size.y)
        r, c = (int(v) for v in bev.grid.ego_to_cell(np.array([x, y])))
        assert data[row, col, 0] == bev.data[0, 0, r, c] and data[row, col, 1] == bev.data[0, 1, r, c]


def test_export_errors_name_the_problem(clip_with_predictions, tmp_path, capsys, monkeypatch):
    clip = str(clip_with_predictions["clip"])
    assert main(["rerun", clip, "--out", str(tmp_path / "x.mcap")]) == 2
    assert "expected a .rrd file" in capsys.readouterr().err
    short = tmp_path / "short.json"
    labels = ClipLabels.load(clip_with_predictions["pseudo"])
    ClipLabels(labels.classes, labels.frames[:2], labels.provenance).save(short)
    assert main(["foxglove", clip, "--out", str(tmp_path / "x.mcap"), "--labels", str(short)]) == 2
    assert "holds 2 frames" in capsys.readouterr().err
    bad = tmp_path / "detections.jsonl"
    bad.write_text('{"index": 9, "boxes3d": null}\n')
    assert main(["foxglove", clip, "--out", str(tmp_path / "x.mcap"), "--detections", str(bad)]) == 2
    assert "line 1: field 'index': expected 0..3, found 9" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "foxglove", None)
    assert main(["foxglove", clip, "--out", str(tmp_path / "y.mcap"), "--no-progress"]) == 1
    assert "foxglove is not installed" in capsys.readouterr().err
    assert not (tmp_path / "y.mcap").exists()


def test_viz_writes_viewer_recordings_by_suffix(clip_with_predictions, tmp_path):
    from mcap.reader import make_reader

    from perception.viz import main as viz_main

    clip = str(clip_with_predictions["clip"])
    assert viz_main([clip, "--out", str(tmp_path / "clip.mcap"), "--labels", str(clip_with_predictions["pseudo"])]) == 0
    with open(tmp_path / "clip.mcap", "rb") as stream:
        topics = {channel.topic for channel in make_reader(stream).get_summary().channels.values()}
    assert {"/fleetvision/boxes/ground_truth", "/fleetvision/boxes/autolabel"} <= topics
