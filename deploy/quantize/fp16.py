"""FP16 conversion of any ONNX model (GPU targets)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deploy.onnx_utils import save_model_atomic


def convert_fp16(
    model_path: str | Path,
    output_path: str | Path,
    *,
    keep_io_types: bool = True,
    op_block_list: Sequence[str] | None = None,
    node_block_list: Sequence[str] | None = None,
) -> Path:
    """FP16 weights/activations for GPU targets (onnxruntime's bundled ``transformers.float16`` converter, else
    onnxconverter-common's); ``keep_io_types`` keeps float32 graph inputs/outputs with Casts inside."""
    import onnx

    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:  # pragma: no cover - depends on the onnxruntime build
        try:
            from onnxconverter_common.float16 import convert_float_to_float16
        except ImportError as error:
            raise ImportError(
                "convert_fp16 needs onnxruntime.transformers.float16 (bundled with onnxruntime) or "
                "the onnxconverter-common package"
            ) from error
    model = onnx.load(str(model_path))
    kwargs = {"keep_io_types": keep_io_types}
    if op_block_list is not None:
        kwargs["op_block_list"] = list(op_block_list)
    if node_block_list is not None:
        kwargs["node_block_list"] = list(node_block_list)
    converted = convert_float_to_float16(model, **kwargs)
    return save_model_atomic(converted, output_path)
