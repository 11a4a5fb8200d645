"""Constant-velocity Kalman filter over boxes in centre-size form [cx, cy, w, h] (pixels, pixels/frame)."""

from __future__ import annotations

import numpy as np

__all__ = ["KalmanBoxFilter"]


class KalmanBoxFilter:
    """8-D state [cx, cy, w, h, vcx, vcy, vw, vh]; noise stds scale with box height (ByteTrack/BoT-SORT convention).

    All methods are vectorised over a leading batch axis: mean (B,8), covariance (B,8,8), measurement (B,4).
    """

    def __init__(
        self, *, position_noise: float = 1 / 20, velocity_noise: float = 1 / 160, measurement_noise: float = 1 / 20
    ) -> None:
        self.position_noise = position_noise
        self.velocity_noise = velocity_noise
        self.measurement_noise = measurement_noise
        self.transition = np.eye(8)
        self.transition[:4, 4:] = np.eye(4)
        self.observation = np.eye(4, 8)

    def _scale(self, mean: np.ndarray) -> np.ndarray:
        """(B,4) per-axis noise scale: box width for x/w, height for y/h, floored at 1 pixel."""
        w = np.maximum(mean[:, 2], 1.0)
        h = np.maximum(mean[:, 3], 1.0)
        return np.stack([w, h, w, h], axis=1)

    def initiate(self, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks from (B,4) cxcywh measurements: zero velocity, wide velocity uncertainty."""
        measurement = np.atleast_2d(np.asarray(measurement, dtype=np.float64))
        mean = np.concatenate([measurement, np.zeros_like(measurement)], axis=1)
        scale = self._scale(mean)
        std = np.concatenate([2 * self.position_noise * scale, 10 * self.velocity_noise * scale], axis=1)
        return mean, np.einsum("bi,ij->bij", std**2, np.eye(8))

    def predict(self, mean: np.ndarray, covariance: np.ndarray, steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Propagate `steps` frames ahead."""
        for _ in range(steps):
            scale = self._scale(mean)
            std = np.concatenate([self.position_noise * scale, self.velocity_noise * scale], axis=1)
            mean = mean @ self.transition.T
            covariance = self.transition @ covariance @ self.transition.T + np.einsum("bi,ij->bij", std**2, np.eye(8))
        mean[:, 2:4] = np.maximum(mean[:, 2:4], 1.0)
        return mean, covariance

    def project(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted measurement (B,4) and its covariance (B,4,4) including measurement noise."""
        std = self.measurement_noise * self._scale(mean)
        projected_cov = self.observation @ covariance @ self.observation.T + np.einsum("bi,ij->bij", std**2, np.eye(4))
        return mean @ self.observation.T, projected_cov

    def update(
        self, mean: np.ndarray, covariance: np.ndarray, measurement: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct (B,8) states with (B,4) cxcywh measurements."""
        projected_mean, projected_cov = self.project(mean, covariance)
        cross = covariance @ self.observation.T  # (B,8,4)
        gain = np.linalg.solve(projected_cov, np.transpose(cross, (0, 2, 1))).transpose(0, 2, 1)
        innovation = np.asarray(measurement, dtype=np.float64) - projected_mean
        new_mean = mean + np.einsum("bij,bj->bi", gain, innovation)
        new_cov = covariance - gain @ projected_cov @ np.transpose(gain, (0, 2, 1))
        return new_mean, new_cov

    def warp(self, mean: np.ndarray, covariance: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply a 2x3 image affine (previous -> current frame, pixels) to states: camera-motion compensation."""
        linear, translation = affine[:, :2], affine[:, 2]
        scale = float(np.sqrt(abs(np.linalg.det(linear))))
        block = np.zeros((8, 8))
        block[0:2, 0:2] = linear
        block[4:6, 4:6] = linear
        block[2:4, 2:4] = scale * np.eye(2)
        block[6:8, 6:8] = scale * np.eye(2)
        new_mean = mean @ block.T
        new_mean[:, :2] += translation
        return new_mean, block @ covariance @ block.T
