"""Evaluation metrics, torch-free (numpy only), usable by training, the auto-labeller and deploy reports.

- ``BevDetectionEvaluator``: nuScenes-style 3D/BEV detection mAP (centre distance), ATE/ASE/AOE/AVE, NDS-like score.
- ``CocoDetectionEvaluator``: COCO 2D box AP/AR, equal to pycocotools' bbox numbers (IoU:
  ``perception.geometry.box_iou``).
- ``SegmentationIoU``: streaming per-class IoU / mIoU for multi-label BEV maps or exclusive class maps.
- ``video_box_ap``: AP50 (or another IoU) of 2D boxes over the frames of a video.
- ``tracking_scores``: HOTA (DetA, AssA, LocA), CLEAR-MOT (MOTA, MOTP, IDSW) and IDF1 of a sequence, equal to
  TrackEval's; ``combine_tracking_scores`` for several sequences or classes.
- ``camera_handover_ids``: whether objects keep one track id as they pass between the cameras of a rig.
"""

from perception.metrics.bev_detection import BevDetectionEvaluator, aligned_iou, yaw_difference
from perception.metrics.det2d import CocoDetectionEvaluator
from perception.metrics.segmentation import SegmentationIoU
from perception.metrics.tracking import (
    TrackingScores,
    box_similarity,
    camera_handover_ids,
    combine_tracking_scores,
    tracking_scores,
    video_box_ap,
)

__all__ = [
    "BevDetectionEvaluator",
    "CocoDetectionEvaluator",
    "SegmentationIoU",
    "TrackingScores",
    "aligned_iou",
    "box_similarity",
    "camera_handover_ids",
    "combine_tracking_scores",
    "tracking_scores",
    "video_box_ap",
    "yaw_difference",
]
