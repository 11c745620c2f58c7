"""Every file the project writes is written atomically: readers and other writers never see a part."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import core
from core._files import atomic_open

ROOT = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent("""
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("files", sys.argv[1])
    files = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(files)
    payload = sys.argv[3].encode() * 200_000
    failures = 0
    for _ in range(int(sys.argv[4])):
        try:
            files.write_file(sys.argv[2], payload)
        except OSError:
            failures += 1
    print(failures)
""")


def test_two_processes_writing_one_file_never_tear_it(tmp_path: Path) -> None:
    """Two writers (a restarted batch beside the dashboard) and a reader: every read is one writer's whole file."""
    target = tmp_path / "results.json"
    core.write_file(target, b"A" * 200_000)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT / "core" / "_files.py"), str(target),
                                 letter, "120"], stdout=subprocess.PIPE, text=True) for letter in "AB"]
    torn, reads = 0, 0
    while any(w.poll() is None for w in writers) or reads < 300:
        data = target.read_bytes()
        reads += 1
        torn += not (len(data) == 200_000 and data.count(data[:1]) == len(data))
    failures = [int(w.communicate(timeout=120)[0]) for w in writers]
    assert torn == 0 and failures == [0, 0], (torn, reads, failures)
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left behind


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    target = core.write_file(tmp_path / "results.csv", "old")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as handle:
        handle.write("half of the new")
        raise RuntimeError("a full disk, a kill")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_written_files_have_the_usual_permissions(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    assert (core.write_file(tmp_path / "x.png", b"x").stat().st_mode & 0o777) == 0o666 & ~mask
    long_name = "n" * 250 + ".png"  # the temporary name stays within the file system's limit
    assert core.write_file(tmp_path / long_name, b"y").read_bytes() == b"y"


def test_a_truncated_results_file_is_a_damaged_run_not_a_traceback(tmp_path: Path) -> None:
    result = core.evaluate(core.open_dataset("samples", 4), ["bicubic"], ["psnr"])
    _, json_path = core.write_results(result, tmp_path / "run")
    assert core.read_results(tmp_path / "run")["means"]["bicubic"]["images"] == 6
    json_path.write_bytes(json_path.read_bytes()[:100])
    with pytest.raises(core.errors.DamagedFileError, match="damaged"):
        core.read_results(tmp_path / "run")


def test_new_folder_never_hands_out_a_folder_twice(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:  # runs started in the same second, from several threads
        folders = list(pool.map(lambda _: core.new_folder(tmp_path / "results", "20261202-101500"), range(16)))
    assert len(set(folders)) == 16 and all(f.is_dir() and not any(f.iterdir()) for f in folders)
    names = {f.name for f in folders}
    assert "20261202-101500" in names and "20261202-101500-16" in names
