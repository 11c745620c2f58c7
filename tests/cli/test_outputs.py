"""`upscale`'s outputs never replace its inputs, and a re-run into the same folder never takes them for inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import core
from cli.main import main

MODEL = ["--model", "realesr-animevideov3", "-q"]


def _folder(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    folder = tmp_path / "photos"
    crops = {"a.png": core.load_sample("rocket")[:16, :20], "b.png": core.load_sample("chelsea")[:12, :12]}
    for name, crop in crops.items():
        core.write_png(folder / name, crop)
    return folder, crops


def test_upscaling_a_folder_into_itself_keeps_the_originals_and_does_not_upscale_its_outputs(
        weights_dir: Path, tmp_path: Path, capsys) -> None:
    folder, crops = _folder(tmp_path)
    args = ["--weights-dir", str(weights_dir), "upscale", str(folder), "-o", str(folder), *MODEL]
    for _ in range(2):  # the second run finds a_out.png / b_out.png beside the inputs
        assert main(args) == 0
        for name, crop in crops.items():
            np.testing.assert_array_equal(core.read_image(folder / name), crop)  # the originals, untouched
            out = core.read_image(folder / name.replace(".png", "_out.png"))
            assert out.shape[:2] == (crop.shape[0] * 4, crop.shape[1] * 4)  # x4 of the input, never x16
        assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a_out.png", "b.png", "b_out.png"]
    capsys.readouterr()
    kept = (folder / "a_out.png").read_bytes()
    (folder / "b_out.png").write_bytes(b"")  # an empty file (a copy that failed) holds nothing: made again
    assert main([*args, "--skip-existing"]) == 0  # resumes: the outputs exist, the inputs are still inputs
    printed = capsys.readouterr().out
    assert "a_out.png (exists; skipped)" in printed and "a_out_out" not in printed
    assert "b_out.png (exists; skipped)" not in printed and "b.png ->" in printed
    assert (folder / "a_out.png").read_bytes() == kept
    assert core.read_image(folder / "b_out.png").shape == (48, 48, 3)


def test_a_users_own_file_named_like_an_output_is_never_replaced(weights_dir: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Only files the studio wrote (they carry its mark) are replaced, skipped or taken for earlier outputs."""
    folder, _ = _folder(tmp_path)
    mine = core.encode_png(core.load_sample("coffee")[:10, :10])  # the user's own b_out.png, from another tool
    (folder / "b_out.png").write_bytes(mine)
    monkeypatch.chdir(folder)
    for extra in ([], ["--skip-existing"]):
        assert main(["--weights-dir", str(weights_dir), "upscale", ".", "-o", ".", *MODEL, *extra]) == 2
        err = capsys.readouterr().err
        assert "b_out.png would replace the input" in err and "not written by the studio" in err, err
        assert (folder / "b_out.png").read_bytes() == mine
        assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.png", "b_out.png"]  # nothing ran
    assert main(["--weights-dir", str(weights_dir), "upscale", ".", "-o", "out", *MODEL]) == 0  # elsewhere: fine
    assert sorted(p.name for p in (folder / "out").iterdir()) == ["a.png", "b.png", "b_out.png"]
    assert core.pipeline.ownership(folder / "out" / "b_out.png") is core.pipeline.Ownership.OURS
    assert core.pipeline.ownership(folder / "b_out.png") is core.pipeline.Ownership.FOREIGN


@pytest.mark.parametrize("suffix", ["/../../src/a_b", "_x/y", "..", ".hidden", "_a\\b", "_\x00", " _x"])
def test_a_suffix_is_a_name_fragment(weights_dir: Path, tmp_path: Path, capsys, suffix: str) -> None:
    src = tmp_path / "src"
    core.write_png(src / "a.png", core.load_sample("rocket")[:8, :8])
    core.write_png(src / "a_b.png", core.load_sample("coffee")[:8, :8])
    before = (src / "a_b.png").read_bytes()
    code = main(["--weights-dir", str(weights_dir), "upscale", str(src / "a.png"), "-o", str(tmp_path / "out"),
                 f"--suffix={suffix}", *MODEL])
    assert code == 2
    err = capsys.readouterr().err
    assert "a suffix is a name fragment" in err and "Traceback" not in err
    assert (src / "a_b.png").read_bytes() == before and not (tmp_path / "out").exists() or \
        not any((tmp_path / "out").iterdir())


def test_an_empty_suffix_into_the_input_folder_is_refused_before_anything_runs(
        weights_dir: Path, tmp_path: Path, capsys) -> None:
    folder, crops = _folder(tmp_path)
    code = main(["--weights-dir", str(weights_dir), "upscale", str(folder), "-o", str(folder), "--suffix", "", *MODEL])
    assert code == 2
    assert "holds inputs" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.png"]
    np.testing.assert_array_equal(core.read_image(folder / "a.png"), crops["a.png"])


