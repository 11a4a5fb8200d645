"""``perception robustness``: corrupted inputs reach the model as the runtime would send them, RR / mRR / the
field-of-view scores are computed right (checked with an oracle model), and the command writes its report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from clip_factory import make_clip, save_tiny_checkpoint

from perception.corruptions import ClipCorruption, in_field_of_view
from perception.training.robustness import RobustnessEvaluation, _field_mask, main, robobev_rr, summarise


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint of a tiny random bev_tiny, folder of two 4-frame 2-camera clips)."""
    root = tmp_path_factory.mktemp("robust")
    for i in range(2):
        make_clip(root / "test" / f"clip_{i}", frames=4)
    checkpoint = save_tiny_checkpoint(root / "tiny.pt")
    return checkpoint, root / "test"


class OracleModel:
    """Returns the ground truth as its detections, but only where a camera whose image arrived can see it."""

    def __init__(self, evaluation: RobustnessEvaluation) -> None:
        self.evaluation, self.model, self.calls = evaluation, evaluation.model, 0

    def head_grid(self):
        return self.model.head_grid()

    def initial_state(self, batch: int) -> torch.Tensor:
        return self.model.initial_state(batch)

    def forward_window(self, images, intrinsics, camera_from_ego, distortion, camera_valid, state, *rest):
        chunk = self.evaluation.chunks[self.calls % len(self.evaluation.chunks)]
        self.calls += 1
        sample = chunk.sample
        grid = self.model.head_grid()
        rows, cols = sample["heatmap"].shape[-2:]
        x = grid["x_max"] - (np.arange(rows) + 0.5) * grid["resolution"]
        y = grid["y_max"] - (np.arange(cols) + 0.5) * grid["resolution"]
        cells = np.stack(np.meshgrid(x, y, indexing="ij"), -1).reshape(-1, 2)
        heatmaps = []
        for t in range(len(chunk.frames)):
            points = np.column_stack([cells, np.full(len(cells), 0.8)])
            seen = _field_mask(sample, t, camera_valid[0, t].numpy() > 0, points).reshape(rows, cols)
            peak = (sample["heatmap"][t] >= 1.0) & seen
            heatmaps.append(np.where(peak, 10.0, -10.0).astype(np.float32))
        out = {"heatmap": torch.from_numpy(np.stack(heatmaps))[None]}
        for key in ("offset", "z", "size", "yaw", "velocity"):
            out[key] = torch.from_numpy(sample[key])[None].float()
        out["state"] = state[:, None].expand(1, len(chunk.frames), *state.shape[1:])
        return out


def test_corrupted_inputs_reach_the_model_as_the_runtime_sends_them(split):
    checkpoint, clips = split
    evaluation = RobustnessEvaluation(checkpoint, sorted(clips.iterdir()))
    chunk = evaluation.chunks[0]
    images, valid = evaluation.inputs(None, chunk)
    assert valid.all() and images.any()
    crashed_images, crashed = evaluation.inputs(ClipCorruption("camera_crash", 1), chunk)
    assert (crashed == 0).sum() == len(chunk.frames)  # one of two cameras dead in every frame
    assert np.all(crashed_images[crashed == 0] == 0)
    np.testing.assert_array_equal(crashed_images[crashed > 0], images[crashed > 0])
    fogged, fog_valid = evaluation.inputs(ClipCorruption("fog", 2), chunk)
    assert fog_valid.all() and np.abs(fogged.astype(int) - images).mean() > 5
    again, _ = evaluation.inputs(ClipCorruption("fog", 2), chunk)
    np.testing.assert_array_equal(again, fogged)  # deterministic for the seed


def test_oracle_scores_rr_and_the_remaining_field_of_view(split):
    checkpoint, clips = split
    evaluation = RobustnessEvaluation(checkpoint, sorted(clips.iterdir()))
    evaluation.model = OracleModel(evaluation)
    clean = evaluation.run(None)
    assert clean["mAP"] > 0.9  # the oracle finds every object the cameras see
    crash = evaluation.run(ClipCorruption("camera_crash", 1))
    fog = evaluation.run(ClipCorruption("fog", 3))
    assert fog["NDS"] == pytest.approx(clean["NDS"])  # images do not matter to the oracle
    assert crash["mAP"] < clean["mAP"] - 0.1  # objects only the dead camera saw are missed...
    field = crash["field_of_view"]
    assert field["NDS"] == pytest.approx(field["clean_NDS"], abs=1e-6)  # ...but none the live camera sees
    summary = summarise(clean, {"camera_crash": {"1": crash}, "fog": {"3": fog}})
    assert summary["corruptions"]["fog"]["RR"] == pytest.approx(1.0)
    assert summary["corruptions"]["camera_crash"]["RR"] == pytest.approx(crash["NDS"] / clean["NDS"])
    assert summary["corruptions"]["camera_crash"]["field_of_view_RR"] == pytest.approx(1.0)
    assert summary["mRR"] == pytest.approx((1.0 + crash["NDS"] / clean["NDS"]) / 2)


def test_in_field_of_view_follows_the_live_cameras():
    from perception.rig import ring_rig

    rig = ring_rig(num_cameras=4, width=160, height=96, hfov_deg=80.0)
    ahead, behind, above = [10.0, 0.0, 0.5], [-10.0, 0.0, 0.5], [0.0, 0.0, 30.0]
    points = np.array([ahead, behind, above])
    assert in_field_of_view(points, list(rig)).tolist() == [True, True, False]
    front_only = [camera for camera in rig if camera.name == rig.names[0]]
    assert in_field_of_view(points, front_only).tolist() == [True, False, False]
    assert in_field_of_view(points, []).tolist() == [False, False, False]


def test_command_writes_the_report(split, tmp_path, capsys):
    checkpoint, clips = split
    out = tmp_path / "report"
    code = main(
        [str(checkpoint), "--data", str(clips), "--out", str(out), "--corruptions", "camera_crash", "snow",
         "--severities", "1", "3", "--rendered", f"fog:2={clips}", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    report = json.loads((out / "robustness.json").read_text())
    assert set(report["corruptions"]) == {"camera_crash", "snow"}
    assert set(report["corruptions"]["snow"]["severities"]) == {"1", "3"}
    assert report["frames"] == 8 and report["clips"] == 2
    assert "field_of_view_RR" in report["corruptions"]["camera_crash"]
    assert report["rendered"]["fog"]["2"]["same_clips_as_clean"]
    assert report["rendered"]["fog"]["2"]["NDS"] == report["clean"]["NDS"]  # the same clips: the same score
    markdown = (out / "robustness.md").read_text()
    assert "| camera_crash |" in markdown and "RoboBEV DETR3D" in markdown
    import cv2

    picture = cv2.imread(str(out / "corruptions.png"))
    assert picture is not None and picture.shape[0] > 100
    assert main([str(checkpoint), "--data", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert main([str(checkpoint), "--data", str(clips), "--out", str(out), "--corruptions", "hail"]) == 2
    assert main([str(checkpoint), "--data", str(clips), "--out", str(out), "--rendered", "fog"]) == 2
    assert "hail" in capsys.readouterr().err


def test_robobev_reference_rows():
    table = robobev_rr()
    assert table["DETR3D"]["mRR"] == pytest.approx(0.7077, abs=0.002)  # the README's mRR 70.77
    assert table["BEVFormer-Base"]["mRR"] == pytest.approx(0.6040, abs=0.002)
    assert table["BEVDet-SwinT"]["mRR"] == pytest.approx(0.4626, abs=0.002)
