"""The in-vehicle runtime: replays clips (or reads live cameras), runs an exported ONNX model at a fixed rate with
the recurrent state carried frame to frame, and logs detections and latencies. Imports only numpy, OpenCV,
onnxruntime and perception's torch-free core (``tests/deploy/test_runtime.py`` proves it with torch blocked).
Model inputs are prepared by ``perception.model_input``, the rule training uses; clips are read by
``perception.clip.DriveClip`` in its lenient mode."""

from deploy.runtime.engine import Runtime, RuntimeConfig, RuntimeSummary
from deploy.runtime.model import DeployedModel
from deploy.runtime.preprocess import FramePreprocessor

__all__ = ["DeployedModel", "FramePreprocessor", "Runtime", "RuntimeConfig", "RuntimeSummary"]
