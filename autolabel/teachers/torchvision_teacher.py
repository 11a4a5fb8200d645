"""torchvision detection models (Faster R-CNN, RetinaNet, FCOS, SSD/SSDlite) as teachers, from a LOCAL state_dict
file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.teachers.base import ClassMapper, Teacher, class_wise_nms, resolve_class_map
from autolabel.teachers.coco import COCO91_NAMES
from perception.labels import Boxes2D

__all__ = ["TORCHVISION_ARCHS", "TorchvisionTeacher"]

# arch -> (builder name in torchvision.models.detection, score-threshold kwarg, nms kwarg, max-detections kwarg)
TORCHVISION_ARCHS: dict[str, tuple[str, str, str, str]] = {
    "fasterrcnn_resnet50_fpn": (
        "fasterrcnn_resnet50_fpn", "box_score_thresh", "box_nms_thresh", "box_detections_per_img"
    ),
    "fasterrcnn_resnet50_fpn_v2": (
        "fasterrcnn_resnet50_fpn_v2", "box_score_thresh", "box_nms_thresh", "box_detections_per_img"
    ),
    "fasterrcnn_mobilenet_v3_large_fpn": (
        "fasterrcnn_mobilenet_v3_large_fpn", "box_score_thresh", "box_nms_thresh", "box_detections_per_img"
    ),
    "fasterrcnn_mobilenet_v3_large_320_fpn": (
        "fasterrcnn_mobilenet_v3_large_320_fpn", "box_score_thresh", "box_nms_thresh", "box_detections_per_img"
    ),
    "retinanet_resnet50_fpn": ("retinanet_resnet50_fpn", "score_thresh", "nms_thresh", "detections_per_img"),
    "retinanet_resnet50_fpn_v2": ("retinanet_resnet50_fpn_v2", "score_thresh", "nms_thresh", "detections_per_img"),
    "fcos_resnet50_fpn": ("fcos_resnet50_fpn", "score_thresh", "nms_thresh", "detections_per_img"),
    "ssdlite320_mobilenet_v3_large": (
        "ssdlite320_mobilenet_v3_large", "score_thresh", "nms_thresh", "detections_per_img"
    ),
    "ssd300_vgg16": ("ssd300_vgg16", "score_thresh", "nms_thresh", "detections_per_img"),
}  # fmt: skip


def _builder(arch: str) -> Callable[..., Any]:
    from torchvision.models import detection

    builders = {
        "fasterrcnn_resnet50_fpn": detection.fasterrcnn_resnet50_fpn,
        "fasterrcnn_resnet50_fpn_v2": detection.fasterrcnn_resnet50_fpn_v2,
        "fasterrcnn_mobilenet_v3_large_fpn": detection.fasterrcnn_mobilenet_v3_large_fpn,
        "fasterrcnn_mobilenet_v3_large_320_fpn": detection.fasterrcnn_mobilenet_v3_large_320_fpn,
        "retinanet_resnet50_fpn": detection.retinanet_resnet50_fpn,
        "retinanet_resnet50_fpn_v2": detection.retinanet_resnet50_fpn_v2,
        "fcos_resnet50_fpn": detection.fcos_resnet50_fpn,
        "ssdlite320_mobilenet_v3_large": detection.ssdlite320_mobilenet_v3_large,
        "ssd300_vgg16": detection.ssd300_vgg16,
    }
    return builders[arch]


class TorchvisionTeacher(Teacher):
    """A torchvision detector built with weights=None and loaded from ``weights_path`` (state_dict, weights_only).

    ``class_map`` as in ``OnnxYoloxTeacher`` (default ``coco_to_driving``); ``source_class_names`` None = COCO's
    91 category ids.
    """

    weights_argument = "weights_path"

    def __init__(
        self,
        arch: str,
        weights_path: str | Path,
        *,
        num_classes: int = 91,
        class_map: str | dict[str, str] | None = "coco_to_driving",
        source_class_names: Sequence[str] | None = None,
        score_floor: float = 0.05,
        nms_iou: float = 0.5,
        max_detections: int = 300,
        device: str = "cpu",
        builder_kwargs: dict[str, Any] | None = None,
    ) -> None:
        import torch

        if arch not in TORCHVISION_ARCHS:
            raise ValueError(f"TorchvisionTeacher: arch {arch!r} unknown, expected one of {sorted(TORCHVISION_ARCHS)}")
        weights_path = Path(weights_path)
        if not weights_path.is_file():
            raise FileNotFoundError(f"TorchvisionTeacher: weights file {weights_path} not found")
        _, score_key, nms_key, max_key = TORCHVISION_ARCHS[arch]
        kwargs = {score_key: score_floor, nms_key: nms_iou, max_key: max_detections, **(builder_kwargs or {})}
        model = _builder(arch)(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ValueError(
                f"{weights_path}: state_dict does not match {arch} (num_classes={num_classes}): {error}"
            ) from error
        self.model = model.eval().to(device)
        self.device = device
        self.nms_iou = nms_iou
        names = COCO91_NAMES if source_class_names is None else tuple(source_class_names)
        names = names if len(names) >= num_classes else tuple(str(i) for i in range(num_classes))
        mapping, self.class_map_source = resolve_class_map(class_map, names)
        self.mapper = ClassMapper(mapping, names)
        self.class_names = self.mapper.class_names
        self.name = f"torchvision:{arch}"

    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Boxes2D]:
        """One `Boxes2D` per BGR uint8 frame (the model gets RGB float 0..1 and normalises internally)."""
        import torch

        images = [
            torch.from_numpy(np.ascontiguousarray(frame[..., ::-1])).permute(2, 0, 1).float().div(255.0).to(self.device)
            for frame in frames
        ]
        with torch.inference_mode():
            outputs = self.model(images)
        results = []
        for frame, output in zip(frames, outputs):
            class_id = self.mapper(output["labels"].cpu().numpy())
            mapped = class_id >= 0
            detections = Boxes2D(
                xyxy=output["boxes"].cpu().numpy().astype(np.float64)[mapped],
                score=output["scores"].cpu().numpy()[mapped],
                class_id=class_id[mapped],
                image_size=(frame.shape[1], frame.shape[0]),
            )
            results.append(class_wise_nms(detections, self.nms_iou))
        return results
