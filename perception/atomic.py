"""Atomic writes: a temporary file (or folder) beside the target, then a rename, so readers never see half a file.

The one module for this in the project; every package imports it.

- ``atomic_write_bytes`` / ``atomic_write_text`` / ``atomic_write_json``: the whole contents at once.
- ``atomic_text_stream(path)``: a text file written piece by piece (no whole document in memory).
- ``atomic_path(path)``: a temporary file name for writers that take a name (``onnx.save_model``, ``torch.save``,
  ``numpy.lib.format.open_memmap``), renamed into place when the block succeeds.
- ``PendingFile``: the same as an object with ``commit``/``abort``, for files whose writing spans a whole run.
- ``atomic_directory(path)``: a folder filled under a temporary name and renamed into place, replacing an old one
  (``make_staging_dir`` + ``replace_directory`` for writers with their own open/close life cycle).
- ``path_inside(root, *parts)``: ``root/parts...`` for a writer, refused (``PathEscapeError``) when a part is absolute
  or ``..`` or the result (symbolic links resolved) lies outside ``root``: names read from files (cameras, classes,
  inputs) never make a writer touch anything outside its output folder.

Temporary names start with ``.<name>.`` beside the target, so they stay on the same file system (rename is atomic)
and are hidden. Folders are named ``.<name>.<tag>-<pid>-<random>.tmp``: a cleaner can tell a live writer's folder
from a dead one's by the process id.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import IO, Any

from perception.errors import InputError

_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what open() would give; mkstemp makes files private (0600)
DIR_MODE = 0o777 & ~_UMASK  # what mkdir would give; mkdtemp makes folders private (0700)


class PathEscapeError(InputError):
    """A name used as a path would leave its output folder (absolute, ``..``, or through a symbolic link)."""


def path_inside(root: str | os.PathLike, *parts: str | os.PathLike) -> Path:
    """``root`` joined with ``parts``, checked to stay strictly inside ``root`` (``PathEscapeError`` otherwise).

    Each part must be a relative path without ``..`` components; the joined path, with symbolic links resolved,
    must lie below ``root`` (also resolved) and not be ``root`` itself.
    """
    root = Path(root)
    for part in parts:
        pure = PurePath(part)
        if str(part) == "" or pure.is_absolute() or pure.drive or ".." in pure.parts or "\0" in str(part):
            raise PathEscapeError(
                f"{root}: name {str(part)!r}: expected a relative path inside the output folder (no '/' at the "
                f"start, no '..'), found one that would leave it"
            )
    candidate = root.joinpath(*parts)
    resolved_root, resolved = root.resolve(), candidate.resolve()
    if resolved == resolved_root or resolved_root not in resolved.parents:
        raise PathEscapeError(
            f"{root}: name {'/'.join(map(str, parts))!r}: expected a path inside the output folder, found "
            f"{resolved} (through a symbolic link?)"
        )
    return candidate


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class PendingFile:
    """A temporary file beside ``path`` that becomes ``path`` on ``commit`` (a rename) or vanishes on ``abort``.

    With ``mode`` (``"w"``: UTF-8 text, ``"wb"``: bytes) the file is open: ``write`` and ``stream``. Without a mode
    only the name ``temporary`` is reserved, for writers that take a file name; ``suffix`` keeps an extension such
    writers need (``".mp4"``). As a context manager it commits when the block succeeds and aborts when it raises.
    A file neither committed nor aborted is removed when the object is garbage-collected.
    """

    def __init__(self, path: str | os.PathLike, mode: str | None = None, *, suffix: str = ".tmp") -> None:
        if mode not in (None, "w", "wb"):
            raise ValueError(f"PendingFile mode: expected None, 'w' or 'wb', found {mode!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=suffix, dir=self.path.parent)
        self.temporary = Path(temporary)
        self._cleanup = weakref.finalize(self, _unlink_quietly, temporary)
        if mode is None:
            os.close(handle)
            self.stream: IO[Any] | None = None
        else:
            self.stream = os.fdopen(handle, mode, **({"encoding": "utf-8"} if mode == "w" else {}))
        self.committed = False

    def write(self, data: str | bytes) -> int:
        if self.stream is None:
            raise ValueError(f"{self.path}: PendingFile opened without a mode has no stream to write to")
        return self.stream.write(data)

    def close(self) -> None:
        """Close the stream (the file keeps its temporary name until ``commit``)."""
        if self.stream is not None and not self.stream.closed:
            self.stream.close()

    def commit(self) -> Path:
        """Close, give the file ordinary permissions and rename it to ``path``."""
        self.close()
        os.chmod(self.temporary, FILE_MODE)
        os.replace(self.temporary, self.path)
        self.committed = True
        self._cleanup.detach()
        return self.path

    def abort(self) -> None:
        """Close and remove the temporary file (``path`` is left as it was)."""
        self.close()
        self._cleanup()

    def __enter__(self) -> PendingFile:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    with PendingFile(path, "wb") as pending:
        pending.write(data)
    return pending.path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text atomically (see ``atomic_write_bytes``)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, data: object, indent: int | None = 1, **dumps: Any) -> Path:
    """Write ``data`` as JSON atomically; ``dumps`` go to ``json.dumps`` (``default=str``, ``allow_nan=False``...)."""
    return atomic_write_text(path, json.dumps(data, indent=indent, **dumps))


@contextlib.contextmanager
def atomic_text_stream(path: str | os.PathLike) -> Iterator[IO[str]]:
    """A UTF-8 text stream into a temporary file, renamed to ``path`` when the block succeeds."""
    with PendingFile(path, "w") as pending:
        assert pending.stream is not None
        yield pending.stream


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file name beside ``path`` for writers that take a name; renamed to ``path`` on success."""
    with PendingFile(path, suffix=suffix) as pending:
        yield pending.temporary


def make_staging_dir(path: str | os.PathLike, *, tag: str = "partial") -> Path:
    """An empty hidden folder ``.<name>.<tag>-<pid>-<random>.tmp`` beside ``path`` (ordinary permissions)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.{tag}-{os.getpid()}-", suffix=".tmp", dir=path.parent))
    os.chmod(staging, DIR_MODE)
    return staging


def replace_directory(staging: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Rename the finished folder ``staging`` to ``path``; an existing ``path`` is first renamed aside to
    ``.<name>.old-<pid>`` and removed afterwards, so ``path`` is always either the old or the new folder."""
    staging, path = Path(staging), Path(path)
    if path.exists():
        trash = path.with_name(f".{path.name}.old-{os.getpid()}")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(path, trash)
        os.replace(staging, path)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, path)
    return path


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, tag: str = "partial") -> Iterator[Path]:
    """A staging folder (see ``make_staging_dir``) that replaces ``path`` when the block succeeds and is removed
    when it raises."""
    staging = make_staging_dir(path, tag=tag)
    try:
        yield staging
        replace_directory(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
