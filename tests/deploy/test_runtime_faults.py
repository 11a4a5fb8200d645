"""``deploy run`` under injected faults: a camera dying mid-clip, frames lost or late. The replay keeps going, the
dead camera reaches the model as missing (camera_valid 0) from then on, frame sets stay aligned, a silent camera is
no longer waited for, and the detections are scored against the clip's labels over time and on the remaining
field of view."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deploy.cli import main as deploy_main
from deploy.runtime import DeployedModel, Runtime, RuntimeConfig
from deploy.runtime.faults import FaultPlan, FaultSpecError
from deploy.runtime.quality import FrameRecord, ground_truth_table, score_frames
from perception.clip import DriveClip
from perception.geometry import BevGrid
from perception.labels import DRIVING_CLASSES
from perception.rig import ring_rig


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """20 frames at 20 Hz, the tiny model's 2-camera rig."""
    from synthetic_clip import write_synthetic_clip

    return write_synthetic_clip(
        tmp_path_factory.mktemp("long") / "clip", rig=ring_rig(num_cameras=2, width=160, height=96), frames=20, seed=2
    )


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_fault_specs_parse_and_decide_deterministically():
    plan = FaultPlan.parse(["dead:cam1@0.25", "lost:0.3", "late:0.5:80:cam0"], seed=4)
    assert plan.dead == {"cam1": 0.25} and plan.lost == (("*", 0.3),) and plan.late == (("cam0", 0.5, 0.08),)
    assert plan.fate("cam1", 9, 0.25).dead and not plan.fate("cam1", 4, 0.2).dead
    fates = [plan.fate("cam0", i, 0.0) for i in range(400)]
    assert fates == [plan.fate("cam0", i, 0.0) for i in range(400)]  # same seed, same fates
    lost = np.mean([f.lost for f in fates])
    late = np.mean([f.delay_s > 0 for f in fates if not f.lost])
    assert 0.24 < lost < 0.36 and 0.42 < late < 0.58
    assert all(f.delay_s == 0 for f in (plan.fate("cam1", i, 0.0) for i in range(50)))  # late only on cam0
    other = FaultPlan.parse(["lost:0.3"], seed=5)
    assert [other.fate("cam0", i, 0.0).lost for i in range(400)] != [f.lost for f in fates]
    assert plan.cameras() == {"cam0", "cam1"}
    with pytest.raises(FaultSpecError, match="dead:CAMERA@SECONDS"):
        FaultPlan.parse(["dead:cam1"])
    with pytest.raises(FaultSpecError, match=r"outside \[0, 1\]"):
        FaultPlan.parse(["lost:1.5"])
    with pytest.raises(FaultSpecError, match="unknown kind"):
        FaultPlan.parse(["freeze:cam0"])
    with pytest.raises(FaultSpecError, match="does not have"):
        plan.check_cameras(["cam0"])


def test_fast_replay_with_lost_frames_stays_aligned(exported, tmp_path):
    """Without a clock every frame index is processed once, with exactly the lost images marked missing."""
    model_path, _, clip = exported
    plan = FaultPlan.parse(["lost:0.5:cam1"], seed=1)
    runtime = Runtime(DeployedModel.load(model_path), RuntimeConfig(realtime=False, score_threshold=0.0))
    summary = runtime.run_clip(clip, out_dir=tmp_path, faults=plan)
    lines = _lines(tmp_path / "detections.jsonl")
    assert [line["index"] for line in lines] == list(range(6))
    expected = [not plan.fate("cam1", i, 0.0).lost for i in range(6)]
    assert [line["camera_valid"]["cam1"] for line in lines] == expected
    assert all(line["camera_valid"]["cam0"] for line in lines)
    assert summary.injected["lost"] == expected.count(False) > 0
    assert summary.faults == ["cam1: frames lost with p=0.5"]
    assert summary.quality is not None and summary.quality["frames"] == 6
    assert summary.quality["windows"][0]["cameras_delivering"] < 2.0


