"""Paper tables of a run's means: directions, the best value per column in bold (ties too, the ground truth
never), dashes for values a metric could not give, escaping, and the CLI that prints or writes them."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from cli.main import main
from core.evaluation import EvalResult, EvalRow, EvalSettings, read_results, results_table, write_results


def _run(tmp_path: Path) -> Path:
    """A run of three methods and the ground truth, written as the studio writes runs."""
    result = EvalResult("set 5%", 4, "MATLAB bicubic", ["hr", "bicubic", "Real_ESRGAN", "tied"],
                        ["psnr", "ssim", "niqe"], EvalSettings(channel="rgb"))
    values = {"hr": (None, None, 3.0), "bicubic": (28.004, 0.80001, 7.5), "Real_ESRGAN": (27.0, 0.79, 4.25),
              "tied": (27.996, 0.5, None)}
    for method, (psnr, ssim, niqe) in values.items():
        for image in ("a", "b"):
            result.rows.append(EvalRow(image, method, {"psnr": psnr, "ssim": ssim, "niqe": niqe}, 0.1, "cpu",
                                       "fp32", "test"))
    write_results(result, tmp_path / "run")
    return tmp_path / "run"


def test_markdown_marks_directions_and_the_best_per_column(tmp_path: Path) -> None:
    lines = results_table(read_results(_run(tmp_path)), "markdown").splitlines()
    assert lines[0] == "| Method | PSNR (dB) ↑ | SSIM ↑ | NIQE ↓ |"
    rows = {line.split(" | ")[0].removeprefix("| "): line.split(" | ")[1:] for line in lines[2:6]}
    assert list(rows) == ["bicubic", "Real_ESRGAN", "tied", "HR (ground truth)"]  # the ground truth last
    assert rows["bicubic"][:2] == ["**28.00**", "**0.8000**"]  # highest PSNR / SSIM
    assert rows["tied"][0] == "**28.00**" and rows["tied"][2] == "– |"  # a tie at the printed precision; no value
    assert rows["Real_ESRGAN"][2] == "**4.2500** |"  # lowest NIQE: the ground truth's 3.0 is not a competitor
    assert rows["HR (ground truth)"] == ["–", "–", "3.0000 |"]
    assert "set 5%, x4" in lines[-1] and "on RGB" in lines[-1]


def test_latex_is_escaped_booktabs_and_csv_keeps_full_precision(tmp_path: Path) -> None:
    payload = read_results(_run(tmp_path))
    latex = results_table(payload, "latex")
    assert "\\toprule" in latex and "\\begin{tabular}{lccc}" in latex and "NIQE $\\downarrow$" in latex
    assert "Real\\_ESRGAN & 27.00 & 0.7900 & \\textbf{4.2500} \\\\" in latex
    assert "% set 5\\%, x4" in latex  # a comment that does not end at the percent sign
    rows = list(csv.reader(io.StringIO(results_table(payload, "csv"))))
    assert rows[0] == ["method", "PSNR (dB) ↑", "SSIM ↑", "NIQE ↓", "images"]
    assert rows[1] == ["bicubic", "28.004", "0.80001", "7.5", "2"] and rows[4] == ["hr", "", "", "3.0", "2"]
    with pytest.raises(ValueError, match="Unknown table format"):
        results_table(payload, "html")


def test_the_cli_prints_writes_and_never_replaces_a_file_silently(tmp_path: Path, capsys) -> None:
    run = _run(tmp_path)
    assert main(["table", str(run)]) == 0
    assert "| bicubic | **28.00** |" in capsys.readouterr().out
    out = tmp_path / "table.tex"
    assert main(["table", str(run / "results.json"), "--format", "latex", "-o", str(out)]) == 0
    assert out.read_text().startswith("% set 5\\%")
    out.write_text("my edits")
    assert main(["table", str(run), "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "my edits"
    assert main(["table", str(run), "-o", str(out), "--overwrite"]) == 0 and out.read_text().startswith("| Method")
    assert main(["table", str(tmp_path / "nothing")]) == 2  # no run there: a message, not a traceback
    assert "cannot be read" in capsys.readouterr().err
