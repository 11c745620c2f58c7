"""Saved sessions for a reload are capped by age, by count and by size; the newest are kept."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dashboard import restore


def _sessions(root: Path, sizes: list[int]) -> list[Path]:
    folders = []
    for age, size in enumerate(sizes):  # the first is the newest
        folder = root / f"{age:02d}{'t' * 20}"
        (folder / "last").mkdir(parents=True)
        (folder / "last" / "result-0.png").write_bytes(b"x" * size)
        os.utime(folder, (time.time() - age * 60,) * 2)
        folders.append(folder)
    return folders


def test_the_oldest_go_first_past_the_count_and_the_size(tmp_path: Path) -> None:
    folders = _sessions(tmp_path, [10] * 6)
    restore._prune(tmp_path, count=4)
    assert sorted(tmp_path.iterdir()) == folders[:4]
    restore._prune(tmp_path, size=25)
    assert sorted(tmp_path.iterdir()) == folders[:2]


def test_the_session_just_saved_is_kept_whatever_its_size(tmp_path: Path) -> None:
    folders = _sessions(tmp_path, [500, 10, 10])
    restore._prune(tmp_path, keep=folders[0], size=100)
    assert sorted(tmp_path.iterdir()) == folders[:1]
    old = _sessions(tmp_path / "b", [10, 10])
    os.utime(old[1], (time.time() - 8 * 86400,) * 2)
    restore._prune(tmp_path / "b")
    assert list((tmp_path / "b").iterdir()) == old[:1]
