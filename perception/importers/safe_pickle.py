"""A restricted unpickler for info files from the internet: plain containers and numpy arrays/scalars only.

``pickle.load`` runs whatever a file names (``os.system`` via ``__reduce__``); this loader refuses every global
that is not on a short allow-list, so a malicious file fails with ``UnsafePickleError`` before any code runs.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

from perception.errors import InputError

ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # protocol-2 pickles store numpy scalar bytes as latin-1 text
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "complex"),
        ("collections", "OrderedDict"),
    }
)


class UnsafePickleError(InputError, pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list (it could run code)."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` resolves only ``ALLOWED_GLOBALS``."""

    source = "<pickle>"

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"{self.source}: refused to load global '{module}.{name}': only plain containers and numpy "
                f"arrays/scalars are allowed in info files (a pickle that names other globals can run code). "
                f"Convert the file to JSON with a trusted tool if it really needs other types."
            )
        import numpy  # noqa: F401  (resolves numpy.core / numpy._core on any numpy version)

        if module.startswith("numpy.core") and not _has_module(module):
            module = module.replace("numpy.core", "numpy._core", 1)
        elif module.startswith("numpy._core") and not _has_module(module):
            module = module.replace("numpy._core", "numpy.core", 1)
        return super().find_class(module, name)


def _has_module(module: str) -> bool:
    import importlib

    try:
        importlib.import_module(module)
        return True
    except ImportError:
        return False


def safe_load_bytes(data: bytes, source: str = "<bytes>") -> object:
    """Unpickle ``data`` through ``RestrictedUnpickler``."""
    unpickler = RestrictedUnpickler(io.BytesIO(data))
    unpickler.source = source
    return unpickler.load()


def safe_load(path: str | os.PathLike) -> object:
    """Unpickle a file through ``RestrictedUnpickler`` (``UnsafePickleError`` names the file and the global)."""
    path = Path(path)
    return safe_load_bytes(path.read_bytes(), source=str(path))
