"""The job config on jsonargparse: --print_config round trip, dotted overrides, the --teacher shorthand, the config
hash (resume depends on it), unknown class names reported."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml
from autolabel_fakes import write_blob_video

from autolabel.cli import main
from autolabel.jobconfig import build_job, dump_job_config, load_job_config

REPO = Path(__file__).resolve().parents[2]
PRESETS = sorted((REPO / "configs/autolabel/jobs").glob("*.yaml"))
BLOB = "autolabel_fakes.BlobTeacher"


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_print_config_round_trip(preset: Path, tmp_path: Path, capsys) -> None:
    assert main(["-c", str(preset), "--print_config"]) == 0
    printed = capsys.readouterr().out
    document = yaml.safe_load(printed)
    assert document["teacher"]["class_path"].startswith("autolabel.teachers.")
    assert isinstance(document["refine"], dict) and document["refine"]["min_length"] >= 1  # preset file inlined
    saved = tmp_path / "printed.yaml"
    saved.write_text(printed)
    assert dump_job_config(load_job_config(saved)) == printed  # the printed config reads back to itself


def test_dotted_overrides_and_teacher_shorthand(tmp_path: Path) -> None:
    preset = REPO / "configs/autolabel/jobs/yolox_nano_driving.yaml"
    config = load_job_config(
        preset,
        overrides=[
            "--tracking3d.min_length=5", "--teacher.score_floor=0.1", "--refine.smoothing=rts",
            "--multicam.enabled=false", "--multicam.gate_per_m=0.1",
        ],
    )  # fmt: skip
    assert config.tracking3d.min_length == 5 and config.refine.smoothing == "rts"
    assert config.multicam.enabled is False and config.multicam.gate_per_m == 0.1
    assert config.teacher.init_args.score_floor == 0.1
    assert config.teacher.init_args.class_map == "coco_to_driving"  # the rest of the preset is kept
    # --teacher KIND:PATH replaces the weights path and keeps the preset's other teacher arguments
    fleet = load_job_config(
        REPO / "configs/autolabel/jobs/fleetvision_bev.yaml", overrides=["--teacher", "fleetvision:/x/teacher.pt"]
    )
    assert fleet.teacher.init_args.checkpoint_path == "/x/teacher.pt"
    assert fleet.teacher.init_args.score_threshold == 0.05 and fleet.tracking3d.min_score == 0.1
    with pytest.raises(ValueError, match="command line"):
        load_job_config(preset, overrides=["--tracking3d.min_lenght=5"])


def test_config_hash_covers_outputs_and_weights_content_not_their_path(tmp_path: Path) -> None:
    weights = tmp_path / "a" / "blob.bin"
    weights.parent.mkdir()
    weights.write_bytes(b"weights v1")
    section = {"class_path": "autolabel_fakes.WeightsBlobTeacher", "init_args": {"weights_path": str(weights)}}
    teacher = f"--teacher={json.dumps(section)}"

    def sha(*overrides: str) -> str:
        return build_job(load_job_config(overrides=[teacher, *overrides])).config_sha256

    first = sha()
    assert sha() == first and sha("--batch_size=3", "--queue_frames=4") == first  # speed settings: same labels
    assert sha("--refine.min_length=7") != first and sha("--export=[mot]") != first
    moved = tmp_path / "b" / "blob.bin"
    moved.parent.mkdir()
    weights.rename(moved)
    teacher = teacher.replace(str(weights), str(moved))
    assert sha() == first  # the same weights elsewhere: done clips stay done
    moved.write_bytes(b"weights v2")
    assert sha() != first  # new weights relabel
    info = build_job(load_job_config(overrides=[teacher])).teacher_info
    assert info.name == "blob:blob.bin" and len(info.weights_sha256) == 64


def test_unknown_class_names_are_reported(tmp_path: Path, caplog) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(
        f"teacher: {{class_path: {BLOB}}}\nclasses: [car, truck]\nrefine: {{rigid_classes: [car, lorry]}}\n"
        "tracking3d: {gates_m: {car: 3.0, tram: 5.0}}\n"
    )
    with caplog.at_level(logging.WARNING, logger="autolabel"):
        job = build_job(load_job_config(config))
    assert job.labeler.classes == ["car", "truck", "pedestrian"]  # appended, never dropped
    messages = "\n".join(caplog.messages)
    assert "'pedestrian'" in messages and "job.yaml" in messages
    assert "refine.rigid_classes: class 'lorry'" in messages
    assert "tracking3d.gates_m: class 'tram'" in messages
    video = write_blob_video(tmp_path / "in" / "v.mp4", frames=8)
    assert main([str(video), "--out", str(tmp_path / "out"), "-c", str(config), "--no-progress"]) == 0
    labels = yaml.safe_load((tmp_path / "out" / "v" / "labels.json").read_text())
    assert labels["classes"] == ["car", "truck", "pedestrian"]
    saved = (tmp_path / "out" / "config.yaml").read_text()
    assert labels["provenance"]["config_sha256"] in saved  # the resolved config is saved beside the labels


def test_cli_errors_and_exit_codes(tmp_path: Path, capsys) -> None:
    video = write_blob_video(tmp_path / "in" / "v.mp4", frames=4)
    assert main([str(video), "--teacher", f"class_path:{BLOB}"]) == 2  # no --out
    assert "--out" in capsys.readouterr().err
    assert main([str(video), "--out", str(tmp_path / "o"), f"--teacher=class_path:{BLOB}", "--refine.nope=1"]) == 2
    assert main([str(video), "--out", str(tmp_path / "o")]) == 2  # no teacher: bad input
    assert "no teacher" in capsys.readouterr().err
