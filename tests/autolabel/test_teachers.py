import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from autolabel.teachers import COCO80_NAMES, COCO91_NAMES, class_wise_nms, letterbox, load_class_map
from autolabel.teachers.base import ClassMapper, resolve_class_map
from autolabel.teachers.onnx_yolox import decode_yolox
from perception.geometry import box_iou
from perception.labels import DRIVING_CLASSES, Boxes2D


def test_coco_tables():
    assert len(COCO80_NAMES) == 80 and len(COCO91_NAMES) == 91
    assert COCO91_NAMES[1] == "person" and COCO91_NAMES[3] == "car" and COCO91_NAMES[13] == "stop sign"


def test_class_map_yaml_and_mapper():
    mapping, source = resolve_class_map("coco_to_driving", COCO80_NAMES)  # the one COCO -> driving map
    assert mapping == load_class_map(source, COCO80_NAMES) and source.endswith("coco_to_driving.yaml")
    assert mapping[0] == "pedestrian" and mapping[2] == "car" and 11 not in mapping and 4 not in mapping
    assert mapping[1] == mapping[3] == "cyclist"  # bicycle, motorcycle
    assert set(mapping.values()) <= set(DRIVING_CLASSES)  # every target is a class the students train on
    mapper = ClassMapper(mapping, COCO80_NAMES)
    assert mapper.class_names == ["pedestrian", "cyclist", "car", "bus", "truck"]
    assert mapper(np.array([0, 2, 4, 500])).tolist() == [0, 2, -1, -1]


def test_class_map_errors_name_the_class_and_file(tmp_path):
    bad = tmp_path / "map.yaml"
    bad.write_text("mapping: {person: pedestrian, pedestrain: pedestrian}\n")
    with pytest.raises(ValueError, match=r"map.yaml: field 'mapping': source classes \['pedestrain'\]"):
        resolve_class_map(str(bad), COCO80_NAMES)
    with pytest.raises(ValueError, match="class_map: expected a packaged map"):
        resolve_class_map("coco_to_drivng", COCO80_NAMES)
    with pytest.raises(ValueError, match="'lorry'"):
        resolve_class_map({"lorry": "truck"}, COCO80_NAMES)


def test_letterbox_keeps_aspect_top_left_or_centred():
    frame = np.full((480, 640, 3), 7, np.uint8)
    boxed = letterbox(frame, (416, 416))
    assert boxed.image.shape == (416, 416, 3) and boxed.scale == pytest.approx(0.65)
    assert (boxed.image[:312] == 7).all() and (boxed.image[312:] == 114).all()
    centred = letterbox(frame, (416, 416), center=True)  # ultralytics: 104 rows of padding split 52 / 52
    assert centred.top == 52 and centred.left == 0
    assert (
        (centred.image[:52] == 114).all() and (centred.image[52:364] == 7).all() and (centred.image[364:] == 114).all()
    )
    np.testing.assert_allclose(centred.to_source([[0, 52, 416, 364]]), [[0, 0, 640, 480]])


def test_class_wise_nms_keeps_other_classes():
    d = Boxes2D(xyxy=[[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10]], score=[0.9, 0.8, 0.7], class_id=[0, 0, 1])
    kept = class_wise_nms(d, 0.5)
    assert sorted(kept.score.tolist()) == pytest.approx([0.7, 0.9])


def test_decode_yolox_synthetic_row():
    anchors = 52 * 52 + 26 * 26 + 13 * 13
    raw = np.zeros((anchors, 85), np.float32)
    row = 52 * 52 + 26 * 3 + 5  # stride 16 grid, cell x=5, y=3
    raw[row, :4] = [0.5, 0.5, np.log(4.0), np.log(8.0)]
    raw[row, 4] = 0.9
    raw[row, 5 + 2] = 0.8
    xyxy, score, cls = decode_yolox(raw, (416, 416))
    assert len(xyxy) == 1 and cls[0] == 2 and score[0] == pytest.approx(0.72)
    np.testing.assert_allclose(xyxy[0], [88 - 32, 56 - 64, 88 + 32, 56 + 64], atol=1e-3)


def _mot_gt(path):
    raw = np.loadtxt(path, delimiter=",", ndmin=2)
    return raw[:, 0].astype(int) - 1, np.c_[raw[:, 2:4], raw[:, 2:4] + raw[:, 4:6]]


@pytest.mark.shared_data
def test_yolox_real_model_finds_people(shared_data):
    cv2 = pytest.importorskip("cv2")
    from autolabel.teachers.onnx_yolox import OnnxYoloxTeacher

    model = shared_data / "models/yolox_nano_coco/yolox_nano.onnx"
    video = shared_data / "mot15/TUD-Stadtmitte/TUD-Stadtmitte.mp4"
    if not model.is_file() or not video.is_file():
        pytest.skip(f"YOLOX model or TUD-Stadtmitte video absent under {shared_data}")
    teacher = OnnxYoloxTeacher(model, class_map={"person": "person"})
    gt_frame, gt_boxes = _mot_gt(shared_data / "mot15/TUD-Stadtmitte/gt/gt.txt")
    capture = cv2.VideoCapture(str(video))
    true_positive = num_predicted = num_gt = 0
    for index in range(0, 179, 10):
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        assert ok, f"could not read frame {index} of {video}"
        detections = teacher.predict(frame)
        assert detections.score.min() >= 0.05 and teacher.class_names == ["person"]
        boxes = detections.xyxy[detections.score > 0.3]
        gt = gt_boxes[gt_frame == index]
        iou = box_iou(boxes, gt)
        rows, cols = linear_sum_assignment(-iou)
        true_positive += int((iou[rows, cols] >= 0.5).sum())
        num_predicted += len(boxes)
        num_gt += len(gt)
    precision, recall = true_positive / num_predicted, true_positive / num_gt
    assert precision > 0.85 and recall > 0.72, (precision, recall)


def test_torchvision_teacher_loads_local_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    from torchvision.models import detection

    from autolabel.teachers.torchvision_teacher import TorchvisionTeacher

    torch.manual_seed(0)
    torch.set_num_threads(2)
    # 3 classes (background, person, car) keeps the random model's post-processing small.
    model = detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3)
    weights = tmp_path / "ssdlite.pt"
    torch.save(model.state_dict(), weights)
    teacher = TorchvisionTeacher(
        "ssdlite320_mobilenet_v3_large",
        weights,
        num_classes=3,
        class_map={"person": "pedestrian", "car": "car"},
        source_class_names=("__background__", "person", "car"),
        score_floor=0.0,
        max_detections=50,
    )
    assert teacher.class_names == ["pedestrian", "car"]
    frames = [np.random.default_rng(i).integers(0, 255, (96, 128, 3), dtype=np.uint8) for i in range(2)]
    results = teacher.predict_batch(frames)
    assert len(results) == 2 and all(isinstance(r, Boxes2D) for r in results)
    assert len(results[0]) > 0 and results[0].xyxy[:, 2].max() <= 128 + 1e-3
    assert set(np.unique(results[0].class_id)) <= {0, 1} and len(results[0]) <= 50
    with pytest.raises(ValueError, match="does not match"):
        TorchvisionTeacher("ssdlite320_mobilenet_v3_large", weights, num_classes=91)
    with pytest.raises(ValueError, match="unknown"):
        TorchvisionTeacher("yolo_v99", weights)
