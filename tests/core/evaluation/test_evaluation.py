"""Datasets (samples, folders, pairs, DIV2K folders and zips), DIV2K download, and resumable evaluation."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

import core
from cli.main import main
from core.errors import DamagedFileError, DatasetError, DownloadError
from core.evaluation import EvalRow, download_div2k, extract_zip, run_method
from tests.loopback import LoopbackServer

NAMES = ("0801", "0802", "0803")


def _hr_images() -> dict[str, np.ndarray]:
    crops = [core.load_sample("chelsea")[100:196, 200:296], core.load_sample("coffee")[50:146, 300:396],
             core.load_sample("rocket")[200:296, 100:196]]
    return dict(zip(NAMES, crops))


@pytest.fixture(scope="module")
def div2k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DIV2K validation set in the official layout (folders), 96x96 HR, x4 LR."""
    root = tmp_path_factory.mktemp("div2k")
    for name, hr in _hr_images().items():
        core.write_png(root / "DIV2K_valid_HR" / f"{name}.png", hr)
        core.write_png(root / "DIV2K_valid_LR_bicubic" / "X4" / f"{name}x4.png", core.imresize(hr, 0.25))
    return root


def _zip_folder(folder: Path, archive: Path, base: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(folder.rglob("*.png")):
            out.write(path, path.relative_to(base).as_posix())
    return archive


@pytest.fixture(scope="module")
def div2k_zips(div2k: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("div2k_zips")
    _zip_folder(div2k / "DIV2K_valid_HR", root / "DIV2K_valid_HR.zip", div2k)
    _zip_folder(div2k / "DIV2K_valid_LR_bicubic" / "X4", root / "DIV2K_valid_LR_bicubic_X4.zip", div2k)
    return root


def test_samples_and_hr_folders_make_lr_on_the_fly(tmp_path: Path) -> None:
    samples = core.open_dataset("samples", 4)
    assert len(samples) == 6 and "bicubic" in samples.lr_source
    lr, hr = samples.load(next(i for i in samples.items if i.name == "chelsea"))
    assert hr.shape == (300, 448, 3) and lr.shape == (75, 112, 3)
    np.testing.assert_array_equal(lr, core.imresize(hr, 0.25))
    for name, hr in _hr_images().items():
        core.write_png(tmp_path / f"{name}.png", hr[:95, :94])  # not a multiple of 3: cropped
    folder = core.open_dataset(tmp_path, 3)
    lr, hr = folder.load(folder.items[0])
    assert hr.shape == (93, 93, 3) and lr.shape == (31, 31, 3)


def test_div2k_folders_and_zips_give_the_same_pairs(div2k: Path, div2k_zips: Path) -> None:
    from_folders, from_zips = core.open_dataset(div2k, 4), core.open_dataset(div2k_zips, 4)
    assert from_folders.name == from_zips.name == "DIV2K valid"
    assert [i.name for i in from_folders.items] == [i.name for i in from_zips.items] == list(NAMES)
    for a, b in zip(from_folders.items, from_zips.items):
        for x, y in zip(from_folders.load(a), from_zips.load(b)):
            np.testing.assert_array_equal(x, y)
    with pytest.raises(DatasetError, match="X2"):
        core.open_dataset(div2k, 2)


def test_paired_folders_and_their_errors(div2k: Path, tmp_path: Path) -> None:
    paired = core.open_dataset(div2k / "DIV2K_valid_HR", 4, lr_dir=div2k / "DIV2K_valid_LR_bicubic" / "X4")
    assert len(paired) == 3 and paired.items[0].lr is not None
    lonely = tmp_path / "lr"
    lonely.mkdir()
    core.write_png(lonely / "0801x4.png", np.zeros((24, 24, 3), np.uint8))
    with pytest.raises(DatasetError, match="no LR partner"):
        core.open_dataset(div2k / "DIV2K_valid_HR", 4, lr_dir=lonely)
    quarter = tmp_path / "quarter"
    quarter.mkdir()
    for path in (div2k / "DIV2K_valid_LR_bicubic" / "X4").iterdir():
        (quarter / path.name.replace("x4", "")).write_bytes(path.read_bytes())
    wrong = core.open_dataset(div2k / "DIV2K_valid_HR", 2, lr_dir=quarter)  # x4 LR used as x2
    with pytest.raises(DatasetError, match="expected 48x48"):
        wrong.load(wrong.items[0])
    with pytest.raises(DatasetError, match="No such"):
        core.open_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="No images"):
        core.open_dataset(tmp_path / "empty", 4)


def test_evaluate_baselines_and_a_model_and_write_results(div2k: Path, weights_dir: Path, tmp_path: Path) -> None:
    dataset = core.open_dataset(div2k, 4)
    result = core.evaluate(dataset, ["hr", "bicubic", "lanczos", "realesr-animevideov3"], ["psnr", "ssim", "niqe"],
                           core.EvalSettings(device="cpu"), db=core.ResultDB(tmp_path / "r.sqlite"))
    assert len(result.rows) == 12 and not any(r.error for r in result.rows)
    hr_row = next(r for r in result.rows if r.method == "hr" and r.image == "0801")
    assert set(hr_row.metrics) == {"niqe"}
    bic = next(r for r in result.rows if r.method == "bicubic" and r.image == "0801")
    lr, hr = dataset.load(dataset.items[0])
    expected = core.metrics.psnr(core.imresize(lr, 4), hr, crop_border=4)
    assert bic.metrics["psnr"] == pytest.approx(expected)
    model = next(r for r in result.rows if r.method == "realesr-animevideov3")
    assert model.device == "cpu" and model.precision == "fp32" and "ncnn" in model.source
    csv_path, json_path = core.write_results(result, tmp_path / "out")
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("image,method,psnr,ssim,niqe,seconds") and len(lines) == 13
    payload = json.loads(json_path.read_text())
    assert payload["settings"]["crop_border"] == 4 and payload["settings"]["channel"] == "y"
    means = payload["means"]
    assert means["bicubic"]["psnr"] == pytest.approx(np.mean([r.metrics["psnr"] for r in result.rows
                                                              if r.method == "bicubic"]))
    assert means["hr"]["psnr"] is None and means["hr"]["niqe"] < means["bicubic"]["niqe"]


def test_a_set_with_a_grey_image_is_scored_as_published_tables_are(tmp_path: Path) -> None:
    """Set14-style: the bundled set has one grey image (camera); by default it is read as RGB (BasicSR),
    which moves only its own scores and the means; the results file says which convention was used."""
    dataset = core.open_dataset("samples", 4)
    db = core.ResultDB(tmp_path / "r.sqlite")
    basicsr = core.evaluate(dataset, ["bicubic"], ["psnr", "ssim"], db=db)
    as_is = core.evaluate(dataset, ["bicubic"], ["psnr", "ssim"], core.EvalSettings(grey="as-is"), db=db)
    assert as_is.computed == 1 and as_is.reused == 5  # colour images' results are shared by both conventions
    by_image = {r.image: r.metrics for r in basicsr.rows}
    other = {r.image: r.metrics for r in as_is.rows}
    assert [name for name in by_image if by_image[name] != other[name]] == ["camera"]
    lr, hr = dataset.load(next(i for i in dataset.items if i.name == "camera"))
    grey_rgb = (np.repeat(core.imresize(lr, 4), 3, axis=2), np.repeat(hr, 3, axis=2))  # the file read in colour
    assert by_image["camera"]["psnr"] == pytest.approx(core.metrics.psnr(*grey_rgb, crop_border=4), abs=1e-9)
    assert by_image["camera"]["psnr"] - other["camera"]["psnr"] == pytest.approx(20 * np.log10(255 / 219))
    shift = basicsr.means()["bicubic"]["psnr"] - as_is.means()["bicubic"]["psnr"]
    assert shift == pytest.approx(20 * np.log10(255 / 219) / 6)  # +0.22 dB on the mean of 6
    payload = json.loads(core.write_results(basicsr, tmp_path / "out")[1].read_text())
    assert payload["settings"]["grey"] == "rgb"


def test_an_interrupted_run_resumes_with_only_the_rest(div2k: Path, tmp_path: Path) -> None:
    dataset = core.open_dataset(div2k, 4)
    db = core.ResultDB(tmp_path / "r.sqlite")
    methods = ["bicubic", "bicubic-opencv", "lanczos"]

    def crash_at_five(done: int, total: int, label: str) -> None:
        if done == 5:
            raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        core.evaluate(dataset, methods, ["psnr", "ssim"], db=db, hooks=core.EvalHooks(progress=crash_at_five))
    resumed = core.evaluate(dataset, methods, ["psnr", "ssim"], db=db)
    assert resumed.reused == 5 and resumed.computed == 4
    again = core.evaluate(dataset, methods, ["psnr", "ssim"], db=db)
    assert again.reused == 9 and again.computed == 0
    assert [r.metrics for r in again.rows] == [r.metrics for r in resumed.rows]
    more = core.evaluate(dataset, methods, ["psnr", "ssim", "niqe"], db=db)  # a new metric: computed
    assert more.computed == 9
    other = core.evaluate(dataset, methods, ["psnr"], core.EvalSettings(channel="rgb"), db=db)
    assert other.computed == 9  # different settings are different results


def test_cancel_keeps_partial_results(div2k: Path, tmp_path: Path) -> None:
    dataset = core.open_dataset(div2k, 4)
    polls = []
    result = core.evaluate(dataset, ["bicubic"], ["psnr"], db=core.ResultDB(tmp_path / "r.sqlite"),
                           hooks=core.EvalHooks(cancel=lambda: polls.append(1) or len(polls) > 2))
    assert result.cancelled and len(result.rows) == 2


def test_a_bad_image_is_recorded_and_the_rest_goes_on(div2k: Path, tmp_path: Path) -> None:
    folder = tmp_path / "hr"
    folder.mkdir()
    for path in (div2k / "DIV2K_valid_HR").iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "0800.png").write_bytes(b"broken")
    result = core.evaluate(core.open_dataset(folder, 4), ["bicubic"], ["psnr"])
    assert [r.image for r in result.rows if r.error] == ["0800"]
    assert len([r for r in result.rows if not r.error]) == 3


