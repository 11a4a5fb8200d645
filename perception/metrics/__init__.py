"""Evaluation metrics, torch-free (numpy only), usable by training, the auto-labeller and deploy reports.

- ``BevDetectionEvaluator``: nuScenes-style 3D/BEV detection mAP (centre distance), ATE/ASE/AOE/AVE, NDS-like score.
- ``CocoDetectionEvaluator``: COCO 2D box AP/AR, equal to pycocotools' bbox numbers (IoU:
  ``perception.geometry.box_iou``).
- ``SegmentationIoU``: streaming per-class IoU / mIoU for multi-label BEV maps or exclusive class maps.
- ``video_box_ap``: AP50 (or another IoU) of 2D boxes over the frames of a video.
"""

from perception.metrics.bev_detection import BevDetectionEvaluator, aligned_iou, yaw_difference
from perception.metrics.det2d import CocoDetectionEvaluator
from perception.metrics.segmentation import SegmentationIoU
from perception.metrics.tracking import video_box_ap

__all__ = [
    "BevDetectionEvaluator",
    "CocoDetectionEvaluator",
    "SegmentationIoU",
    "aligned_iou",
    "video_box_ap",
    "yaw_difference",
]