def test_a_relative_dot_output_in_the_input_folder_writes_beside_it(
        weights_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, crops = _folder(tmp_path)
    monkeypatch.chdir(folder)
    assert main(["--weights-dir", str(weights_dir), "upscale", "a.png", "-o", ".", *MODEL]) == 0
    np.testing.assert_array_equal(core.read_image(folder / "a.png"), crops["a.png"])
    assert core.read_image(folder / "a_out.png").shape == (64, 80, 3)


def test_an_output_that_is_a_hard_link_to_an_input_is_refused(weights_dir: Path, tmp_path: Path, capsys) -> None:
    folder, crops = _folder(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    os.link(folder / "a.png", out / "a.png")  # out/a.png is the input a.png under another name
    code = main(["--weights-dir", str(weights_dir), "upscale", str(folder), "-o", str(out), *MODEL])
    assert code == 2
    err = capsys.readouterr().err
    assert "would replace the input" in err and "a.png" in err
    np.testing.assert_array_equal(core.read_image(out / "a.png"), crops["a.png"])
    assert not (out / "b.png").exists()  # nothing ran


def test_an_input_named_like_another_inputs_output_is_refused(weights_dir: Path, tmp_path: Path, capsys) -> None:
    folder, _ = _folder(tmp_path)
    core.write_png(folder / "a_x.png", core.load_sample("coffee")[:8, :8])
    code = main(["--weights-dir", str(weights_dir), "upscale", str(folder / "a.png"), str(folder / "a_x.png"),
                 "-o", str(folder), "--suffix", "_x", *MODEL])
    assert code == 2 and "a_x.png would replace the input" in capsys.readouterr().err
    assert core.read_image(folder / "a_x.png").shape == (8, 8, 3)


@pytest.mark.slow
def test_a_file_name_that_is_not_utf8_is_printed_and_the_batch_goes_on(weights_dir: Path, tmp_path: Path) -> None:
    folder, crops = _folder(tmp_path)
    odd = os.fsencode(folder) + b"/caf\xe9.png"  # Latin-1 bytes: not valid UTF-8
    with open(odd, "wb") as handle:
        handle.write(core.encode_png(core.load_sample("coffee")[:8, :8]))
    script = Path(sys.executable).with_name("realesrgan-studio")
    # a strict UTF-8 terminal (en_US.UTF-8); with progress bars (they print names too)
    proc = subprocess.run([str(script), "--weights-dir", str(weights_dir), "upscale", str(folder),
                           "-o", str(tmp_path / "out"), "--model", "realesr-animevideov3"],
                          capture_output=True, timeout=300, env=os.environ | {"PYTHONIOENCODING": "utf-8:strict"})
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    printed = proc.stdout.decode(errors="replace")
    assert "caf\\udce9.png" in printed and printed.count(" -> ") == 3
    assert (tmp_path / "out" / "a.png").exists() and (tmp_path / "out" / "b.png").exists()
    assert os.path.exists(os.fsencode(tmp_path / "out") + b"/caf\xe9.png")


def test_the_output_keeps_the_inputs_colour_profile_and_colour_key(weights_dir: Path, tmp_path: Path) -> None:
    import io

    from PIL import Image, ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # stands in for Display P3
    buffer = io.BytesIO()
    Image.fromarray(core.load_sample("coffee")[:12, :12]).save(buffer, "JPEG", icc_profile=profile)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "p3.jpg").write_bytes(buffer.getvalue())
    keyed = Image.fromarray(core.load_sample("rocket")[:8, :8])
    keyed.save(tmp_path / "in" / "keyed.png", transparency=tuple(int(v) for v in core.load_sample("rocket")[0, 0]))
    assert main(["--weights-dir", str(weights_dir), "upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                 *MODEL]) == 0
    assert Image.open(tmp_path / "out" / "p3.png").info.get("icc_profile") == profile
    assert core.read_image(tmp_path / "out" / "keyed.png").shape == (32, 32, 4)  # the colour key is alpha now


def test_degrading_a_folder_into_itself_does_not_degrade_its_outputs(tmp_path: Path, capsys) -> None:
    folder, crops = _folder(tmp_path)
    for _ in range(2):
        assert main(["degrade", str(folder), "-o", str(folder), "--preset", "mild", "--scale", "2",
                     "--save-stages"]) == 0
    names = sorted(p.name for p in folder.iterdir())
    assert "a_lr_lr.png" not in names and not any("_stage00_input_" in n for n in names), names
    assert {"a.png", "a_lr.png", "a_params.json", "b.png", "b_lr.png"} <= set(names)
    np.testing.assert_array_equal(core.read_image(folder / "a.png"), crops["a.png"])
    core.write_png(folder / "c.png", crops["b.png"])
    core.write_png(folder / "c_lr.png", crops["b.png"])  # named one by one: an input, whose output clashes
    code = main(["degrade", str(folder / "c.png"), str(folder / "c_lr.png"), "-o", str(folder)])
    assert code == 2 and "would replace the input" in capsys.readouterr().err


def test_degrading_into_a_folder_with_a_users_own_lr_file_is_refused(tmp_path: Path, capsys) -> None:
    folder, _ = _folder(tmp_path)
    (folder / "out").mkdir()
    (folder / "out" / "a_lr.png").write_bytes(core.encode_png(core.load_sample("coffee")[:6, :6]))
    mine = (folder / "out" / "a_lr.png").read_bytes()
    assert main(["degrade", str(folder), "-o", str(folder / "out"), "--preset", "mild", "--scale", "2"]) == 2
    assert "a_lr.png is already there and was not written by the studio" in capsys.readouterr().err
    assert (folder / "out" / "a_lr.png").read_bytes() == mine and len(list((folder / "out").iterdir())) == 1
    (folder / "out" / "a_lr.png").unlink()
    for _ in range(2):  # its own outputs it replaces
        assert main(["degrade", str(folder), "-o", str(folder / "out"), "--preset", "mild", "--scale", "2"]) == 0
    assert json.loads((folder / "out" / "a_params.json").read_text())["written_by"] == "realesrgan-studio"