def test_cli_evaluate_on_samples_and_div2k(div2k_zips: Path, weights_dir: Path, tmp_path: Path, capsys) -> None:
    code = main(["--weights-dir", str(weights_dir), "evaluate", "--dataset", "samples", "--methods",
                 "bicubic,lanczos,hr", "--metrics", "psnr,niqe", "--out", str(tmp_path / "s"), "-q"])
    assert code == 0
    out = capsys.readouterr()
    assert "bicubic" in out.out and "PSNR ↑" in out.out and "NIQE ↓" in out.out
    assert "18 computed" in out.err
    code = main(["evaluate", "--methods", "bicubic", "--metrics", "psnr", "--grey", "as-is", "--out",
                 str(tmp_path / "g"), "-q"])
    assert code == 0 and json.loads((tmp_path / "g" / "results.json").read_text())["settings"]["grey"] == "as-is"
    code = main(["--weights-dir", str(weights_dir), "evaluate", "--dataset", str(div2k_zips), "--methods",
                 "bicubic,realesr-animevideov3", "--out", str(tmp_path / "d"), "-q", "--device", "cpu"])
    assert code == 0 and (tmp_path / "d" / "results.csv").is_file()
    assert main(["evaluate", "--methods", "nope", "--out", str(tmp_path / "x")]) == 2
    assert main(["evaluate", "--metrics", "lpips", "--out", str(tmp_path / "x")]) == 2


