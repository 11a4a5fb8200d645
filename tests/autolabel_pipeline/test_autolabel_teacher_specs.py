"""``--teacher`` specs and config sections build the right teacher with the COCO -> driving class map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autolabel.jobconfig import build_teacher, load_job_config, parse_teacher_spec

SHARED = Path(__file__).resolve().parents[2] / "../shared/data"
YOLOX = SHARED / "models/yolox_nano_coco/yolox_nano.onnx"


def test_parse_teacher_spec() -> None:
    assert parse_teacher_spec("m/yolox_nano.onnx") == {"kind": "yolox_onnx", "path": "m/yolox_nano.onnx"}
    assert parse_teacher_spec("torchvision:fcos_resnet50_fpn:/w.pth") == {
        "kind": "torchvision",
        "arch": "fcos_resnet50_fpn",
        "path": "/w.pth",
    }
    assert parse_teacher_spec("runs/teacher.ckpt") == {"kind": "fleetvision", "path": "runs/teacher.ckpt"}
    with pytest.raises(ValueError, match="expected a .onnx"):
        parse_teacher_spec("weights.bin")


def test_config_errors_name_the_file_and_field(tmp_path: Path) -> None:
    config = tmp_path / "job.yaml"
    config.write_text("teacher: {kind: yolox_onnx, path: x.onnx}\nexporters: [coco]\n")
    with pytest.raises(ValueError, match=r"job.yaml: unknown sections \['exporters'\]"):
        load_job_config(config)
    config.write_text("teacher: {kind: yolo, path: x.onnx}\n")
    with pytest.raises(ValueError, match="teacher.kind"):
        load_job_config(config)


@pytest.mark.skipif(not YOLOX.is_file(), reason=f"shared data absent ({YOLOX})")
def test_yolox_teacher_maps_coco_to_driving_classes() -> None:
    teacher, info = build_teacher({"kind": "yolox_onnx", "path": str(YOLOX)})
    assert set(teacher.class_names) == {"pedestrian", "cyclist", "car", "bus", "truck"}
    assert len(info.weights_sha256) == 64 and not info.predicts_3d


def test_torchvision_teacher_from_local_state_dict(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    torch.manual_seed(0)
    model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=91)
    weights = tmp_path / "ssdlite.pth"
    torch.save(model.state_dict(), weights)
    config = load_job_config(None, teacher_spec=f"torchvision:ssdlite320_mobilenet_v3_large:{weights}")
    teacher, info = build_teacher(config.teacher)
    assert info.name == "torchvision:ssdlite320_mobilenet_v3_large"
    assert set(teacher.class_names) == {"pedestrian", "cyclist", "car", "bus", "truck"}
    detections = teacher.predict_batch([np.full((120, 160, 3), 90, np.uint8)])
    assert len(detections) == 1
    assert np.all(detections[0].class_id < len(teacher.class_names))
