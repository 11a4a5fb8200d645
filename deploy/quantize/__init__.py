"""``deploy quantize``: INT8 static (QDQ) quantization and FP16 conversion, and how much accuracy survives.

Any ONNX model (no torch anywhere here):

- ``calibration``: calibration inputs (image folders through a ``PreprocessSpec``, seeded synthetic inputs, any
  iterable of feed dicts) and the fine-histogram entropy calibration cache.
- ``static_int8``: ``quantize_static`` (onnxruntime QDQ, per-channel weights, nodes kept float) and
  ``preprocess_model``.
- ``fp16``: ``convert_fp16`` for GPU targets.
- ``output_error``: a quantized model's outputs against the FP32 model's (error per output, agreement metrics).
- ``sensitivity``: which nodes to keep float (one group at a time, then greedily).

A model made by ``deploy export``:

- ``exported_model``: ``quantize_model``, calibrated on real drive-clip frames with the heads kept float.
- ``task_accuracy``: FP32 vs INT8 task metrics on held-out clips (BEV mAP / NDS, segmentation IoU, 2D AP) and the
  MLPerf 99% verdict, as JSON + Markdown.
"""

from __future__ import annotations

from perception.errors import InputError


class QuantizeError(InputError):
    """Bad quantization arguments (message names the field, expected and found values)."""