def test_div2k_download_resumes_and_extracts(div2k_zips: Path, tmp_path: Path) -> None:
    files = {f"/{p.name}": p.read_bytes() for p in div2k_zips.iterdir()}
    dest = tmp_path / "DIV2K"
    dest.mkdir()
    hr_zip = files["/DIV2K_valid_HR.zip"]
    (dest / "DIV2K_valid_HR.zip.part").write_bytes(hr_zip[: len(hr_zip) // 2])  # an interrupted download
    with LoopbackServer(files) as server:
        download_div2k(dest, (4,), base_url=server.url)
        assert ("/DIV2K_valid_HR.zip", f"bytes={len(hr_zip) // 2}-") in server.requests
    assert (dest / "DIV2K_valid_HR.zip").read_bytes() == hr_zip
    assert not list(dest.glob("*.part"))
    dataset = core.open_dataset(dest, 4)
    assert [i.name for i in dataset.items] == list(NAMES) and dataset.items[0].hr.member is None
    with LoopbackServer({}) as server, pytest.raises(DownloadError, match="resume"):
        download_div2k(tmp_path / "other", (2,), base_url=server.url)


@pytest.mark.parametrize("member", ["../evil.png", "/abs/evil.png", "a/../../evil.png"])
def test_unsafe_zips_are_refused_before_writing(tmp_path: Path, member: str) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("ok.png", b"fine")
        out.writestr(member, b"evil")
    dest = tmp_path / "dest"
    with pytest.raises(DatasetError, match="unsafe"):
        extract_zip(archive, dest)
    assert not dest.exists() and not (tmp_path / "evil.png").exists()


def test_zip_links_and_size_limits_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as out:
        info = zipfile.ZipInfo("link.png")
        info.external_attr = (0o120777 << 16)
        out.writestr(info, "/etc/passwd")
    with pytest.raises(DatasetError, match="links"):
        extract_zip(archive, tmp_path / "d1")
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr("zeros.png", b"\0" * 100_000)
    with pytest.raises(DatasetError, match="too large"):
        extract_zip(big, tmp_path / "d2", max_member_bytes=10_000)
    with pytest.raises(DatasetError, match="would extract"):
        extract_zip(big, tmp_path / "d3", max_total_bytes=10_000)
    (tmp_path / "not.zip").write_bytes(b"nope")
    with pytest.raises(DatasetError, match="not a valid zip"):
        extract_zip(tmp_path / "not.zip", tmp_path / "d4")


def test_a_zip_member_that_inflates_to_gigabytes_is_refused_before_it_is_read(div2k: Path, tmp_path: Path) -> None:
    import tracemalloc

    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for path in sorted((div2k / "DIV2K_valid_HR").iterdir()):
            out.write(path, path.name)
        with out.open("bomb.png", "w") as member:  # 300 MB of zeros: about 300 KB compressed
            for _ in range(300):
                member.write(bytes(1 << 20))
    assert archive.stat().st_size < 2_000_000
    dataset = core.open_dataset(archive, 4)
    tracemalloc.start()
    try:
        result = core.evaluate(dataset, ["bicubic"], ["psnr"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    errors = {r.image: r.error for r in result.rows if r.error}
    assert list(errors) == ["bomb"] and "declares 314572800 bytes" in errors["bomb"]
    assert len(result.rows) == 4 and peak < 50 * 2**20, f"peak {peak / 2**20:.0f} MB"


def _corrupt_member(archive: Path, member: str) -> None:
    """Flip one byte inside a stored member's data: its CRC no longer matches."""
    with zipfile.ZipFile(archive) as read:
        info = read.getinfo(member)
    data = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    archive.write_bytes(bytes(data))


def test_corrupt_zips_are_error_rows_and_messages_not_tracebacks(div2k: Path, tmp_path: Path, capsys) -> None:
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as out:
        for path in sorted((div2k / "DIV2K_valid_HR").iterdir()):
            out.write(path, path.name)
    _corrupt_member(archive, "0802.png")
    result = core.evaluate(core.open_dataset(archive, 4), ["bicubic"], ["psnr"])
    errors = {r.image: r.error for r in result.rows if r.error}
    assert list(errors) == ["0802"] and "Bad CRC" in errors["0802"], errors
    csv_path, _ = core.write_results(result, tmp_path / "out")
    assert len(csv_path.read_text().splitlines()) == 4  # header + 3 rows, the bad one with its error
    dest = tmp_path / "extracted"
    with pytest.raises(DatasetError, match="0802.png cannot be extracted"):
        extract_zip(archive, dest)
    assert not list(dest.rglob("*.part")) and not list(dest.rglob(".*"))  # no half-written files left
    (tmp_path / "fake.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetError, match="not a readable zip"):
        core.open_dataset(tmp_path / "fake.zip", 4)
    assert main(["evaluate", "--dataset", str(tmp_path / "fake.zip"), "--methods", "bicubic", "--out",
                 str(tmp_path / "x"), "-q"]) != 0
    assert "not a readable zip" in capsys.readouterr().err


def test_images_that_share_a_stem_keep_one_row_each(tmp_path: Path) -> None:
    crops = list(_hr_images().values())
    archive = tmp_path / "sets.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("set1/img.png", core.encode_png(crops[0]))
        out.writestr("set2/img.png", core.encode_png(crops[1]))
        out.writestr("set2/other.png", core.encode_png(crops[2]))
    dataset = core.open_dataset(archive, 4)
    assert [i.name for i in dataset.items] == ["other", "set1/img.png", "set2/img.png"]
    rows = core.evaluate(dataset, ["bicubic"], ["psnr"]).rows
    assert len({r.metrics["psnr"] for r in rows}) == 3  # three images scored, none dropped
    folder = tmp_path / "folder"
    core.write_png(folder / "a.png", crops[0])
    ok, jpeg = cv2.imencode(".jpg", crops[1][:, :, ::-1])
    (folder / "a.jpg").write_bytes(jpeg.tobytes())
    assert sorted(i.name for i in core.open_dataset(folder, 4).items) == ["a.jpg", "a.png"]
    lr = tmp_path / "lr"
    core.write_png(lr / "a.png", core.imresize(crops[0], 0.25))
    with pytest.raises(DatasetError, match="pair as 'a'"):
        core.open_dataset(folder, 4, lr_dir=lr)


def test_cli_evaluate_honours_the_results_folder_setting(tmp_path: Path, monkeypatch, capsys) -> None:
    """Without --out, a run goes to a dated folder in $STUDIO_RESULTS_DIR (where the dashboard lists
    runs), sharing the dashboard's result store: a second run reuses every row."""
    monkeypatch.setenv("STUDIO_RESULTS_DIR", str(tmp_path / "shared"))
    assert core.default_results_dir() == tmp_path / "shared"
    assert main(["evaluate", "--methods", "bicubic", "--metrics", "psnr", "-q"]) == 0
    runs = sorted((tmp_path / "shared").glob("*/results.json"))
    assert len(runs) == 1 and (tmp_path / "shared" / "results.sqlite").is_file()
    capsys.readouterr()
    import time

    time.sleep(1.1)  # the next run gets its own dated folder
    assert main(["evaluate", "--methods", "bicubic", "--metrics", "psnr", "-q"]) == 0
    assert "6 reused" in capsys.readouterr().err and len(list((tmp_path / "shared").glob("*/results.json"))) == 2


def test_run_method_is_one_way_to_run_a_baseline_or_a_model(weights_dir: Path) -> None:
    lr = core.load_sample("chelsea")[:24, :30]
    assert np.array_equal(run_method("bicubic", lr, (96, 120)), core.imresize(lr, 4))
    assert np.array_equal(run_method("lanczos", lr, (50, 61)), core.resize(lr, (50, 61), "lanczos"))
    upscaler = core.Upscaler.load("realesr-animevideov3", device="cpu", weights_dir=weights_dir)
    out = run_method("realesr-animevideov3", lr, (96, 120), upscaler)
    assert np.array_equal(out, upscaler.upscale(lr, core.UpscaleSettings()).image)
    assert run_method("realesr-animevideov3", lr, (73, 91), upscaler).shape == (73, 91, 3)  # any size
    with pytest.raises(ValueError, match="give its upscaler"):
        run_method("realesr-animevideov3", lr, (96, 120))


def test_every_float_round_trips_through_the_store_and_a_resumed_run_equals_a_fresh_one(tmp_path: Path) -> None:
    """A flat image: PSNR +inf and NIQE NaN. Reused from results.sqlite they must come back as they were
    (SQLite turns a NaN REAL into NULL, which used to come back as +inf)."""
    core.write_png(tmp_path / "hr" / "flat.png", np.full((128, 128, 3), 90, np.uint8))
    dataset = core.open_dataset(tmp_path / "hr", 4)
    db = core.ResultDB(tmp_path / "r.sqlite")
    fresh = core.evaluate(dataset, ["bicubic"], ["psnr", "niqe"], db=db)
    reused = core.evaluate(dataset, ["bicubic"], ["psnr", "niqe"], db=db)
    assert fresh.computed == 1 and reused.reused == 1
    assert fresh.rows[0].metrics["psnr"] == math.inf and math.isnan(fresh.rows[0].metrics["niqe"])
    assert reused.rows[0].metrics["psnr"] == math.inf and math.isnan(reused.rows[0].metrics["niqe"])
    row = EvalRow(image="x", method="m", metrics={"a": math.nan, "b": math.inf, "c": -math.inf, "d": 0.1 + 0.2},
                       seconds=1.0, device="cpu", precision="fp32", source="test")
    db.put("h", "m", "s", row)
    back, _ = db.get("h", "m", "s")
    assert math.isnan(back["a"]) and back["b"] == math.inf and back["c"] == -math.inf and back["d"] == 0.1 + 0.2
    # a store written before NaN was kept (NULL meant NaN or inf): such a result is computed again, not guessed
    db._db.execute("UPDATE metrics SET value = NULL WHERE metric LIKE 'niqe%'")
    db._db.commit()
    again = core.evaluate(dataset, ["bicubic"], ["psnr", "niqe"], db=db)
    assert again.computed == 1 and math.isnan(again.rows[0].metrics["niqe"])
    db.close()


def test_a_zip_member_whose_name_is_too_long_is_a_dataset_error(tmp_path: Path) -> None:
    archive = tmp_path / "long.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("n" * 300 + ".png", b"x")  # longer than a file name may be (255 bytes)
    with pytest.raises(DatasetError, match="cannot be extracted"):
        extract_zip(archive, tmp_path / "dest")
    assert not [p for p in (tmp_path / "dest").rglob("*") if p.is_file()]


def test_a_corrupt_result_store_is_named_and_nothing_runs(tmp_path: Path, capsys) -> None:
    store = tmp_path / "results.sqlite"
    store.write_bytes(b"this is not SQLite at all " * 200)
    with pytest.raises(DamagedFileError, match="corrupt"):
        core.ResultDB(store)
    code = main(["evaluate", "--dataset", "samples", "--methods", "bicubic", "--metrics", "psnr", "-q",
                 "--out", str(tmp_path / "run"), "--db", str(store)])
    err = capsys.readouterr().err
    assert code == 2 and "is corrupt" in err and str(store) in err and "Traceback" not in err
    assert not (tmp_path / "run" / "results.json").exists()


def test_a_result_and_the_link_that_finds_it_are_stored_in_one_transaction(tmp_path: Path) -> None:
    """A cluster run's driver finds finished work through the link alone; if a kill lands between storing a
    row and linking it, the row is there but never reused. A failing link must take the row with it."""
    core.write_png(tmp_path / "hr" / "a.png", np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    dataset = core.open_dataset(tmp_path / "hr", 4)
    store = tmp_path / "r.sqlite"
    core.ResultDB(store).close()
    with sqlite3.connect(store) as conn:  # the link's insert fails, as a kill at that moment would stop it
        conn.execute("CREATE TRIGGER no_link BEFORE INSERT ON items BEGIN SELECT RAISE(ABORT, 'killed'); END")
    db = core.ResultDB(store)
    with pytest.raises(sqlite3.IntegrityError, match="killed"):
        core.evaluate(dataset, ["bicubic"], ["psnr"], db=db)
    assert db.count() == 0, "a row was stored without the link that finds it"
    db._db.execute("DROP TRIGGER no_link")
    db._db.commit()
    first = core.evaluate(dataset, ["bicubic"], ["psnr"], db=db)
    assert first.computed == 1 and db.count() == 1
    key = dataset.item_key(dataset.items[0])
    assert db._db.execute("SELECT COUNT(*) FROM items WHERE item_key=?", (key,)).fetchone()[0] == 1
    db.close()


def test_a_metric_fixed_since_a_result_was_stored_is_computed_again(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Results stored before a fix changed a metric's values (its version) are not reused; others still are."""
    import dataclasses

    from core.metrics import _metrics

    core.write_png(tmp_path / "hr" / "a.png", core.load_sample("coffee")[:128, :128])
    dataset = core.open_dataset(tmp_path / "hr", 4)
    db = core.ResultDB(tmp_path / "r.sqlite")
    assert core.evaluate(dataset, ["bicubic"], ["psnr", "niqe"], db=db).computed == 1
    assert core.evaluate(dataset, ["bicubic"], ["psnr"], db=db).reused == 1
    fixed = dataclasses.replace(_metrics.METRICS["niqe"], version=_metrics.METRICS["niqe"].version + 1)
    with _metrics.METRICS.scoped():
        _metrics.METRICS.replace(fixed)
        again = core.evaluate(dataset, ["bicubic"], ["psnr", "niqe"], db=db)
        assert again.computed == 1 and again.reused == 0
        assert core.evaluate(dataset, ["bicubic"], ["psnr"], db=db).reused == 1  # PSNR alone: its rows stand


def test_a_div2k_layout_at_a_uri_is_listed_here_and_read_image_by_image(div2k: Path, div2k_zips: Path,
                                                                          tmp_path: Path, capsys) -> None:
    """``file://`` goes through the same pyarrow file systems as ``s3://`` (tests/cluster runs a real S3 server)."""
    copy = shutil.copytree(div2k, tmp_path / "div2k")
    remote, local = core.open_dataset(copy.as_uri(), 4), core.open_dataset(copy, 4)
    assert (remote.name, remote.lr_source) == (local.name, local.lr_source) == ("DIV2K valid",
                                                                                "DIV2K bicubic X4 (folder)")
    assert [i.name for i in remote.items] == list(NAMES)
    assert all(str(i.hr.path).startswith("file:///") and str(i.lr.path).endswith("x4.png") for i in remote.items)
    for a, b in zip(remote.items, local.items):
        for x, y in zip(remote.load(a), local.load(b)):
            np.testing.assert_array_equal(x, y)
    # a result is found again by the listed version: a changed image is another pair
    key = remote.item_key(remote.items[0])
    assert core.open_dataset(copy.as_uri(), 4).item_key(remote.items[0]) == key
    core.write_png(copy / "DIV2K_valid_HR" / "0801.png", _hr_images()["0802"])
    changed = core.open_dataset(copy.as_uri(), 4)
    assert changed.item_key(changed.items[0]) != key
    # paired folders and LR-only sets at URIs
    paired = core.open_dataset((copy / "DIV2K_valid_HR").as_uri(), 4,
                               lr_dir=(copy / "DIV2K_valid_LR_bicubic" / "X4").as_uri())
    assert [i.name for i in paired.items] == list(NAMES)
    lr_only = core.open_dataset((copy / "DIV2K_valid_LR_bicubic" / "X4").as_uri(), 4, lr_only=True)
    assert len(lr_only) == 3 and lr_only.load(lr_only.items[0])[1] is None
    with pytest.raises(DatasetError, match="not read image by image; extract it"):
        core.open_dataset(div2k_zips.as_uri(), 4)
    with pytest.raises(DatasetError, match="no such folder"):
        core.open_dataset((tmp_path / "nothing").as_uri(), 4)
    # the CLI reads a dataset at a URI on a cluster's workers only
    assert main(["evaluate", "--dataset", copy.as_uri(), "--methods", "bicubic", "--out", str(tmp_path / "o")]) == 2
    assert "add --ray" in capsys.readouterr().err


def test_an_image_too_small_for_the_scale_or_a_metric_is_one_error_row(tmp_path: Path) -> None:
    """8x8 HR at x4 (a 2x2 LR) used to end the whole run in MATLAB bicubic's IndexError."""
    core.write_png(tmp_path / "a.png", core.load_sample("rocket")[:8, :8])
    core.write_png(tmp_path / "b.png", core.load_sample("chelsea")[:48, :48])
    core.write_png(tmp_path / "c.png", core.load_sample("coffee")[:5, :3])
    result = core.evaluate(core.open_dataset(tmp_path, 4), ["bicubic", "lanczos"], ["psnr", "ssim"])
    rows = {(r.image, r.method): r for r in result.rows}
    assert len(rows) == 6
    assert "PSNR" in rows["a", "bicubic"].error and "too small to crop 4 px" in rows["a", "bicubic"].error
    assert "smaller than the scale" in rows["c", "lanczos"].error
    assert not rows["b", "bicubic"].error and rows["b", "bicubic"].metrics["psnr"] > 15


def _epoch(path: Path, seed: int) -> str:
    """A checkpoint of one architecture (every epoch the same size), written at ``path``; its SHA-256."""
    import hashlib

    import torch
    from safetensors.torch import save_file
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(seed)
    save_file(Compact(num_feat=8, num_conv=2, upscale=4).state_dict(), str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_retrained_checkpoint_under_the_old_name_is_scored_again_and_every_row_names_its_weights(
        div2k: Path, tmp_path: Path) -> None:
    """Issue 38.4: next epoch's file, dropped in under the old name (the same size), used to reuse the old scores."""
    folder = tmp_path / "weights"
    folder.mkdir()
    first = _epoch(folder / "my_model.safetensors", seed=1)
    dataset, db = core.open_dataset(div2k, 4), core.ResultDB(tmp_path / "r.sqlite")

    def run() -> core.EvalResult:
        factory = lambda name: core.Upscaler.load(name, device="cpu", weights_dir=folder)  # noqa: E731
        return core.evaluate(dataset, ["my_model"], ["psnr"], core.EvalSettings(device="cpu"), db=db,
                             upscaler_factory=factory)

    old = run()
    assert {row.weights for row in old.rows} == {f"my_model@sha256:{first}"} and old.computed == 3
    assert {row.weights for row in run().rows} == {f"my_model@sha256:{first}"}  # unchanged file: reused
    size = (folder / "my_model.safetensors").stat().st_size
    second = _epoch(folder / "my_model.safetensors", seed=2)
    assert (folder / "my_model.safetensors").stat().st_size == size and second != first
    new = run()
    assert new.computed == 3 and new.reused == 0
    assert {row.weights for row in new.rows} == {f"my_model@sha256:{second}"}
    assert [r.metrics["psnr"] for r in new.rows] != [r.metrics["psnr"] for r in old.rows]
    payload = json.loads(core.write_results(new, tmp_path / "out")[1].read_text())
    assert {row["weights"] for row in payload["rows"]} == {f"my_model@sha256:{second}"}
    assert (tmp_path / "out" / "results.csv").read_text().splitlines()[0].endswith(",error,weights")
