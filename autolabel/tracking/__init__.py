"""Online tracking: Kalman box filter, two-stage association, camera-motion compensation, tracklets."""

from autolabel.tracking.association import appearance_distance, match
from autolabel.tracking.byte_tracker import ByteTracker, run_tracker
from autolabel.tracking.cmc import CameraMotionEstimator
from autolabel.tracking.kalman import KalmanBoxFilter
from autolabel.tracking.tracklet import Tracklet, detections_to_tracklets, tracklets_to_detections

__all__ = [
    "ByteTracker",
    "CameraMotionEstimator",
    "KalmanBoxFilter",
    "Tracklet",
    "appearance_distance",
    "detections_to_tracklets",
    "match",
    "run_tracker",
    "tracklets_to_detections",
]  # fmt: skip
