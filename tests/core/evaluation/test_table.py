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


def test_a_mean_that_leaves_out_infinite_or_failed_values_says_so_everywhere(tmp_path: Path, capsys) -> None:
    """Issue 38.7: one output identical to its HR (PSNR +inf) used to leave a mean of the other image alone,
    said to cover "2 images", and results.json could not tell that null from a missing value."""
    import json

    import numpy as np

    import core

    folder = tmp_path / "hr"
    flat = np.full((32, 32, 3), 128, np.uint8)  # bicubic gives it back exactly
    core.write_png(folder / "a_flat.png", flat)
    core.write_png(folder / "b_photo.png", core.load_sample("chelsea")[:32, :32])
    core.write_png(folder / "c_photo.png", core.load_sample("coffee")[:32, :32])
    (folder / "d_broken.png").write_bytes(b"not a png")
    assert main(["evaluate", "--dataset", str(folder), "--scale", "4", "--methods", "bicubic", "--metrics",
                 "psnr,ssim", "--out", str(tmp_path / "run"), "--quiet"]) == 1  # the broken image fails its row
    err = capsys.readouterr().err
    note = ("bicubic · PSNR: mean of 2 of 4 images; left out: 1 +inf (an output identical to its reference), "
            "1 failed (error rows)")
    assert f"* {note}" in err and "SSIM: mean of 3 of 4 images; left out: 1 failed (error rows)" in err
    payload = read_results(tmp_path / "run")
    assert payload["counts"]["bicubic"]["psnr"] == {"finite": 2, "+inf": 1, "-inf": 0, "nan": 0, "error": 1,
                                                    "missing": 0}
    rows = {row["image"]: row for row in payload["rows"]}
    assert rows["a_flat"]["metrics"]["psnr"] is None and rows["a_flat"]["nonfinite"] == {"psnr": "+inf"}
    assert "nonfinite" not in rows["b_photo"]
    finite = [rows[name]["metrics"]["psnr"] for name in ("b_photo", "c_photo")]
    assert payload["means"]["bicubic"]["psnr"] == pytest.approx(np.mean(finite))
    markdown = results_table(payload, "markdown")
    assert f"{payload['means']['bicubic']['psnr']:.2f}**†" in markdown and f"† {note}" in markdown
    assert f"% $^\\dagger$ {note}" in results_table(payload, "latex")
    assert json.loads((tmp_path / "run" / "results.json").read_text())["counts"] == payload["counts"]


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda p: p.update(scale="4"), "scale should be a whole number"),
    (lambda p: p.update(methods="bicubic"), "methods should be a list"),
    (lambda p: p["means"]["bicubic"].update(psnr="28.0"), "means should be"),
    (lambda p: p["rows"][0].update(metrics=[1, 2]), "rows should be a list of rows"),
    (lambda p: p["rows"].append("a row"), "rows should be"),
    (lambda p: p.pop("settings"), "it lacks settings"),
    (lambda p: p.update(settings={"crop_border": -1}), "settings should be"),
    (lambda p: p.update(cancelled="no"), "cancelled should be true or false"),
    (lambda p: p.update(counts={"bicubic": {"psnr": {"finite": -1}}}), "counts should be"),
])
def test_a_results_file_with_wrong_types_is_refused_with_its_path_not_a_traceback(tmp_path: Path, capsys, edit,
                                                                                   problem: str) -> None:
    """Issue 38.13: ``table`` and the Benchmark page crashed on a results.json with wrong types."""
    import json

    run = _run(tmp_path)
    payload = json.loads((run / "results.json").read_text())
    edit(payload)
    (run / "results.json").write_text(json.dumps(payload))
    assert main(["table", str(run)]) == 2
    err = capsys.readouterr().err
    assert str(run / "results.json") in err and problem in err and "Traceback" not in err, err


def test_a_cluster_plan_says_it_does_not_cover_reused_rows(tmp_path: Path) -> None:
    """Issue 38.8: the plan in results.json named an engine the reused rows were not computed with."""
    import json

    result = EvalResult("set", 4, "MATLAB bicubic", ["m"], ["psnr"], EvalSettings())
    result.plan = {"engine": "torch", "tile": 384, "device": "cpu", "workers": "2 CPU workers x 1 thread"}
    result.rows = [EvalRow("a", "m", {"psnr": 30.0}, 1.0, "cuda", "fp16", "x", reused=True),
                   EvalRow("b", "m", {"psnr": 31.0}, 1.0, "cpu", "fp32", "x")]
    write_results(result, tmp_path / "run")
    plan = json.loads((tmp_path / "run" / "results.json").read_text())["plan"]
    assert plan["engine"] == "torch" and (plan["computed_rows"], plan["reused_rows"]) == (1, 1)
    assert plan["covers"].startswith("the computed rows only")
    result.rows = result.rows[1:]
    write_results(result, tmp_path / "run2")
    assert json.loads((tmp_path / "run2" / "results.json").read_text())["plan"]["covers"] == "every row"
