"""Every file the project writes is written atomically.

A writer fills a temporary file with a name of its own (``.NAME.<random>.part`` beside the
target), flushes and ``fsync``s it, gives it the permissions a plain ``open`` would have, and
renames it over the target in one step; the folder is ``fsync``ed after the rename. So a reader
sees the old file or the new one, never a part; two writers of one file never share a
temporary file (the last rename wins, whole); a kill, a full disk or an exception leaves the
old file as it was and removes the temporary one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_open", "new_folder", "write_file"]


def _umask() -> int:
    # os.umask can only be read by setting it: done once, at import, before threads use it
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform or file system that cannot open folders: the rename stands
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, newline: str | None = None) -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` atomically when the ``with`` block ends.

    ``mode`` is ``"wb"`` or ``"w"`` (text, UTF-8). The parent folder is created. If the block
    raises, ``path`` is left untouched and the temporary file is removed.

    Raises:
        OSError: the folder cannot be created or written, or the disk is full.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode 'wb' or 'w', not {mode!r}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of our own per writer; the target's name is cut so that the temporary one stays legal
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name[:120]}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        if hasattr(os, "fchmod"):  # not on Windows
            os.fchmod(fd, _MODE)
        handle = os.fdopen(fd, mode, encoding="utf-8", newline=newline) if mode == "w" else os.fdopen(fd, mode)
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def write_file(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically; see :func:`atomic_open`."""
    with atomic_open(path, "wb") as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def new_folder(parent: Path, stem: str) -> Path:
    """A new, empty folder ``parent/stem`` (``stem-2``, ``stem-3``, … where that exists): two runs started
    in the same second never share, or overwrite, one folder."""
    parent.mkdir(parents=True, exist_ok=True)
    for number in range(1, 10_000):
        folder = parent / (stem if number == 1 else f"{stem}-{number}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"{parent} holds 10000 folders named {stem}*; move some away.")
