"""OnnxDetectorTeacher reads layout, input size and class names from the model and decodes known boxes.

The models are built here with ``onnx.helper`` in the output conventions of each family (no ultralytics model file
exists offline): a constant head output whose class scores are single input pixels, so a box is found only if the
teacher feeds the channels (RGB or BGR), the scale (/255 or not) and the letterbox (centred or top-left) the family
expects. Ultralytics conventions as in ultralytics' exporter and LetterBox: output (1, 4 + C, anchors) with centre
x, centre y, width, height in input pixels; metadata_props ``names`` = str({index: name}), ``imgsz`` = str([h, w]),
``stride`` = str(int); input RGB / 255, letterbox centred with pad 114. Not checked on a real ultralytics export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from autolabel.teachers.onnx_detector import OnnxDetectorTeacher, anchor_count  # noqa: E402
from autolabel.teachers.onnx_yolox import OnnxYoloxTeacher  # noqa: E402


def _make_model(
    path: Path,
    base: np.ndarray,
    pixel_terms: list[tuple[tuple[int, ...], tuple[int, int, int]]],
    *,
    input_shape: list,
    metadata: dict[str, str] | None = None,
) -> Path:
    """output = base + sum over terms of onehot(index) * images[0, c, y, x] (a single input pixel)."""
    nodes = []
    initializers = [
        numpy_helper.from_array(base.astype(np.float32), "base"),
        numpy_helper.from_array(np.ones(1, np.int64), "one"),
    ]
    total = "base"
    for k, (index, (channel, y, x)) in enumerate(pixel_terms):
        mask = np.zeros_like(base, dtype=np.float32)
        mask[index] = 1.0
        initializers += [
            numpy_helper.from_array(mask, f"mask{k}"),
            numpy_helper.from_array(np.array([0, channel, y, x], np.int64), f"start{k}"),
            numpy_helper.from_array(np.array([1, channel + 1, y + 1, x + 1], np.int64), f"end{k}"),
        ]
        nodes += [
            helper.make_node("Slice", ["images", f"start{k}", f"end{k}"], [f"pixel4d{k}"]),
            helper.make_node("Reshape", [f"pixel4d{k}", "one"], [f"pixel{k}"]),
            helper.make_node("Mul", [f"mask{k}", f"pixel{k}"], [f"term{k}"]),
            helper.make_node("Add", [total, f"term{k}"], [f"sum{k}"]),
        ]
        total = f"sum{k}"
    nodes.append(helper.make_node("Identity", [total], ["output0"]))
    graph = helper.make_graph(
        nodes,
        "detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(base.shape))],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _ultralytics_model(path: Path, *, dynamic: bool, metadata: bool = True) -> Path:
    """320x320 ultralytics-layout head, classes person/bicycle/car: anchor 0 = car at (cx 100, cy 140, w 40,
    h 60) scored by the R channel at (100, 140); anchor 1 = person at (200, 150, 20, 20) scored by B at (200, 150)."""
    anchors = anchor_count((320, 320), (8, 16, 32))
    base = np.zeros((1, 4 + 3, anchors), np.float32)
    base[0, :4, 0] = [100, 140, 40, 60]
    base[0, :4, 1] = [200, 150, 20, 20]
    terms = [((0, 4 + 2, 0), (0, 140, 100)), ((0, 4 + 0, 1), (2, 150, 200))]
    meta = {
        "author": "Ultralytics",
        "task": "detect",
        "stride": "32",
        "batch": "1",
        "imgsz": "[320, 320]",
        "names": "{0: 'person', 1: 'bicycle', 2: 'car'}",
    }
    shape = [1, 3, "height", "width"] if dynamic else [1, 3, 320, 320]
    return _make_model(path, base, terms, input_shape=shape, metadata=meta if metadata else None)


def _frame_with_patches(red_at: tuple[int, int], blue_at: tuple[int, int]) -> np.ndarray:
    """640x480 BGR frame, grey 0, a pure red and a pure blue 8x8 patch centred at the given (x, y) pixels."""
    frame = np.zeros((480, 640, 3), np.uint8)
    (rx, ry), (bx, by) = red_at, blue_at
    frame[ry - 4 : ry + 4, rx - 4 : rx + 4] = (0, 0, 255)
    frame[by - 4 : by + 4, bx - 4 : bx + 4] = (255, 0, 0)
    return frame


@pytest.mark.parametrize("dynamic", [False, True])
def test_ultralytics_layout_read_from_metadata_and_decoded(tmp_path: Path, dynamic: bool) -> None:
    model = _ultralytics_model(tmp_path / "yolo11n.onnx", dynamic=dynamic)
    teacher = OnnxDetectorTeacher(model, class_map=None, score_floor=0.5)
    assert teacher.layout == "ultralytics" and teacher.input.size == (320, 320)
    assert teacher.class_names == ["person", "bicycle", "car"] and "metadata 'names'" in teacher.class_map_source
    # 640x480 -> scale 0.5, 320x240, centred: 40 rows of padding on top. Letterbox (100, 140) is source (200, 200).
    frame = _frame_with_patches(red_at=(200, 200), blue_at=(400, 220))
    boxes = teacher.predict(frame)
    order = np.argsort(boxes.class_id)
    np.testing.assert_array_equal(boxes.class_id[order], [0, 2])  # person, car
    np.testing.assert_allclose(boxes.score[order], [1.0, 1.0], atol=1e-6)  # RGB / 255 (BGR or 0..255 would differ)
    np.testing.assert_allclose(
        boxes.xyxy[order], [[380, 200, 420, 240], [160, 140, 240, 260]], atol=1e-4
    )  # person (190..210, 140..160) and car (80..120, 110..170) in letterbox pixels, back to the source
    blank = teacher.predict(np.zeros((480, 640, 3), np.uint8))
    assert len(blank) == 0  # scores are the pixels: nothing without the patches


def test_class_names_from_a_spec_file_and_refusals(tmp_path: Path) -> None:
    model = _ultralytics_model(tmp_path / "custom.onnx", dynamic=True, metadata=False)
    with pytest.raises(ValueError, match=r"custom.onnx: input 'images' has a dynamic size .*custom.onnx.yaml"):
        OnnxDetectorTeacher(model, class_map=None)
    (tmp_path / "custom.onnx.yaml").write_text("input_size: [320, 320]\n")
    with pytest.raises(ValueError, match="has 3 classes and names none"):  # only 80 classes are taken as COCO
        OnnxDetectorTeacher(model, class_map=None)
    (tmp_path / "custom.onnx.yaml").write_text(
        "layout: ultralytics\ninput_size: [320, 320]\nclass_names: [pedestrian, cyclist, car]\n"
    )
    teacher = OnnxDetectorTeacher(model, class_map=None, score_floor=0.5)
    assert teacher.class_names == ["pedestrian", "cyclist", "car"] and "custom.onnx.yaml" in teacher.class_map_source
    boxes = teacher.predict(_frame_with_patches(red_at=(200, 200), blue_at=(400, 220)))
    assert sorted(teacher.class_names[c] for c in boxes.class_id) == ["car", "pedestrian"]
    with pytest.raises(ValueError, match=r"source classes \['person', .* class_map: null keeps"):  # COCO map: COCO
        OnnxDetectorTeacher(model, class_map="coco_to_driving")
    (tmp_path / "custom.onnx.yaml").write_text("input_size: [320, 320]\nclass_names: [a, b]\n")
    with pytest.raises(ValueError, match=r"matches no known layout .* with C = 2 class names"):
        OnnxDetectorTeacher(model, class_map=None)
    (tmp_path / "custom.onnx.yaml").write_text("layout: ultralytics\ninput_size: [320, 320]\nclass_names: [a, b]\n")
    with pytest.raises(ValueError, match="2 class names .* but the output has 3 classes"):
        OnnxDetectorTeacher(model, class_map=None)
    (tmp_path / "custom.onnx.yaml").write_text("input_sise: [320, 320]\n")
    with pytest.raises(ValueError, match=r"custom.onnx.yaml: unknown keys \['input_sise'\]"):
        OnnxDetectorTeacher(model, class_map=None)


def test_unknown_layout_is_refused_not_decoded_as_yolox(tmp_path: Path) -> None:
    yolov5_like = np.zeros((1, 3 * anchor_count((320, 320), (8, 16, 32)), 85), np.float32)  # 3 anchors per cell
    model = _make_model(tmp_path / "v5.onnx", yolov5_like, [], input_shape=[1, 3, 320, 320])
    with pytest.raises(ValueError) as error:
        OnnxDetectorTeacher(model)
    message = str(error.value)
    assert "v5.onnx: output shape [1, 6300, 85] matches no known layout" in message
    assert "(1, 2100, 5 + C) for yolox" in message and "(1, 4 + C, 2100) for ultralytics" in message
    with pytest.raises(ValueError, match="input 'images' is 320x320 .* configured input_size is 416x416"):
        OnnxYoloxTeacher(model, input_size=(416, 416))


def test_yolox_layout_detected_with_its_own_preprocessing(tmp_path: Path) -> None:
    """A YOLOX-layout head (1, A, 5 + 80) without metadata: layout from the shape, COCO-80 assumed, BGR 0..255
    input letterboxed at the top left."""
    anchors = anchor_count((320, 320), (8, 16, 32))
    base = np.zeros((1, anchors, 85), np.float32)
    row = 40 * 40 + 20 * 5 + 6  # stride 16 grid, cell x=6, y=5: centre (6.5 * 16, 5.5 * 16) = (104, 88)
    base[0, row, :4] = [0.5, 0.5, np.log(2.0), np.log(3.0)]  # 32 x 48 pixels
    base[0, row, 4] = 1.0 / 255.0  # objectness; class prob = the R value (channel 2 of BGR), 0..255
    model = _make_model(
        tmp_path / "yolox_s.onnx", base, [((0, row, 5 + 2), (2, 88, 104))], input_shape=[1, 3, 320, 320]
    )
    teacher = OnnxDetectorTeacher(model, class_map=None, score_floor=0.5)
    assert teacher.layout == "yolox" and len(teacher.class_names) == 80 and teacher.class_names[2] == "car"
    assert "COCO-80 (assumed" in teacher.class_map_source
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[172:180, 204:212] = (0, 0, 255)  # letterbox (104, 88) at scale 0.5, no padding offset: source (208, 176)
    boxes = teacher.predict(frame)
    assert boxes.class_id.tolist() == [2] and boxes.score[0] == pytest.approx(1.0)
    np.testing.assert_allclose(boxes.xyxy[0], [(104 - 16) * 2, (88 - 24) * 2, (104 + 16) * 2, (88 + 24) * 2], atol=1e-3)


def test_end2end_layout(tmp_path: Path) -> None:
    """(1, N, 6) rows x1 y1 x2 y2 score class (NMS inside the model): decoded as given, no NMS of ours."""
    base = np.zeros((1, 300, 6), np.float32)
    base[0, 0] = [80, 110, 120, 170, 0, 2]
    base[0, 1] = [82, 112, 122, 172, 0.9, 2]  # overlapping box of the same class: kept (the model already chose)
    meta = {"author": "Ultralytics", "imgsz": "[320, 320]", "names": "{0: 'person', 1: 'bicycle', 2: 'car'}"}
    model = _make_model(tmp_path / "yolo26n.onnx", base, [((0, 0, 4), (0, 140, 100))], input_shape=[1, 3, 320, 320],
                        metadata=meta)  # fmt: skip
    teacher = OnnxDetectorTeacher(model, class_map=None, score_floor=0.5)
    assert teacher.layout == "end2end" and teacher.nms_iou is None
    boxes = teacher.predict(_frame_with_patches(red_at=(200, 200), blue_at=(400, 220)))
    assert len(boxes) == 2
    np.testing.assert_allclose(boxes.xyxy[np.argmax(boxes.score)], [160, 140, 240, 260], atol=1e-4)
