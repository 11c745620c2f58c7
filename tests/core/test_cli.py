"""``python -m core``: models and upscale, exit codes, outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

import core
from core._cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_models_lists_availability_and_sources(weights_dir: Path, capsys) -> None:
    assert main(["--weights-dir", str(weights_dir), "models"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("RealESRGAN_x4plus "))
    assert " yes " in line and "RRDBNet" in line and "x4" in line and "ncnn" in line
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


def test_usage_errors_exit_with_2(weights_dir: Path, tmp_path: Path, capsys) -> None:
    image = core.write_png(tmp_path / "x.png", core.load_sample("rocket")[:8, :8])
    assert main(["upscale", str(image), "-o", str(tmp_path), "--model", "nope"]) == 2
    assert "No model named" in capsys.readouterr().err
    assert main(["upscale", str(image), "-o", str(tmp_path), "--device", "cpu", "--precision", "fp16"]) == 2
    assert main(["upscale", str(tmp_path / "empty-dir-glob"), "-o", str(tmp_path), "--outscale", "40"]) == 2


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
