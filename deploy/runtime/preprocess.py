"""The exported model's feed dict, built with ``perception.model_input`` (the rule training uses; torch-free).

The exported graph takes the resized frames still BGR, uint8 [1, N, H, W, 3], and flips/casts them itself, so
this module only resizes (``resize_image``), stacks, and adds the calibration of a fixed camera order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from perception.model_input import MODEL_DISTORTION, model_distortion, model_intrinsics, resize_image
from perception.rig import Rig


class FramePreprocessor:
    """Builds the model's image and calibration inputs for a fixed camera order and input size (H, W)."""

    def __init__(
        self,
        rig: Rig,
        cameras: Sequence[str],
        size_hw: tuple[int, int],
        *,
        source: str | None = None,
        distortion_layout: str = MODEL_DISTORTION,
    ) -> None:
        """``source`` names where ``rig`` comes from (e.g. a rig.yaml) in errors; ``distortion_layout`` is the
        model's (``DeployedModel.distortion_layout``: older exports take radtan only)."""
        missing = [name for name in cameras if name not in rig.names]
        if missing:
            raise ValueError(
                f"{source or 'rig'}: rig lacks the model's cameras {missing} "
                f"(rig cameras: {rig.names}, model: {list(cameras)})"
            )
        self.rig = rig
        self.cameras = list(cameras)
        self.size_hw = (int(size_hw[0]), int(size_hw[1]))
        self.intrinsics = np.stack([model_intrinsics(rig[name], self.size_hw) for name in self.cameras]).astype(
            np.float32
        )
        self.distortion = np.stack(
            [model_distortion(rig[name], source=source, layout=distortion_layout) for name in self.cameras]
        ).astype(np.float32)
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
            batch[0, n] = resize_image(image, self.size_hw)
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
