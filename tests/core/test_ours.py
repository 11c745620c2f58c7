"""The studio's mark on the files it writes, read back: the only files it ever replaces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import core
from core._ours import Ownership, mark_json, mark_png, ownership


def test_a_marked_png_decodes_to_the_same_pixels_and_profile(tmp_path: Path) -> None:
    image = (np.arange(12 * 10 * 4).reshape(12, 10, 4) * 97 % 65536).astype(np.uint16)
    profile = b"\x00" * 128 + b"acsp" + b"\x01" * 200
    png = mark_png(core.encode_png(image, icc_profile=profile))
    decoded = core.decode_with_profile(png)
    np.testing.assert_array_equal(decoded.pixels, image)
    assert decoded.icc_profile == profile
    (tmp_path / "a.png").write_bytes(png)
    assert ownership(tmp_path / "a.png") is Ownership.OURS


def test_what_is_not_whole_and_marked_is_not_ours(tmp_path: Path) -> None:
    plain = core.encode_png(np.zeros((4, 4, 3), np.uint8))
    cases = {"user.png": plain, "cut.png": mark_png(plain)[:-20], "empty.png": b"", "notes.txt": b"my notes",
             "page.html": b"<!doctype html><p>mine</p></html>"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    found = {name: ownership(tmp_path / name) for name in cases}
    assert found == {"user.png": Ownership.FOREIGN, "cut.png": Ownership.OURS_CUT, "empty.png": Ownership.EMPTY,
                     "notes.txt": Ownership.FOREIGN, "page.html": Ownership.FOREIGN}
    assert ownership(tmp_path / "missing.png") is Ownership.MISSING
    assert ownership(tmp_path / "notes.txt" / "x.png") is Ownership.MISSING
    assert ownership(tmp_path) is Ownership.FOREIGN  # a folder is never replaced
    assert [o.replaceable for o in (Ownership.OURS, Ownership.EMPTY, Ownership.FOREIGN)] == [True, True, False]


def test_json_and_pages_the_studio_writes_are_marked(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps(mark_json({"seed": 1, "written_by": "someone"}), indent=2))
    assert json.loads((tmp_path / "p.json").read_text()) == {"written_by": "realesrgan-studio", "seed": 1}
    assert ownership(tmp_path / "p.json") is Ownership.OURS
    (tmp_path / "q.json").write_text(json.dumps({"seed": 1, "written_by": "realesrgan-studio"}))  # not first
    assert ownership(tmp_path / "q.json") is Ownership.FOREIGN
    lr = core.load_sample("rocket")[:16, :16]
    result = core.compare.score_outputs(lr, {"a": lr, "b": lr[::-1].copy()}, None, ())
    page = core.compare.write_comparison(tmp_path / "c.html", result, title="t")
    assert ownership(page) is Ownership.OURS
    page.write_bytes(page.read_bytes()[:-200])
    assert ownership(page) is Ownership.OURS_CUT
