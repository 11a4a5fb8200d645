"""File hashing: the one helper every package uses for weights, checkpoints and exported models."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file's bytes (streamed by ``hashlib.file_digest``)."""
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()
