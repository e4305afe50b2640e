"""Content hashes: one function for every file hash the pipeline records or compares."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (videos, GGUF weights, test sets)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def short_hash(*parts: str | bytes, length: int = 16) -> str:
    """A short hex digest of ``parts`` (each hashed on its own, so part boundaries matter): a cache key.

    >>> short_hash("a", "b") != short_hash("ab")
    True
    """
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part.encode() if isinstance(part, str) else part).digest())
    return digest.hexdigest()[:length]
