"""Files at URIs (``s3://``, ``gs://``, ``file://``), read and written through pyarrow's file systems, as
cluster workers do. Imported by :mod:`core.cluster` only; pyarrow comes with the cluster extra."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from ._files import write_file
from ._io import IMAGE_SUFFIXES, DecodedImage, ImageLimits, decode_with_profile, read_with_profile
from .errors import ImageDecodeError, ImageTooLargeError, StudioError

__all__ = ["is_uri", "list_uri", "read_any", "write_any"]


def is_uri(name: str | Path) -> bool:
    return "://" in str(name)


def list_uri(uri: str) -> list[str]:
    """The image files a URI names (``s3://bucket/prefix/``, ``gs://…``, ``file:///…``): the file itself,
    or the images in that folder (not recursive), sorted; read through pyarrow's file systems."""
    import pyarrow.fs

    try:
        fs, root = pyarrow.fs.FileSystem.from_uri(uri)
        info = fs.get_file_info(root)
        if info.type == pyarrow.fs.FileType.NotFound:
            raise StudioError(f"{uri}: no such file or folder.")
        if info.type == pyarrow.fs.FileType.File:
            return [uri]
        entries = fs.get_file_info(pyarrow.fs.FileSelector(root))
    except (OSError, pyarrow.ArrowException) as exc:
        raise StudioError(f"Cannot list {uri}: {exc}") from exc
    base = uri.rstrip("/")
    return sorted(f"{base}/{e.base_name}" for e in entries
                  if e.type == pyarrow.fs.FileType.File and Path(e.base_name).suffix.lower() in IMAGE_SUFFIXES)


def read_any(name: str, limits: ImageLimits) -> DecodedImage:
    """Decode a local image file or one at a URI (through pyarrow's file systems), refusing it over
    ``limits.max_file_bytes`` before it is read; with its ICC profile."""
    if not is_uri(name):
        return read_with_profile(name, limits)
    import pyarrow.fs

    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(name)
        size = fs.get_file_info(path).size
        if size is not None and size > limits.max_file_bytes:
            raise ImageTooLargeError(f"{name}: {size} bytes; the limit is {limits.max_file_bytes}.")
        with fs.open_input_stream(path) as stream:
            data = stream.read()
    except (OSError, pyarrow.ArrowException) as exc:
        raise ImageDecodeError(f"Cannot read {name}: {exc}") from exc
    return decode_with_profile(data, limits)


def write_any(name: str, data: bytes) -> str:
    """Write ``data`` to a local path or a URI, never half-written: a local file (or ``file://``) is
    replaced atomically, and an object store shows an object only once its upload completed. Returns
    where it went.

    Raises:
        StudioError: the destination cannot be written (its message says why).
    """
    if not is_uri(name) or name.startswith("file://"):
        path = Path(unquote(urlsplit(name).path)) if is_uri(name) else Path(name)
        try:
            return str(write_file(path, data))
        except OSError as exc:
            raise StudioError(f"Cannot write {name}: {exc.strerror or exc}") from exc
    import pyarrow.fs

    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(name)
        with fs.open_output_stream(path) as stream:
            stream.write(data)
    except (OSError, pyarrow.ArrowException) as exc:
        raise StudioError(f"Cannot write {name}: {exc}") from exc
    return name
