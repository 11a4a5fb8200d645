"""The runtime loop's parts on their own: ``FrameStep`` (stale sets, drops, state resets, sync, the state carried)
and the sinks (JSON lines committed atomically, run statistics)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from deploy.metadata import read_metadata
from deploy.runtime import DeployedModel
from deploy.runtime.deadline import DropFilter
from deploy.runtime.sinks import JsonlSink, RunStats
from deploy.runtime.sources import CameraFrame
from deploy.runtime.step import FrameStep
from perception.clip import DriveClip
from perception.geometry import invert_se3


class StateSession:
    """Fake session: outputs zeros, except ``state`` = the call number; keeps the feeds it saw."""

    def __init__(self, metadata: dict) -> None:
        self.outputs = metadata["outputs"]
        self.feeds: list[dict[str, np.ndarray]] = []

    def run(self, names, feeds):
        self.feeds.append(feeds)
        return [
            np.full(spec["shape"], len(self.feeds) if spec["name"] == "state" else 0, dtype=spec["dtype"])
            for spec in self.outputs
        ]


@pytest.fixture()
def setup(exported):
    model_path, _, clip_path = exported
    metadata = read_metadata(model_path)
    session = StateSession(metadata)
    model = DeployedModel(metadata, session)
    clip = DriveClip.open(clip_path)
    frames = list(clip.frames())
    step = FrameStep(
        model,
        rig=clip.rig,
        clip=clip,
        clock=None,
        drop_filter=DropFilter(period_s=0.05),
        sync_tolerance_s=0.02,
        max_gap_s=1.5 * 0.05,
        deadline_ms=1e6,
        score_threshold=0.3,
        score_threshold_2d=0.3,
        first_index=0,
    )
    return step, session, clip, frames


def _set(clip: DriveClip, frames, index: int, delay_s: dict[str, float] | None = None) -> dict[str, CameraFrame]:
    now = time.perf_counter()
    return {
        name: CameraFrame(
            name, index, float(clip.camera_timestamps[name][index]) + (delay_s or {}).get(name, 0.0), image, 1.0, now
        )
        for name, image in frames[index].images.items()
    }


def test_frame_step_decides_drops_resets_and_carries_state(setup):
    step, session, clip, frames = setup
    first = step.process(_set(clip, frames, 0), time.perf_counter())
    assert first is not None and first.index == 0 and first.dropped == 0
    assert not first.continuing and not first.state_reset and not first.out_of_sync
    assert session.feeds[0]["state_valid"][0] == 0.0
    assert step.process(_set(clip, frames, 0), time.perf_counter()) is None and step.stale_sets == 1

    jumped = step.process(_set(clip, frames, 3), time.perf_counter())  # frames 1, 2 missed: a 150 ms gap
    assert jumped.dropped == 2 and jumped.state_reset and not jumped.continuing
    assert session.feeds[-1]["state_valid"][0] == 0.0
    np.testing.assert_array_equal(session.feeds[-1]["prev_from_curr"][0], np.eye(4))

    late = step.process(_set(clip, frames, 4, {"cam1": 0.03}), time.perf_counter())
    assert late.continuing and late.dropped == 0 and late.out_of_sync
    feeds = session.feeds[-1]
    assert feeds["state_valid"][0] == 1.0 and np.all(feeds["prev_state"] == 2)  # the previous call's state
    expected = invert_se3(clip.world_from_ego[3]) @ clip.world_from_ego[4]
    np.testing.assert_allclose(feeds["prev_from_curr"][0], expected, atol=1e-6)
    # the late camera is placed at its own capture time
    capture = float(clip.camera_timestamps["cam1"][4]) + 0.03
    np.testing.assert_allclose(late.camera_from_ego[1], clip.camera_from_ego(4, "cam1", capture), atol=1e-9)
    assert set(late.latency_ms) >= {"preprocess", "inference", "postprocess", "sensor_to_output"}


def test_sinks_write_lines_atomically_and_count(setup, tmp_path: Path):
    step, _, clip, frames = setup
    results = [step.process(_set(clip, frames, i), time.perf_counter()) for i in (0, 1, 3)]
    jsonl, stats = JsonlSink(tmp_path, step.model.cameras), RunStats()
    for result in results:
        jsonl.write(result)
        stats.write(result)
    jsonl.close()
    assert not (tmp_path / "detections.jsonl").exists()  # only the temporary file until committed
    assert jsonl.commit() == tmp_path / "detections.jsonl" and not list(tmp_path.glob(".*.tmp"))
    lines = [json.loads(line) for line in (tmp_path / "detections.jsonl").read_text().splitlines()]
    assert lines == [json.loads(json.dumps(r.record(step.model.cameras))) for r in results]
    assert [line["frames_dropped_before"] for line in lines] == [0, 0, 1]
    assert lines[0]["camera_valid"] == {"cam0": True, "cam1": True}
    assert stats.counts() == {
        "frames_processed": 3,
        "frames_dropped": 1,
        "deadline_misses": 0,
        "out_of_sync_sets": 0,
        "state_resets": 1,
    }
    assert set(stats.stages_ms()["inference"]) == {"p50", "p90", "p99", "max", "mean"}
