"""Pluggable single-frame teachers (detectors) returning ``Boxes2D`` per BGR frame; a job config selects one by
``class_path`` (``autolabel.jobconfig``)."""

from autolabel.teachers.base import Teacher, class_wise_nms, letterbox, load_class_map, resolve_class_map
from autolabel.teachers.coco import COCO80_NAMES, COCO91_NAMES

__all__ = [
    "COCO80_NAMES",
    "COCO91_NAMES",
    "Teacher",
    "class_wise_nms",
    "letterbox",
    "load_class_map",
    "resolve_class_map",
]
# Heavy teachers are imported from their modules: autolabel.teachers.onnx_detector (any ONNX layout),
# autolabel.teachers.onnx_yolox, autolabel.teachers.torchvision_teacher,
# autolabel.teachers.fleetvision
