"""Files at URIs (``s3://``, ``gs://``, ``file://``), listed, read and written through pyarrow's file systems,
as cluster workers do. pyarrow comes with the cluster extra, and is imported only when a URI is used."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from ._files import write_file
from ._io import IMAGE_SUFFIXES, DecodedImage, ImageLimits, decode_with_profile, read_with_profile
from .errors import ImageDecodeError, ImageTooLargeError, StudioError

__all__ = ["is_uri", "list_tree", "list_uri", "read_any", "read_uri_bytes", "write_any"]


def is_uri(name: str | Path) -> bool:
    return "://" in str(name)


def _file_systems():  # -> the pyarrow.fs module, or a clear StudioError where it is missing
    try:
        import pyarrow.fs
    except ImportError as exc:
        raise StudioError("URIs (s3://, gs://) are read through pyarrow, which comes with the cluster extra: "
                          ".venv/bin/pip install -r requirements-cluster.txt.") from exc
    return pyarrow.fs


def list_tree(uri: str) -> list[tuple[str, int, int]]:
    """Every file below the folder ``uri`` (recursively), once: ``(path relative to it, size, modification time
    in ns)``, sorted. An object store lists a prefix in pages of 1,000 keys, not one request per folder.

    Raises:
        StudioError: nothing is there, or it cannot be listed (the message says why).
    """
    fs_module = _file_systems()
    import pyarrow

    try:
        fs, root = fs_module.FileSystem.from_uri(uri)
        root = root.rstrip("/")
        entries = fs.get_file_info(fs_module.FileSelector(root, recursive=True, allow_not_found=True))
    except (OSError, pyarrow.ArrowException) as exc:
        raise StudioError(f"Cannot list {uri}: {exc}") from exc
    files = sorted((e.path[len(root) + 1:], e.size or 0, e.mtime_ns or 0) for e in entries
                   if e.type == fs_module.FileType.File)
    if not files:
        raise StudioError(f"{uri}: no such folder, or no file in it.")
    return files


def read_uri_bytes(uri: str, max_bytes: int) -> bytes:
    """The bytes of the file at ``uri``, refused over ``max_bytes`` before they are read.

    Raises:
        ImageTooLargeError: the file is larger than ``max_bytes``.
        ImageDecodeError: it cannot be read (the message says why).
    """
    fs_module = _file_systems()
    import pyarrow

    try:
        fs, path = fs_module.FileSystem.from_uri(uri)
        size = fs.get_file_info(path).size
        if size is not None and size > max_bytes:
            raise ImageTooLargeError(f"{uri}: {size} bytes; the limit is {max_bytes}.")
        with fs.open_input_stream(path) as stream:
            return stream.read()
    except (OSError, pyarrow.ArrowException) as exc:
        raise ImageDecodeError(f"Cannot read {uri}: {exc}") from exc


def list_uri(uri: str) -> list[str]:
    """The image files a URI names (``s3://bucket/prefix/``, ``gs://…``, ``file:///…``): the file itself,
    or the images in that folder (not recursive), sorted; read through pyarrow's file systems."""
    _file_systems()
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
    return decode_with_profile(read_uri_bytes(name, limits.max_file_bytes), limits)


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
    _file_systems()
    import pyarrow.fs

    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(name)
        with fs.open_output_stream(path) as stream:
            stream.write(data)
    except (OSError, pyarrow.ArrowException) as exc:
        raise StudioError(f"Cannot write {name}: {exc}") from exc
    return name
