"""Weights identified by their content: a file's SHA-256, computed once per (path, size, mtime).

A model's fingerprint keys the result store, the engine choices and the OpenVINO cache, and is recorded in every
row it scores. It used to be the file's name and size, which two epochs of one architecture share, so a retrained
checkpoint dropped in under the old name reused the old scores. Hashing 64 MB takes about 0.1 s; the cache makes
every later call a ``stat``.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

__all__ = ["file_digest"]

_CHUNK = 1 << 20
_cache: dict[tuple[str, int, int], str] = {}
_lock = threading.Lock()


def file_digest(path: Path) -> str:
    """The SHA-256 of ``path``'s bytes (hex), cached by its resolved path, size and modification time, so a file
    replaced in place (even with one of the same size) is hashed again."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _lock:
        found = _cache.get(key)
    if found is not None:
        return found
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    with _lock:
        _cache[key] = value
    return value
