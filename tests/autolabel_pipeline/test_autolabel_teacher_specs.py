"""``--teacher`` specs and config sections build the right teacher with the COCO -> driving class map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autolabel.jobconfig import build_job, load_job_config, parse_teacher_spec

SHARED = Path(__file__).resolve().parents[2] / "../shared/data"
YOLOX = SHARED / "models/yolox_nano_coco/yolox_nano.onnx"
YOLOX_CLASS = "autolabel.teachers.onnx_yolox.OnnxYoloxTeacher"


def test_parse_teacher_spec() -> None:
    assert parse_teacher_spec("m/yolox_nano.onnx") == {  # the layout is read from the model
        "class_path": "autolabel.teachers.onnx_detector.OnnxDetectorTeacher",
        "init_args": {"model_path": "m/yolox_nano.onnx"},
    }
    assert parse_teacher_spec("yolox:m/x.onnx") == {"class_path": YOLOX_CLASS, "init_args": {"model_path": "m/x.onnx"}}
    assert parse_teacher_spec("ultralytics:y.onnx")["init_args"] == {"model_path": "y.onnx", "layout": "ultralytics"}
    assert parse_teacher_spec("torchvision:fcos_resnet50_fpn:/w.pth") == {
        "class_path": "autolabel.teachers.torchvision_teacher.TorchvisionTeacher",
        "init_args": {"arch": "fcos_resnet50_fpn", "weights_path": "/w.pth"},
    }
    assert parse_teacher_spec("runs/teacher.ckpt") == {
        "class_path": "autolabel.teachers.fleetvision.FleetvisionTeacher",
        "init_args": {"checkpoint_path": "runs/teacher.ckpt"},
    }
    assert parse_teacher_spec("fleetvision:a.pt,b.pt")["init_args"] == {"checkpoint_path": ["a.pt", "b.pt"]}
    assert parse_teacher_spec("class_path:autolabel_fakes.BlobTeacher") == {"class_path": "autolabel_fakes.BlobTeacher"}
    assert parse_teacher_spec("autolabel_fakes.BlobTeacher") is None  # a class path: jsonargparse resolves it
    with pytest.raises(ValueError, match="expected a .onnx"):
        parse_teacher_spec("weights.bin")


def test_config_errors_name_the_file_and_field(tmp_path: Path) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(f"teacher: {{class_path: {YOLOX_CLASS}, init_args: {{model_path: x.onnx}}}}\nexporters: [coco]\n")
    with pytest.raises(ValueError, match=r"job.yaml: unknown sections \['exporters'\]"):
        load_job_config(config)
    config.write_text("teacher: {kind: yolo, path: x.onnx}\n")  # the layout before class_path/init_args
    with pytest.raises(ValueError, match="job.yaml: field 'teacher'"):
        load_job_config(config)
    config.write_text("teacher: {class_path: autolabel.teachers.onnx_yolox.YoloTeacher}\n")
    with pytest.raises(ValueError, match=r"(?s)job.yaml: .*YoloTeacher"):
        load_job_config(config)
    config.write_text("refine: {min_lenght: 3}\n")
    with pytest.raises(ValueError, match=r"(?s)job.yaml: .*min_lenght"):
        load_job_config(config)
    config.write_text("export: [coco, parquet]\n")
    with pytest.raises(ValueError, match=r"(?s)job.yaml: .*export"):
        load_job_config(config)
    with pytest.raises(ValueError, match=r"(?s)command line: .*smoothing"):
        load_job_config(overrides=["--refine.smoothing=spline"])


@pytest.mark.shared_data
@pytest.mark.skipif(not YOLOX.is_file(), reason=f"shared data absent ({YOLOX})")
def test_yolox_teacher_maps_coco_to_driving_classes() -> None:
    job = build_job(load_job_config(overrides=["--teacher", str(YOLOX)]))
    assert set(job.labeler.teacher.class_names) == {"pedestrian", "cyclist", "car", "bus", "truck"}
    assert len(job.teacher_info.weights_sha256) == 64 and not job.teacher_info.predicts_3d
    assert job.teacher_info.name == "yolox_onnx:yolox_nano.onnx"


def test_torchvision_teacher_from_local_state_dict(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    torch.manual_seed(0)
    model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=91)
    weights = tmp_path / "ssdlite.pth"
    torch.save(model.state_dict(), weights)
    job = build_job(load_job_config(overrides=["--teacher", f"torchvision:ssdlite320_mobilenet_v3_large:{weights}"]))
    teacher, info = job.labeler.teacher, job.teacher_info
    assert info.name == "torchvision:ssdlite320_mobilenet_v3_large"
    assert set(teacher.class_names) == {"pedestrian", "cyclist", "car", "bus", "truck"}
    detections = teacher.predict_batch([np.full((120, 160, 3), 90, np.uint8)])
    assert len(detections) == 1
    assert np.all(detections[0].class_id < len(teacher.class_names))
