"""One streaming HTTP download, used for weights and datasets (for users with internet).

Bytes go to a ``.part`` file chosen by the caller, which renames it once the download is
complete (and, for weights, checked): an interrupted download never looks finished.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .errors import DownloadError

__all__ = ["fetch"]

CHUNK = 1 << 20


def _why(url: str, reason: object) -> str:
    """A network failure in words, not ``[Errno -2] Name or service not known``."""
    host = urllib.parse.urlsplit(url).hostname or url
    if isinstance(reason, socket.gaierror):
        return f"{host} cannot be found (this machine is offline, or its DNS cannot resolve that name)"
    if isinstance(reason, (ConnectionRefusedError, TimeoutError)):
        return f"{host} does not answer (offline, a firewall, or a proxy this machine needs)"
    return str(reason)


def fetch(url: str, part: Path, *, progress: Callable[[int, int | None], None] | None = None,
          timeout: float = 30.0, resume: bool = False) -> int:
    """Stream ``url`` into ``part``; returns the bytes it holds.

    ``resume``: continue an existing ``part`` with an HTTP ``Range`` request (a server that
    ignores it sends everything again, which is written from the start). ``progress`` is called
    with ``(bytes done, bytes total or None)`` after each chunk.

    Raises:
        DownloadError: network failure or an incomplete body (with ``resume``, the message says a
            re-run continues where this one stopped).
    """
    again = " Run again to resume." if resume else ""
    start = part.stat().st_size if resume and part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = bool(start) and response.status == 206
            done = start if resumed else 0
            length = response.headers.get("Content-Length")
            total = done + int(length) if length else None
            with part.open("ab" if resumed else "wb") as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DownloadError(f"Could not download {url}: {_why(url, getattr(exc, 'reason', exc))}.{again}") from exc
    if total is not None and done != total:
        raise DownloadError(f"Download of {url} stopped at {done} of {total} bytes.{again}")
    return done
