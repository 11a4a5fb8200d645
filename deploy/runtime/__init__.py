"""The in-vehicle runtime: replays clips (or reads live cameras), runs an exported ONNX model at a fixed rate with
the recurrent state carried frame to frame, and logs detections and latencies. Imports only numpy, OpenCV,
onnxruntime and perception's torch-free core (``tests/deploy/test_runtime.py`` proves it with torch blocked)."""

from deploy.runtime.engine import Runtime, RuntimeConfig, RuntimeSummary
from deploy.runtime.model import DeployedModel
from deploy.runtime.preprocess import FramePreprocessor, radtan5, resize_like_training, scaled_intrinsics
from deploy.runtime.replay_clip import ReplayClip

__all__ = [
    "DeployedModel",
    "FramePreprocessor",
    "ReplayClip",
    "Runtime",
    "RuntimeConfig",
    "RuntimeSummary",
    "radtan5",
    "resize_like_training",
    "scaled_intrinsics",
]
