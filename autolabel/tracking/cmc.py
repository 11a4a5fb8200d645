"""Camera-motion compensation: sparse optical flow + RANSAC partial affine on downscaled grey frames."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["CameraMotionEstimator"]


class CameraMotionEstimator:
    """Estimates the 2x3 affine mapping previous-frame pixels to current-frame pixels (full resolution)."""

    def __init__(
        self, *, max_width: int = 320, max_corners: int = 400, min_inliers: int = 12, ransac_threshold: float = 1.5
    ) -> None:
        self.max_width = max_width
        self.max_corners = max_corners
        self.min_inliers = min_inliers
        self.ransac_threshold = ransac_threshold
        self._previous: np.ndarray | None = None

    def grey(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """Downscaled grey image and its scale factor (small pixels per full pixel)."""
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        scale = min(1.0, self.max_width / grey.shape[1])
        if scale < 1.0:
            grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return grey, scale

    def estimate_pair(
        self, previous: np.ndarray, current: np.ndarray, scale: float = 1.0, exclude_xyxy: np.ndarray | None = None
    ) -> np.ndarray:
        """Affine between two grey (downscaled) images; identity when too few reliable inliers."""
        identity = np.eye(2, 3)
        mask = np.full(previous.shape, 255, np.uint8)
        if exclude_xyxy is not None:
            for x1, y1, x2, y2 in np.asarray(exclude_xyxy, dtype=np.float64).reshape(-1, 4) * scale:
                mask[max(int(y1), 0) : max(int(y2), 0), max(int(x1), 0) : max(int(x2), 0)] = 0
        corners = cv2.goodFeaturesToTrack(
            previous, self.max_corners, qualityLevel=0.01, minDistance=5, blockSize=3, mask=mask
        )
        if corners is None or len(corners) < self.min_inliers:
            return identity
        moved, status, _ = cv2.calcOpticalFlowPyrLK(previous, current, corners, None)
        good = status.reshape(-1) == 1
        if good.sum() < self.min_inliers:
            return identity
        affine, inliers = cv2.estimateAffinePartial2D(
            corners[good], moved[good], method=cv2.RANSAC, ransacReprojThreshold=self.ransac_threshold
        )
        if affine is None or inliers is None or int(inliers.sum()) < self.min_inliers:
            return identity
        affine = affine.astype(np.float64)
        affine[:, 2] /= scale  # translation back to full-resolution pixels
        return affine

    def update(self, frame: np.ndarray, exclude_xyxy: np.ndarray | None = None) -> np.ndarray:
        """Feed the next BGR frame; returns previous->current affine (identity on the first frame)."""
        grey, scale = self.grey(frame)
        previous, self._previous = self._previous, grey
        if previous is None or previous.shape != grey.shape:
            return np.eye(2, 3)
        return self.estimate_pair(previous, grey, scale, exclude_xyxy)
