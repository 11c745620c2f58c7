"""DIV2K download and safe zip extraction, for users with internet: downloads resume (HTTP ``Range``) and
land atomically (``.part``, then renamed); archives are extracted safely (no absolute paths, no ``..``, no
links, size limits)."""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from .._download import fetch
from .._files import atomic_open
from ..errors import DatasetError

__all__ = ["DIV2K_URL", "ZIP_FAULTS", "download_div2k", "extract_zip"]

DIV2K_URL = "http://data.vision.ee.ethz.ch/cvl/DIV2K"

# what reading a damaged archive raises: a bad CRC, a truncated file or not a zip, an unreadable file
ZIP_FAULTS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError)

MAX_MEMBER_BYTES = 200 * 1024 * 1024
MAX_TOTAL_BYTES = 20 * 1024 * 1024 * 1024
MAX_MEMBERS = 20_000


def extract_zip(archive_path: Path, dest: Path, *, max_member_bytes: int = MAX_MEMBER_BYTES,
                max_total_bytes: int = MAX_TOTAL_BYTES, max_members: int = MAX_MEMBERS) -> list[Path]:
    """Extract a zip safely; returns the extracted files.

    Refuses (before writing anything) absolute names, ``..`` components, links, too many
    members, or declared sizes over the limits; stops if a member inflates past its size.

    Raises:
        DatasetError: an unsafe or oversized archive, or not a zip file.
    """
    try:
        archive = zipfile.ZipFile(archive_path)
    except ZIP_FAULTS as exc:
        raise DatasetError(f"{archive_path.name} is not a valid zip file.") from exc
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if len(infos) > max_members:
            raise DatasetError(f"{archive_path.name} has {len(infos)} files; the limit is {max_members}.")
        total = 0
        for info in infos:
            name = Path(info.filename)
            if name.is_absolute() or ".." in name.parts or info.filename.startswith(("/", "\\")):
                raise DatasetError(f"{archive_path.name}: unsafe path {info.filename!r}.")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise DatasetError(f"{archive_path.name}: links are not allowed ({info.filename}).")
            if info.file_size > max_member_bytes:
                raise DatasetError(f"{archive_path.name}: {info.filename} is too large ({info.file_size} bytes).")
            total += info.file_size
        if total > max_total_bytes:
            raise DatasetError(f"{archive_path.name} would extract to {total} bytes; the limit is {max_total_bytes}.")
        written = []
        dest_resolved = dest.resolve()
        for info in infos:
            target = (dest / info.filename).resolve()
            if dest_resolved not in target.parents:
                raise DatasetError(f"{archive_path.name}: unsafe path {info.filename!r}.")
            try:
                with archive.open(info) as source, atomic_open(target) as out:
                    copied = 0
                    while chunk := source.read(1 << 20):
                        copied += len(chunk)
                        if copied > info.file_size:
                            raise DatasetError(f"{archive_path.name}: {info.filename} inflates beyond its size.")
                        out.write(chunk)
            except ZIP_FAULTS as exc:  # bad CRC, truncated archive, full disk, a name too long
                raise DatasetError(f"{archive_path.name}: {info.filename} cannot be extracted ({exc}).") from exc
            written.append(target)
        return written


def _download_resumable(url: str, target: Path, progress: Callable[[int, int | None], None] | None,
                        timeout: float) -> Path:
    part = target.with_name(target.name + ".part")
    fetch(url, part, progress=progress, timeout=timeout, resume=True)
    part.replace(target)
    return target


def download_div2k(dest: Path, scales: tuple[int, ...] = (4,), *, split: str = "valid", base_url: str = DIV2K_URL,
                   extract: bool = True, progress: Callable[[str, int, int | None], None] | None = None,
                   timeout: float = 60.0) -> Path:
    """Download DIV2K (HR and bicubic LR for ``scales``) into ``dest``; returns ``dest``.

    Finished zips are kept and skipped next time; an interrupted download resumes.
    """
    dest.mkdir(parents=True, exist_ok=True)
    names = [f"DIV2K_{split}_HR.zip"] + [f"DIV2K_{split}_LR_bicubic_X{s}.zip" for s in scales]
    for name in names:
        target = dest / name
        if not target.exists():
            callback = (lambda d, t, name=name: progress(name, d, t)) if progress else None
            _download_resumable(f"{base_url}/{name}", target, callback, timeout)
        if extract:
            marker = dest / f".{name}.extracted"
            if not marker.exists():
                extract_zip(target, dest)
                marker.touch()
    return dest

