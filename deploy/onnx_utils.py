"""Model-agnostic ONNX helpers: input specs, seeded synthetic inputs, sessions, providers, node listings.

Imports only numpy, onnx and onnxruntime (no torch), so it is safe for the bench, quantize and runtime code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perception.atomic import atomic_path
from perception.errors import InputError

PROVIDER_ALIASES: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}

_ORT_TYPE_TO_NUMPY: dict[str, type] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(bool)": np.bool_,
}

# Operators whose weights/activations onnxruntime's static quantizer turns into QDQ pairs by default.
QUANTIZABLE_OP_TYPES: tuple[str, ...] = ("Conv", "ConvTranspose", "MatMul", "Gemm")


class ProviderUnavailableError(InputError, RuntimeError):
    """The requested execution provider is not in ``onnxruntime.get_available_providers()``."""


class ModelInputError(InputError):
    """Caller-supplied inputs do not match the model's declared inputs."""


class ModelFileError(InputError):
    """The model file is missing, empty, truncated, not ONNX (a PyTorch checkpoint?) or cannot be loaded."""


def check_model_file(path: str | Path) -> Path:
    """``path`` when it names a non-empty file that does not look like a PyTorch checkpoint; ``ModelFileError``
    (naming the file, what was expected and what was found) otherwise. Cheap: reads 8 bytes."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: expected an ONNX model file, found nothing (no such file)")
    if not path.is_file():
        raise ModelFileError(f"{path}: expected an ONNX model file, found a folder")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path}: expected an ONNX model, found an empty file (0 bytes)")
    with open(path, "rb") as stream:
        head = stream.read(8)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        raise ModelFileError(
            f"{path}: expected an ONNX model, found a {'zip archive' if head[:1] == b'P' else 'Python pickle'} "
            "(a PyTorch checkpoint?); hint: 'deploy export CHECKPOINT --out model.onnx' turns a checkpoint into ONNX"
        )
    return path


def open_session(path: str | Path, sess_options, providers: Sequence[str]):
    """``onnxruntime.InferenceSession`` of a model file; ``ModelFileError`` with the reason when the file is not a
    loadable ONNX model (missing, empty, truncated, another format, an operator this onnxruntime lacks)."""
    import onnxruntime as ort

    path = check_model_file(path)
    try:
        return ort.InferenceSession(str(path), sess_options=sess_options, providers=list(providers))
    except Exception as error:  # onnxruntime's pybind errors (InvalidProtobuf, Fail, ...) derive from Exception only
        message = " ".join(str(error).split())
        if "Protobuf parsing failed" in message or "No graph was found" in message:
            found = f"a file that is not an ONNX model or is truncated ({path.stat().st_size} bytes)"
        else:
            found = f"a model onnxruntime {ort.__version__} cannot load: {message[:300]}"
        raise ModelFileError(f"{path}: expected an ONNX model, found {found}") from None


@dataclass(frozen=True)
class InputSpec:
    """One declared model input: name, shape (int or symbolic str/None per dim) and numpy dtype."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: type

    def concrete_shape(
        self, default_dim: int | None = None, dim_overrides: Mapping[str, int] | None = None, *, batch: int = 1
    ) -> tuple[int, ...]:
        """Shape with every symbolic dim resolved: ``dim_overrides[name]``, else ``batch`` for axis 0 (the batch),
        else ``default_dim``; with no ``default_dim`` a symbolic non-batch dim (an image height, a sequence length)
        is never guessed: ``ModelInputError`` naming it and the ``--dim`` to pass."""
        overrides = dim_overrides or {}
        dims: list[int] = []
        for axis, dim in enumerate(self.shape):
            if isinstance(dim, int) and dim > 0:
                dims.append(dim)
            elif isinstance(dim, str) and dim in overrides:
                dims.append(int(overrides[dim]))
            elif axis == 0:
                dims.append(int(batch))
            elif default_dim is not None:
                dims.append(int(default_dim))
            else:
                name = dim if isinstance(dim, str) and dim else "NAME"
                raise ModelInputError(
                    f"input {self.name!r} {list(self.shape)}: axis {axis} is symbolic ({dim!r}); expected its size, "
                    f"found none: pass --dim {name}=SIZE (or real inputs with --inputs x.npz); spatial sizes are "
                    "never guessed"
                )
        return tuple(dims)


