"""The in-vehicle runtime: torch-free replay, deadline drops, missing/short streams (input preparation equal to
training: ``test_model_input_paths.py``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from synthetic_clip import write_synthetic_clip

from deploy.metadata import read_metadata
from deploy.runtime import DeployedModel, Runtime, RuntimeConfig
from deploy.runtime.deadline import DropFilter
from perception.rig import ring_rig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """20 frames at 20 Hz, the tiny model's 2-camera rig."""
    return write_synthetic_clip(
        tmp_path_factory.mktemp("long") / "clip",
        rig=ring_rig(num_cameras=2, width=160, height=96),
        frames=20,
        fps=20.0,
        seed=2,
    )


class SlowSession:
    """A fake inference session: sleeps ``delay_s`` then returns zeros shaped like the model's outputs."""

    def __init__(self, metadata: dict, delay_s: float) -> None:
        self.outputs = metadata["outputs"]
        self.delay_s = delay_s
        self.calls = 0

    def run(self, names, feeds):
        self.calls += 1
        assert feeds["images"].dtype == np.uint8
        time.sleep(self.delay_s)
        return [np.zeros(spec["shape"], dtype=spec["dtype"]) for spec in self.outputs]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_runtime_runs_with_torch_blocked(exported, tmp_path):
    model_path, _, clip = exported
    script = f"""
import sys, json
sys.modules["torch"] = None  # any 'import torch' now raises ImportError
import deploy.runtime
from deploy.runtime import DeployedModel, Runtime, RuntimeConfig
summary = Runtime(DeployedModel.load({str(model_path)!r}), RuntimeConfig(realtime=False)).run_clip(
    {str(clip)!r}, out_dir={str(tmp_path / "out")!r})
loaded = sorted(name for name, module in sys.modules.items()
                if (name == "torch" or name.startswith("torch.")) and module is not None)
print(json.dumps({{"processed": summary.frames_processed, "torch_modules": loaded}}))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"processed": 6, "torch_modules": []}
    lines = _lines(tmp_path / "out" / "detections.jsonl")
    assert [line["index"] for line in lines] == list(range(6))
    assert lines[0]["state_reset"] and not lines[1]["state_reset"]
    assert set(lines[0]["boxes3d"]) == {"center", "size", "yaw", "velocity", "class_id", "score", "track_id"}
    assert set(lines[0]["latency_ms"]) >= {"decode", "preprocess", "inference", "postprocess", "sensor_to_output"}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames_processed"] == 6 and summary["frames_dropped"] == 0
    assert summary["stages_ms"]["inference"]["p99"] > 0


def test_realtime_replay_outputs_detections_and_video(exported, tmp_path):
    model_path, _, clip = exported
    model = DeployedModel.load(model_path)
    summary = Runtime(
        model,
        RuntimeConfig(rate_hz=20.0, realtime=True, score_threshold=0.0, score_threshold_2d=0.0, sync_timeout_s=2.0),
    ).run_clip(clip, out_dir=tmp_path, video_path=tmp_path / "out.mp4")
    assert summary.frames_processed + summary.frames_dropped == 6
    assert summary.video == str(tmp_path / "out.mp4") and (tmp_path / "out.mp4").stat().st_size > 0
    first = _lines(tmp_path / "detections.jsonl")[0]
    assert len(first["boxes3d"]["score"]) == 20  # threshold 0 keeps every top-K slot
    assert set(first["boxes2d"]) == {"cam0", "cam1"}
    xyxy = np.asarray(first["boxes2d"]["cam0"]["xyxy"])
    assert xyxy.shape == (10, 4)


def test_late_inference_drops_to_newest_frame(exported, long_clip):
    model_path, _, _ = exported
    metadata = read_metadata(model_path)
    session = SlowSession(metadata, delay_s=0.12)  # > the 50 ms period at 20 Hz
    model = DeployedModel(metadata, session)
    summary = Runtime(model, RuntimeConfig(rate_hz=20.0, realtime=True, drop_filter_tau_s=0.2)).run_clip(long_clip)
    assert summary.frames_dropped > 0
    assert summary.frames_processed < 20
    assert summary.frames_processed + summary.frames_dropped == 20
    assert summary.deadline_misses > 0
    assert summary.state_resets > 0  # a gap longer than 1.5 periods resets the recurrent state
    assert summary.drop_filtered_peak_percent > 0


def test_fast_mode_never_drops(exported, long_clip):
    model_path, _, _ = exported
    metadata = read_metadata(model_path)
    session = SlowSession(metadata, delay_s=0.02)
    summary = Runtime(DeployedModel(metadata, session), RuntimeConfig(realtime=False)).run_clip(long_clip)
    assert summary.frames_processed == 20 and summary.frames_dropped == 0 and session.calls == 20
    assert summary.state_resets == 0


def test_drop_filter_alerts_above_threshold():
    drops = DropFilter(period_s=0.05, tau_s=0.5, alert_threshold=0.2)
    for _ in range(5):
        drops.update(0)
    assert drops.value == 0 and not drops.alerting
    for _ in range(60):
        drops.update(1)  # every other frame dropped: fraction 0.5
    assert drops.alerting and 0.4 < drops.value <= 0.5
    for _ in range(200):
        drops.update(0)
    assert not drops.alerting and drops.alerts > 0


def test_missing_camera_video_keeps_running(exported, tmp_path):
    model_path, _, clip = exported
    broken = tmp_path / "clip"
    shutil.copytree(clip, broken)
    (broken / "cameras" / "cam1.mp4").unlink()
    summary = Runtime(DeployedModel.load(model_path), RuntimeConfig(realtime=False)).run_clip(broken, out_dir=tmp_path)
    assert "cam1" in summary.missing_cameras and "no video" in summary.missing_cameras["cam1"]
    assert summary.frames_processed == 6
    lines = _lines(tmp_path / "detections.jsonl")
    assert all(line["camera_valid"] == {"cam0": True, "cam1": False} for line in lines)


def test_camera_stream_ending_early_is_reported(exported, tmp_path):
    model_path, _, clip = exported
    from perception.video import VideoReader, VideoWriter

    short = tmp_path / "clip"
    shutil.copytree(clip, short)
    video = short / "cameras" / "cam1.mp4"
    frames = list(VideoReader(video))[:3]
    video.unlink()
    with VideoWriter(video, 20.0, (frames[0].shape[1], frames[0].shape[0])) as writer:
        for frame in frames:
            writer.write(frame)
    summary = Runtime(DeployedModel.load(model_path), RuntimeConfig(realtime=False)).run_clip(short, out_dir=tmp_path)
    assert summary.frames_processed == 6
    assert "cam1" in summary.missing_cameras and "3 frames" in summary.missing_cameras["cam1"]
    valid = [line["camera_valid"]["cam1"] for line in _lines(tmp_path / "detections.jsonl")]
    assert valid == [True, True, True, False, False, False]
