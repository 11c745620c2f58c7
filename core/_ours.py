"""Which files the studio wrote: we only ever replace those.

Every output file a batch writes carries a mark: a PNG gets a ``tEXt`` chunk ``Software`` =
``realesrgan-studio`` right after its header, an HTML page a ``<meta name="generator">`` line, a JSON
file a ``"written_by"`` key. :func:`ownership` reads the mark back from the first bytes of a file, so a
user's own ``photo_out.png`` (or an older file with no mark) is never taken for an earlier output, never
skipped as done and never replaced.
"""

from __future__ import annotations

import json
import re
import zlib
from enum import Enum
from pathlib import Path

__all__ = ["GENERATOR", "HTML_MARK", "Ownership", "mark_json", "mark_png", "ownership"]

GENERATOR = "realesrgan-studio"
HTML_MARK = f'<meta name="generator" content="{GENERATOR}">'
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT = b"Software\x00" + GENERATOR.encode("ascii")
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JSON_MARK = re.compile(r'\s*\{\s*"written_by":\s*"' + GENERATOR + '"')  # the first key
_HEAD = 65536  # the mark sits near the start: an ICC profile may come before it, and is smaller than this


class Ownership(Enum):
    """What is at an output's path: ``MISSING``; ``EMPTY`` (0 bytes: nothing to lose); ``OURS`` (a whole file
    the studio wrote); ``OURS_CUT`` (marked, but cut short: copied in part); ``FOREIGN`` (anything else: a
    user's file, or one from a version of the studio that did not mark its files)."""

    MISSING = "missing"
    EMPTY = "empty"
    OURS = "ours"
    OURS_CUT = "ours, cut short"
    FOREIGN = "foreign"

    @property
    def replaceable(self) -> bool:
        return self is not Ownership.FOREIGN


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")


def mark_png(png: bytes) -> bytes:
    """``png`` with the studio's ``tEXt`` chunk right after ``IHDR`` (the pixels are unchanged)."""
    after_ihdr = len(_PNG_SIGNATURE) + 8 + int.from_bytes(png[8:12], "big") + 4
    return png[:after_ihdr] + _chunk(b"tEXt", _TEXT) + png[after_ihdr:]


def mark_json(payload: dict) -> dict:
    """``payload`` with ``"written_by": "realesrgan-studio"`` first."""
    return {"written_by": GENERATOR} | {k: v for k, v in payload.items() if k != "written_by"}


def _png_marked(head: bytes) -> bool:
    position = len(_PNG_SIGNATURE)
    while position + 8 <= len(head):
        length = int.from_bytes(head[position : position + 4], "big")
        kind = head[position + 4 : position + 8]
        if kind in (b"IDAT", b"IEND"):
            return False
        if kind == b"tEXt" and head[position + 8 : position + 8 + length] == _TEXT:
            return True
        position += 12 + length
    return False


def ownership(path: Path) -> Ownership:
    """Who wrote the file at ``path``, read from its first bytes (and its last 64: whether it is whole)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD)
            if not head:
                return Ownership.EMPTY
            size = handle.seek(0, 2)
            handle.seek(max(size - 64, 0))
            tail = handle.read()
    except (FileNotFoundError, NotADirectoryError):  # nothing there (a file where a folder would be is no output)
        return Ownership.MISSING
    except OSError:  # a folder, or unreadable: not ours to replace
        return Ownership.FOREIGN
    if head.startswith(_PNG_SIGNATURE):
        if not _png_marked(head):
            return Ownership.FOREIGN
        return Ownership.OURS if tail.endswith(_IEND) else Ownership.OURS_CUT
    text = head.decode("utf-8", errors="replace")
    if text.lstrip().startswith("<") and HTML_MARK in text[:4096]:
        return Ownership.OURS if b"</html>" in tail.lower() else Ownership.OURS_CUT
    if _JSON_MARK.match(text):
        try:
            json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return Ownership.OURS_CUT
        return Ownership.OURS
    return Ownership.FOREIGN
