"""The command-line front end (`realesrgan-studio`; `python -m core` is an alias): commands, exit codes, outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import core
from cli.main import main
from core import engines
from core._ours import mark_png
from core.degradation import apply_params, params_from_dict

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_models_lists_availability_and_sources(weights_dir: Path, x4plus: core.Upscaler, capsys) -> None:
    assert main(["--weights-dir", str(weights_dir), "models"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("RealESRGAN_x4plus "))
    # the engine its load measured fastest here (the x4plus fixture loaded it with engine="auto")
    assert " yes " in line and "RRDBNet" in line and "x4" in line
    assert f" {x4plus.engine} (measured 1 of {engines.MEASUREMENTS}) " in line
    line = next(row for row in out.splitlines() if row.startswith("RealESRNet_x4plus "))
    assert " no " in line and "RealESRNet_x4plus.pth" in line


def test_upscale_a_folder_reports_bad_files_and_keeps_going(weights_dir: Path, tmp_path: Path, capsys) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    core.write_png(inputs / "a.png", core.load_sample("rocket")[:16, :20])
    rgba16 = np.concatenate([core.load_sample("chelsea")[:12, :12], np.full((12, 12, 1), 200, np.uint8)], axis=2)
    core.write_png(inputs / "b.png", rgba16.astype(np.uint16) * 257)
    (inputs / "c.jpg").write_bytes(b"broken")
    (inputs / "notes.txt").write_text("ignored: not an image suffix")
    code = main(["--weights-dir", str(weights_dir), "upscale", str(inputs), "-o", str(tmp_path / "out"),
                 "--model", "realesr-animevideov3", "--outscale", "2", "--tile", "0", "-q"])
    assert code == 1
    err = capsys.readouterr().err
    assert "skipped" in err and "c.jpg" in err and "1 of 3 inputs failed" in err
    a = core.read_image(tmp_path / "out" / "a.png")
    b = core.read_image(tmp_path / "out" / "b.png")
    assert a.shape == (32, 40, 3) and a.dtype == np.uint8
    assert b.shape == (24, 24, 4) and b.dtype == np.uint16
    kept = (tmp_path / "out" / "a.png").read_bytes()  # a resumed batch leaves what is there
    assert main(["--weights-dir", str(weights_dir), "upscale", str(inputs), "-o", str(tmp_path / "out"),
                 "--model", "realesr-animevideov3", "--outscale", "2", "--skip-existing", "-q"]) == 1
    out = capsys.readouterr().out
    assert "a.png (exists; skipped)" in out and "b.png (replaced" not in out
    assert (tmp_path / "out" / "a.png").read_bytes() == kept
    assert main(["upscale", "s3://bucket/x.png", "-o", str(tmp_path / "out")]) == 2  # URIs need --ray
    assert "add --ray" in capsys.readouterr().err


def test_usage_errors_exit_with_2(weights_dir: Path, tmp_path: Path, capsys) -> None:
    image = core.write_png(tmp_path / "x.png", core.load_sample("rocket")[:8, :8])
    assert main(["upscale", str(image), "-o", str(tmp_path), "--model", "nope"]) == 2
    assert "No model named" in capsys.readouterr().err
    assert main(["upscale", str(image), "-o", str(tmp_path), "--device", "cpu", "--precision", "fp16"]) == 2
    assert main(["upscale", str(tmp_path / "empty-dir-glob"), "-o", str(tmp_path), "--outscale", "40"]) == 2


@pytest.mark.slow
def test_module_entry_point_runs(weights_dir: Path, tmp_path: Path) -> None:
    image = core.write_png(tmp_path / "in.png", core.load_sample("camera")[:16, :16])
    proc = subprocess.run(
        [sys.executable, "-m", "core", "--weights-dir", str(weights_dir), "upscale", str(image),
         "-o", str(tmp_path / "out"), "--model", "realesr-animevideov3-x2", "--suffix", "_x2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = core.read_image(tmp_path / "out" / "in_x2.png")
    assert out.shape == (32, 32, 1)
    script = Path(sys.executable).with_name("realesrgan-studio")  # the console entry point of the README
    listed = subprocess.run([str(script), "--weights-dir", str(weights_dir), "models"], capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0 and "realesr-animevideov3-x2" in listed.stdout, listed.stderr


def test_degrade_writes_lr_params_and_stages(tmp_path: Path, capsys) -> None:
    image = core.write_png(tmp_path / "in.png", core.load_sample("coffee")[:101, :130])
    out = tmp_path / "out"
    assert main(["degrade", str(image), "-o", str(out), "--seed", "4", "--save-stages"]) == 0
    lr = core.read_image(out / "in_lr.png")
    assert lr.shape == (25, 32, 3)
    saved = json.loads((out / "in_params.json").read_text())
    assert saved["seed"] == 4 and saved["config"]["name"] == "Real-ESRGAN training default"
    replay = apply_params(core.read_image(image)[:100, :128], params_from_dict(saved["params"]))
    np.testing.assert_array_equal(replay.lr, lr)
    stages = sorted(p.name for p in out.glob("in_stage*.png"))
    assert stages[0] == "in_stage00_input.png" and stages[-1].endswith("output.png") and len(stages) >= 6
    config = tmp_path / "c.yaml"
    config.write_text(core.PRESETS["mild"].to_yaml())
    assert main(["degrade", str(image), "-o", str(out / "y"), "--config", str(config), "--scale", "2"]) == 0
    assert core.read_image(out / "y" / "in_lr.png").shape == (50, 65, 3)
    config.write_text("first: {blur_sigma: [3, 1]}")
    assert main(["degrade", str(image), "-o", str(out / "z"), "--config", str(config)]) == 2
    assert "blur_sigma" in capsys.readouterr().err


def test_evaluate_with_a_degradation_preset(tmp_path: Path, capsys) -> None:
    args = ["evaluate", "--dataset", "samples", "--methods", "bicubic", "--metrics", "psnr", "-q",
            "--out", str(tmp_path)]
    assert main([*args, "--degradation", "severe", "--seed", "1"]) == 0
    severe = json.loads((tmp_path / "results.json").read_text())
    assert "severe" in severe["lr_source"]
    assert main([*args, "--degradation", "none"]) == 0
    clean = json.loads((tmp_path / "results.json").read_text())
    assert severe["means"]["bicubic"]["psnr"] < clean["means"]["bicubic"]["psnr"] - 1
    assert main([*args, "--degradation", "nope"]) == 2


def test_inputs_sharing_a_name_get_one_output_each(weights_dir: Path, tmp_path: Path, capsys) -> None:
    crops = [core.load_sample(name)[:12, :12] for name in ("rocket", "chelsea", "coffee", "astronaut")]
    for folder, name, crop in (("x", "a.png", crops[0]), ("y", "a.png", crops[1]), ("x", "b.png", crops[3])):
        core.write_png(tmp_path / folder / name, crop)
    ok, webp = cv2.imencode(".webp", crops[2][:, :, ::-1], [cv2.IMWRITE_WEBP_QUALITY, 101])
    (tmp_path / "x" / "a.webp").write_bytes(webp.tobytes())
    out = tmp_path / "out"
    core.write_file(out / "b.png", mark_png(core.encode_png(crops[0])))  # from an earlier run (the studio's mark)
    args = ["--weights-dir", str(weights_dir), "upscale", str(tmp_path / "x" / "a.png"), str(tmp_path / "x" / "a.webp"),
            str(tmp_path / "y" / "a.png"), str(tmp_path / "x" / "b.png"), "-o", str(out),
            "--model", "realesr-animevideov3", "--outscale", "1", "-q"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["a-png-2.png", "a-png.png", "a-webp.png", "b.png"]
    upscaled = {p.name: core.read_image(p) for p in out.iterdir()}
    for name, source in (("a-png.png", 0), ("a-webp.png", 2), ("a-png-2.png", 1), ("b.png", 3)):
        errors = [np.abs(upscaled[name].astype(int) - crop.astype(int)).mean() for crop in crops]
        assert int(np.argmin(errors)) == source, (name, errors)  # outscale 1: each output is near its own input
    assert "b.png (replaced the earlier file)" in printed and printed.count("replaced") == 1


def test_an_output_that_is_a_file_or_unwritable_is_a_message(weights_dir: Path, tmp_path: Path, capsys) -> None:
    image = core.write_png(tmp_path / "x.png", core.load_sample("rocket")[:8, :8])
    (tmp_path / "file").write_text("not a folder")
    for output in (tmp_path / "file", tmp_path / "file" / "sub"):
        assert main(["upscale", str(image), "-o", str(output), "--model", "realesr-animevideov3"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["upscale", str(image), "-o", str(locked), "--model", "realesr-animevideov3"]) == 2
        assert "not writable" in capsys.readouterr().err
    assert main(["degrade", str(image), "-o", str(tmp_path / "file")]) == 2
    assert main(["evaluate", "--methods", "bicubic", "--out", str(tmp_path / "file"), "-q"]) == 2
    assert "is a file" in capsys.readouterr().err


def test_compare_writes_one_offline_page_and_refuses_to_replace_it(weights_dir: Path, tmp_path: Path,
                                                                    capsys) -> None:
    hr = core.load_sample("chelsea")[40:136, 150:246]
    core.write_png(tmp_path / "lr.png", core.imresize(hr, scale=0.25))
    core.write_png(tmp_path / "hr.png", hr)
    page = tmp_path / "page.html"
    args = ["--weights-dir", str(weights_dir), "compare", str(tmp_path / "lr.png"), "--methods",
            "bicubic,realesr-animevideov3", "--reference", str(tmp_path / "hr.png"), "--metrics", "psnr,ssim",
            "--device", "cpu", "-o", str(page)]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "wrote" in err and "3 images at 96x96" in err and "realesr-animevideov3: psnr" in err
    text = page.read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") >= 3 + 3 + 3  # images, SSIM maps, LR maps
    before = page.stat().st_mtime_ns
    assert main(args) == 2 and "exists; pass --overwrite" in capsys.readouterr().err
    assert page.stat().st_mtime_ns == before
    assert main([*args, "--overwrite"]) == 0
    capsys.readouterr()
    too_many = [*args[:5], "bicubic,lanczos,bicubic-opencv,a,b,c", *args[6:], "--overwrite"]
    assert main(too_many) == 2 and "At most 6 methods" in capsys.readouterr().err
    unknown = [*args[:5], "no-such-model", *args[6:], "--overwrite"]
    assert main(unknown) == 2
    err = capsys.readouterr().err
    assert "no-such-model" in err and "Traceback" not in err
    assert main([*args[:-1], str(tmp_path / "page.png")]) == 2 and "FILE.html" in capsys.readouterr().err
    # no output replaces an input or the reference, even with --overwrite; nor a page the studio did not write
    (tmp_path / "lr.html").write_bytes((tmp_path / "lr.png").read_bytes())
    for image, reference in (("lr.html", "hr.png"), ("lr.png", "lr.html")):
        before = (tmp_path / "lr.html").read_bytes()
        clash = [*args[:2], "compare", str(tmp_path / image), *args[4:7], str(tmp_path / reference), *args[8:-1],
                 str(tmp_path / "lr.html"), "--overwrite"]
        assert main(clash) == 2
        assert "would replace the input" in capsys.readouterr().err
        assert (tmp_path / "lr.html").read_bytes() == before
    (tmp_path / "mine.html").write_text("<!doctype html><p>my notes</p>", encoding="utf-8")
    assert main([*args[:-1], str(tmp_path / "mine.html"), "--overwrite"]) == 2
    assert "not written by the studio" in capsys.readouterr().err
    assert (tmp_path / "mine.html").read_text(encoding="utf-8") == "<!doctype html><p>my notes</p>"
    assert main([*args[:-1], str(tmp_path / "hr.png" / "p.html")]) == 2  # a file where its folder should be
    err = capsys.readouterr().err
    assert "cannot write" in err and "p.html" in err and ".part" not in err and "Traceback" not in err


def test_the_metrics_table_fits_a_terminal_and_still_names_licences(capsys) -> None:
    """Issue 38.15: rows were about 400 characters wide (the licence column)."""
    assert main(["metrics"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 120, max(lines, key=len)
    assert any(line.startswith("dists  licence: MIT (DISTS, Ding et al.)") for line in lines)
    assert lines[0].split() == ["name", "kind", "better", "weights"]
