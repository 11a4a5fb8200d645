"""Preprocessing identical to training's data pipeline, in numpy/OpenCV (torch-free).

Training (``perception.data.cache.FrameCache``) resizes each BGR frame to the model's H x W with ``cv2.INTER_AREA``
when the source is taller than H, else ``cv2.INTER_LINEAR``, and scales K with ``Camera.resized`` (fx, cx by W/w;
fy, cy by H/h). The exported graph takes BGR uint8 [1, N, H, W, 3] and converts to RGB float itself, so the runtime
only resizes and stacks. Distortion is the model's radtan (k1, k2, p1, p2, k3), as in training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from perception.rig import Camera, Rig


def resize_like_training(image_bgr: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize a BGR uint8 (h, w, 3) frame to ``size_hw`` (H, W) exactly as the training frame cache does."""
    import cv2

    height, width = size_hw
    if image_bgr.shape[:2] == (height, width):
        return image_bgr
    interpolation = cv2.INTER_AREA if image_bgr.shape[0] > height else cv2.INTER_LINEAR
    return cv2.resize(image_bgr, (width, height), interpolation=interpolation)


def scaled_intrinsics(camera: Camera, size_hw: tuple[int, int]) -> np.ndarray:
    """K (3, 3) of ``camera`` for its image resized to ``size_hw`` (H, W) pixels."""
    return camera.resized(size_hw[1], size_hw[0]).K


def radtan5(camera: Camera) -> np.ndarray:
    """The camera's distortion as (k1, k2, p1, p2, k3); zeros for a pinhole; other models are refused."""
    if camera.distortion_model == "none" or not np.any(camera.distortion):
        return np.zeros(5)
    if camera.distortion_model != "radtan" or (len(camera.distortion) > 5 and np.any(camera.distortion[5:])):
        raise ValueError(
            f"camera {camera.name!r}: distortion model {camera.distortion_model!r} with {len(camera.distortion)} "
            f"coefficients; the model supports radtan (k1, k2, p1, p2, k3) only: undistort the images first"
        )
    out = np.zeros(5)
    out[: min(5, len(camera.distortion))] = camera.distortion[:5]
    return out


class FramePreprocessor:
    """Builds the model's image and calibration inputs for a fixed camera order and input size."""

    def __init__(self, rig: Rig, cameras: Sequence[str], size_hw: tuple[int, int]) -> None:
        missing = [name for name in cameras if name not in rig.names]
        if missing:
            raise ValueError(
                f"rig lacks the model's cameras {missing} (rig cameras: {rig.names}, model: {list(cameras)})"
            )
        self.rig = rig
        self.cameras = list(cameras)
        self.size_hw = (int(size_hw[0]), int(size_hw[1]))
        self.intrinsics = np.stack([scaled_intrinsics(rig[name], self.size_hw) for name in self.cameras]).astype(
            np.float32
        )
        self.distortion = np.stack([radtan5(rig[name]) for name in self.cameras]).astype(np.float32)
        self.static_camera_from_ego = np.stack([rig[name].camera_from_ego for name in self.cameras]).astype(np.float32)

    def images(self, images: Mapping[str, np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
        """(images uint8 [1, N, H, W, 3] BGR, camera_valid float32 [1, N]); absent cameras are zeros with valid 0."""
        height, width = self.size_hw
        batch = np.zeros((1, len(self.cameras), height, width, 3), np.uint8)
        valid = np.zeros((1, len(self.cameras)), np.float32)
        for n, name in enumerate(self.cameras):
            image = images.get(name)
            if image is None:
                continue
            batch[0, n] = resize_like_training(image, self.size_hw)
            valid[0, n] = 1.0
        return batch, valid

    def feeds(
        self,
        images: Mapping[str, np.ndarray | None],
        *,
        camera_from_ego: np.ndarray | None,
        prev_state: np.ndarray,
        prev_from_curr: np.ndarray,
        state_valid: bool,
    ) -> dict[str, np.ndarray]:
        """The full ONNX feed dict; ``camera_from_ego`` (N, 4, 4) per camera (None = the rig's static extrinsics)."""
        batch, valid = self.images(images)
        extrinsics = self.static_camera_from_ego if camera_from_ego is None else np.asarray(camera_from_ego, np.float32)
        return {
            "images": batch,
            "intrinsics": self.intrinsics[None],
            "camera_from_ego": extrinsics.reshape(1, len(self.cameras), 4, 4),
            "distortion": self.distortion[None],
            "camera_valid": valid,
            "prev_state": np.asarray(prev_state, np.float32),
            "prev_from_curr": np.asarray(prev_from_curr, np.float32).reshape(1, 4, 4),
            "state_valid": np.array([1.0 if state_valid else 0.0], np.float32),
        }