def file_size_mb(path: str | Path) -> float:
    """Size of a file in MB (10^6 bytes), including an ONNX external-data sidecar named ``<file>.data``."""
    path = Path(path)
    size = path.stat().st_size
    sidecar = path.with_name(path.name + ".data")
    if sidecar.is_file():
        size += sidecar.stat().st_size
    return size / 1e6


def resolve_providers(provider: str) -> list[str]:
    """Provider list for a short name (cpu, cuda, tensorrt) or a full EP name, with fall-backs down to CPU."""
    import onnxruntime as ort

    full = PROVIDER_ALIASES.get(provider.lower(), provider)
    available = ort.get_available_providers()
    if full not in available:
        raise ProviderUnavailableError(
            f"execution provider {provider!r} ({full}) is not available in this onnxruntime "
            f"{ort.__version__} build; available: {available}. Install onnxruntime-gpu (CUDA) or a TensorRT-enabled "
            f"build, or use --provider cpu."
        )
    chain = [full]
    if full == "TensorrtExecutionProvider" and "CUDAExecutionProvider" in available:
        chain.append("CUDAExecutionProvider")
    if full != "CPUExecutionProvider":
        chain.append("CPUExecutionProvider")
    return chain


def make_session(
    model_path: str | Path,
    *,
    provider: str = "cpu",
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
    enable_profiling: bool = False,
    profile_prefix: str | Path | None = None,
    graph_optimization: str = "all",
):
    """onnxruntime InferenceSession; threads 0 = onnxruntime default; optimisation all|extended|basic|none."""
    import onnxruntime as ort

    levels = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }
    if graph_optimization not in levels:
        raise ValueError(f"graph_optimization: expected one of {sorted(levels)}, found {graph_optimization!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(intra_op_threads)
    options.inter_op_num_threads = int(inter_op_threads)
    options.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL if inter_op_threads > 1 else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    options.graph_optimization_level = levels[graph_optimization]
    options.log_severity_level = 3
    if enable_profiling:
        options.enable_profiling = True
        if profile_prefix is not None:
            options.profile_file_prefix = str(profile_prefix)
    return open_session(model_path, options, resolve_providers(provider))


def input_specs(session) -> list[InputSpec]:
    """Declared inputs of an onnxruntime session as ``InputSpec`` (unknown element types raise ModelInputError)."""
    specs = []
    for arg in session.get_inputs():
        if arg.type not in _ORT_TYPE_TO_NUMPY:
            raise ModelInputError(
                f"input {arg.name!r}: element type {arg.type} is not supported for synthetic inputs; "
                f"expected one of {sorted(_ORT_TYPE_TO_NUMPY)}; pass inputs explicitly"
            )
        specs.append(InputSpec(name=arg.name, shape=tuple(arg.shape), dtype=_ORT_TYPE_TO_NUMPY[arg.type]))
    return specs


def symbolic_dims(specs: Sequence[InputSpec]) -> list[str]:
    """Names of the symbolic dims of the declared inputs, in order of appearance."""
    names: list[str] = []
    for spec in specs:
        names += [dim for dim in spec.shape if isinstance(dim, str) and dim and dim not in names]
    return names


def check_dim_overrides(specs: Sequence[InputSpec], dim_overrides: Mapping[str, int] | None, *, source: str) -> None:
    """``ModelInputError`` when ``dim_overrides`` names a dim no input has, or gives a size below 1."""
    known = symbolic_dims(specs)
    for name, value in (dim_overrides or {}).items():
        if name not in known:
            raise ModelInputError(
                f"{source}: --dim {name}={value}: expected one of the model's symbolic dims {known}, found {name!r}"
            )
        if int(value) < 1:
            raise ModelInputError(f"{source}: --dim {name}={value}: expected a size >= 1")


def synthesize_inputs(
    specs: Sequence[InputSpec],
    *,
    default_dim: int | None = None,
    dim_overrides: Mapping[str, int] | None = None,
    batch: int = 1,
    seed: int = 0,
    float_range: tuple[float, float] = (0.0, 1.0),
    int_range: tuple[int, int] = (0, 10),
) -> dict[str, np.ndarray]:
    """Seeded random inputs for the declared specs: floats uniform in ``float_range``, ints in ``[lo, hi)``;
    symbolic dims as in ``InputSpec.concrete_shape`` (a symbolic non-batch dim needs an override or a
    ``default_dim``)."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = spec.concrete_shape(default_dim, dim_overrides, batch=batch)
        if np.issubdtype(spec.dtype, np.floating):
            feeds[spec.name] = rng.uniform(float_range[0], float_range[1], size=shape).astype(spec.dtype)
        elif spec.dtype is np.bool_:
            feeds[spec.name] = rng.random(size=shape) < 0.5
        else:
            feeds[spec.name] = rng.integers(int_range[0], int_range[1], size=shape).astype(spec.dtype)
    return feeds


def check_inputs(specs: Sequence[InputSpec], feeds: Mapping[str, np.ndarray], *, source: str = "<inputs>") -> None:
    """Raise ModelInputError when ``feeds`` misses a declared input, has an unknown one, or a wrong rank/dim."""
    expected = {spec.name: spec for spec in specs}
    missing = sorted(set(expected) - set(feeds))
    unknown = sorted(set(feeds) - set(expected))
    if missing or unknown:
        raise ModelInputError(
            f"{source}: input names do not match the model; expected {sorted(expected)}, "
            f"missing {missing}, unknown {unknown}"
        )
    for name, spec in expected.items():
        array = np.asarray(feeds[name])
        if array.ndim != len(spec.shape):
            raise ModelInputError(
                f"{source}: input {name!r} expected rank {len(spec.shape)} {spec.shape}, found shape {array.shape}"
            )
        for axis, (want, got) in enumerate(zip(spec.shape, array.shape)):
            if isinstance(want, int) and want > 0 and want != got:
                raise ModelInputError(
                    f"{source}: input {name!r} axis {axis} expected {want} ({spec.shape}), found {got} ({array.shape})"
                )


def save_model_atomic(model, path: str | Path) -> Path:
    """Save an onnx ModelProto to ``path`` through a temporary file in the same folder and a rename."""
    import onnx

    with atomic_path(path) as temporary:
        onnx.save_model(model, str(temporary))
    return Path(path)


def list_nodes(model_or_path, *, op_types: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """``(node name, op type)`` for every graph node (optionally only the given op types), in graph order."""
    model = _load(model_or_path)
    wanted = set(op_types) if op_types is not None else None
    return [(node.name, node.op_type) for node in model.graph.node if wanted is None or node.op_type in wanted]


def candidate_float_nodes(
    model_or_path,
    *,
    prefixes: Sequence[str] = (),
    op_types: Sequence[str] | None = None,
    last_k: int = 0,
    quantizable_only: bool = True,
) -> list[str]:
    """Node names to consider keeping in float: names starting with a prefix, of given op types, or the
    ``last_k`` quantizable nodes closest to the graph outputs (breadth-first upstream from each output)."""
    model = _load(model_or_path)
    nodes = list(model.graph.node)
    quantizable = set(QUANTIZABLE_OP_TYPES)
    chosen: list[str] = []

    def add(name: str) -> None:
        if name and name not in chosen:
            chosen.append(name)

    for node in nodes:
        if prefixes and any(node.name.startswith(prefix) for prefix in prefixes):
            add(node.name)
        if op_types and node.op_type in op_types:
            add(node.name)
    if last_k > 0:
        for name in _nodes_nearest_outputs(model, quantizable if quantizable_only else None)[:last_k]:
            add(name)
    return chosen


def _nodes_nearest_outputs(model, op_types: set[str] | None) -> list[str]:
    """Nodes ordered by graph distance to the nearest graph output (closest first), filtered by op type."""
    producer = {out: node for node in model.graph.node for out in node.output}
    frontier = [producer[o.name] for o in model.graph.output if o.name in producer]
    seen: set[int] = set()
    ordered: list[str] = []
    while frontier:
        next_frontier = []
        for node in frontier:
            if id(node) in seen:
                continue
            seen.add(id(node))
            if op_types is None or node.op_type in op_types:
                ordered.append(node.name)
            next_frontier.extend(producer[i] for i in node.input if i in producer)
        frontier = next_frontier
    return ordered


def _load(model_or_path):
    """Load an onnx ModelProto from a path (without external data), or pass a ModelProto through."""
    import onnx

    if isinstance(model_or_path, (str, Path)):
        return onnx.load(str(model_or_path), load_external_data=False)
    return model_or_path
