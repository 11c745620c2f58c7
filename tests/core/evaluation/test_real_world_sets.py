"""Real-world test sets: LR-only folders (RealSRSet, RealLQ250) scored with no-reference metrics, and the
paired names of RealSR (``NAME_HR`` / ``NAME_LR4`` in one folder) and DRealSR (``NAME_x1`` / ``NAME_x4``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import core
from cli.main import main
from core import errors, metrics


def _lr_folder(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    images = {"cat": core.load_sample("chelsea")[:40, :36], "rocket": core.load_sample("rocket")[:32, :44]}
    for name, image in images.items():
        core.write_png(tmp_path / "lr" / f"{name}.png", image)
    return tmp_path / "lr", images


def test_an_lr_only_folder_is_upscaled_by_the_scale_and_scored_without_a_reference(tmp_path: Path) -> None:
    folder, images = _lr_folder(tmp_path)
    dataset = core.open_dataset(folder, 4, lr_only=True)
    assert dataset.lr_only and len(dataset) == 2 and "no ground truth" in dataset.lr_source
    result = core.evaluate(dataset, ["bicubic", "lanczos"], ["niqe"])
    rows = {(r.image, r.method): r for r in result.rows}
    assert not any(r.error for r in result.rows)
    expected = metrics.niqe(core.resize(images["cat"], (160, 144), "matlab"))  # x4 of 40x36, MATLAB bicubic
    assert rows["cat", "bicubic"].metrics["niqe"] == pytest.approx(expected, rel=1e-9)
    assert rows["cat", "lanczos"].metrics["niqe"] != rows["cat", "bicubic"].metrics["niqe"]
    with pytest.raises(errors.DatasetError, match="no ground truth.*psnr, hr"):
        core.evaluate(dataset, ["bicubic", "hr"], ["psnr", "niqe"])


def test_the_cli_scores_an_lr_only_folder_with_no_reference_metrics_by_default(tmp_path: Path, capsys) -> None:
    folder, _ = _lr_folder(tmp_path)
    assert main(["evaluate", "--dataset", str(folder), "--lr-only", "--methods", "bicubic", "--out",
                 str(tmp_path / "run"), "-q"]) == 0
    payload = json.loads((tmp_path / "run" / "results.json").read_text())
    assert list(payload["metrics"]) == ["niqe"] and len(payload["rows"]) == 2
    assert all(row["metrics"]["niqe"] > 0 for row in payload["rows"])
    assert main(["evaluate", "--dataset", str(folder), "--lr-only", "--methods", "bicubic", "--metrics", "psnr",
                 "--out", str(tmp_path / "refused"), "-q"]) == 2
    assert "no ground truth" in capsys.readouterr().err and not (tmp_path / "refused").exists()


def _pairs(folder: Path, names: dict[str, str], scale: int = 4) -> np.ndarray:
    hr = core.load_sample("astronaut")[:48, :64]
    lr = core.imresize(hr, 1 / scale)
    for name, role in names.items():
        core.write_png(folder / name, hr if role == "hr" else lr)
    return hr


def test_realsr_names_in_one_folder_are_read_as_pairs(tmp_path: Path) -> None:
    hr = _pairs(tmp_path / "RealSR", {"Canon_001_HR.png": "hr", "Canon_001_LR4.png": "lr",
                                      "Nikon_002_HR.png": "hr", "Nikon_002_LR4.png": "lr"})
    core.write_png(tmp_path / "RealSR" / "Canon_001_LR2.png", core.imresize(hr, 0.5))
    core.write_png(tmp_path / "RealSR" / "Nikon_002_LR2.png", core.imresize(hr, 0.5))
    dataset = core.open_dataset(tmp_path / "RealSR", 4)
    assert [i.name for i in dataset.items] == ["Canon_001", "Nikon_002"] and "RealSR" in dataset.lr_source
    assert all(i.lr is not None and i.lr.path.name.endswith("_LR4.png") for i in dataset.items)
    assert core.open_dataset(tmp_path / "RealSR", 2).items[0].lr.path.name == "Canon_001_LR2.png"
    with pytest.raises(errors.DatasetError, match="x2, x4, not for x3"):
        core.open_dataset(tmp_path / "RealSR", 3)
    assert main(["evaluate", "--dataset", str(tmp_path / "RealSR"), "--methods", "bicubic", "--metrics", "psnr",
                 "--out", str(tmp_path / "run"), "-q"]) == 0
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    lr, _ = dataset.load(dataset.items[0])
    expected = metrics.psnr(core.resize(lr, (48, 64), "matlab"), hr, crop_border=4)
    assert [r["image"] for r in rows] == ["Canon_001", "Nikon_002"] and rows[0]["metrics"]["psnr"] == pytest.approx(
        expected, rel=1e-9)


def test_drealsr_names_pair_across_an_hr_and_an_lr_folder(tmp_path: Path) -> None:
    _pairs(tmp_path / "test_HR", {"DSC_1454_x1.png": "hr", "DSC_1460_x1.png": "hr"})
    _pairs(tmp_path / "test_LR", {"DSC_1454_x4.png": "lr", "DSC_1460_x4.png": "lr"})
    dataset = core.open_dataset(tmp_path / "test_HR", 4, lr_dir=tmp_path / "test_LR")
    assert [(i.name, i.lr.path.name) for i in dataset.items] == [("DSC_1454", "DSC_1454_x4.png"),
                                                                 ("DSC_1460", "DSC_1460_x4.png")]


def test_the_same_name_in_both_folders_still_pairs_whatever_its_suffix(tmp_path: Path) -> None:
    _pairs(tmp_path / "hr", {"cat_HR.png": "hr", "dog_x1.png": "hr"})
    _pairs(tmp_path / "lr", {"cat_HR.png": "lr", "dog_x1.png": "lr"})
    dataset = core.open_dataset(tmp_path / "hr", 4, lr_dir=tmp_path / "lr")
    assert [(i.name, i.lr.path.name) for i in dataset.items] == [("cat_HR", "cat_HR.png"), ("dog_x1", "dog_x1.png")]


def test_a_dataset_path_may_start_with_the_home_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    _pairs(tmp_path / "hr", {"a.png": "hr"})
    _pairs(tmp_path / "lr", {"ax4.png": "lr"})
    dataset = core.open_dataset("~/hr", 4, lr_dir="~/lr")  # typed in the Benchmark page's path box
    item = dataset.items[0]
    assert item.hr.path == tmp_path / "hr" / "a.png" and item.lr.path == tmp_path / "lr" / "ax4.png"