def test_camera_dying_mid_clip_in_real_time(exported, long_clip, tmp_path):
    """The dead camera is missing from every set after its death, goes silent (no longer waited for) and the
    replay processes the rest of the clip with the other camera."""
    model_path, _, _ = exported
    runtime = Runtime(DeployedModel.load(model_path), RuntimeConfig(rate_hz=20.0, realtime=True, silent_after_sets=2))
    summary = runtime.run_clip(long_clip, out_dir=tmp_path, faults=FaultPlan.parse(["dead:cam1@0.3"]))
    lines = _lines(tmp_path / "detections.jsonl")
    assert summary.frames_processed + summary.frames_dropped == 20
    start = min(lines[0]["camera_timestamps"].values())
    delivered_cam1 = [line["camera_timestamps"]["cam1"] - start for line in lines if line["camera_valid"]["cam1"]]
    assert delivered_cam1 and max(delivered_cam1) < 0.3 - 1e-9  # no cam1 image captured after its death
    assert not any(line["camera_valid"]["cam1"] for line in lines[-3:])
    assert all(line["camera_valid"]["cam0"] for line in lines[-3:])
    silent = [e for e in summary.camera_events if e["event"] == "silent"]
    assert [e["camera"] for e in silent] == ["cam1"]
    assert "fault injected" in summary.missing_cameras["cam1"]
    assert summary.quality["frames"] == summary.frames_processed
    stored = json.loads((tmp_path / "summary.json").read_text())
    assert stored["faults"] == ["camera cam1 dies at 0.3 s"] and stored["quality"]["windows"]


def test_quality_scores_the_remaining_field_of_view(exported):
    """Perfect detections score the same NDS on the field of view left by a dead camera; detections that miss
    what only the dead camera sees lose NDS over the whole grid but not on the remaining field of view."""
    _, _, clip_path = exported
    clip = DriveClip.open(clip_path)
    model_classes = list(DRIVING_CLASSES)
    grid = BevGrid(-25.0, 25.0, -25.0, 25.0, 1.0)
    rig = clip.rig
    full, blind = [], []
    for index in range(clip.num_frames):
        gt = ground_truth_table(clip.labels.frames[index].boxes3d, clip.labels.classes, model_classes, grid)
        perfect = {**gt, "score": np.ones(len(gt["center"]))}
        from perception.corruptions import in_field_of_view

        seen = in_field_of_view(gt["center"], [rig["cam0"]])
        missed = {k: v[seen] for k, v in perfect.items()}
        camera_from_ego = np.stack([rig[name].camera_from_ego for name in rig.names])
        full.append(FrameRecord(index, index / 20, perfect, ["cam0", "cam1"], camera_from_ego, False, 10.0))
        blind.append(FrameRecord(index, index / 20, missed, ["cam0"], camera_from_ego, False, 10.0))
    kwargs = dict(rig=rig, cameras=rig.names, classes=model_classes, grid=grid, window_s=0.1)
    clean = score_frames(full, clip.labels, **kwargs)
    faulted = score_frames(blind, clip.labels, **kwargs)
    clean_on_faulted_view = score_frames(full, clip.labels, field_of_view=blind, **kwargs)
    assert clean["mAP"] > 0.99 and clean["field_of_view"]["mAP"] > 0.99
    assert faulted["mAP"] < clean["mAP"] - 0.05  # objects only cam1 saw are lost over the whole grid...
    assert faulted["field_of_view"]["NDS"] == pytest.approx(clean_on_faulted_view["field_of_view"]["NDS"])  # ...only
    assert len(clean["windows"]) == 3 and all(w["frames"] == 2 for w in clean["windows"])


def test_cli_run_with_faults(exported, tmp_path, capsys):
    model_path, _, clip = exported
    out = tmp_path / "run"
    code = deploy_main(
        ["run", str(model_path), "--clip", str(clip), "--fast", "--out", str(out), "--fault", "dead:cam1@0.1"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "injected fault: camera cam1 dies at 0.1 s" in printed and "detection quality vs labels" in printed
    lines = _lines(out / "detections.jsonl")
    assert [line["camera_valid"]["cam1"] for line in lines] == [True, True, False, False, False, False]
    assert (out / "quality.png").stat().st_size > 0
    assert deploy_main(["run", str(model_path), "--clip", str(clip), "--fault", "dead:cam9@1"]) == 2
    assert deploy_main(["run", str(model_path), "--clip", str(clip), "--fault", "lost:2"]) == 2
    assert "--fault" in capsys.readouterr().err
