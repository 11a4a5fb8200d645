"""``deploy export`` and ``deploy parity``: a checkpoint -> one self-describing ONNX file with decoding in the graph.

- ``checkpoint``: load a plain checkpoint (``weights_only``), pick the rig and cameras to bake in.
- ``graph``: ``DeployGraph``, the model plus in-graph input conversion and decoding; its input names and example feeds.
- ``describe``: the ``fleetvision`` metadata that describes every input and output of the exported file.
- ``to_onnx``: ``export_onnx`` / ``export_checkpoint_to_onnx`` (dynamo, checker, shape inference, atomic write).
- ``parity``: ONNX Runtime vs PyTorch on real clip frames.

Every module here imports torch; ``import deploy.export`` alone does not.
"""

from __future__ import annotations

from perception.errors import InputError


class ExportError(InputError, RuntimeError):
    """Export could not produce a valid model (message names the checkpoint/file and the reason)."""
