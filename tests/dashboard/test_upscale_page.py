"""The Upscale & Compare page, driven with Streamlit's AppTest: runs, scores, the viewer, uploads, reloads.
(helpers: :mod:`tests.dashboard.apptest`)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import core
from tests.dashboard.apptest import open_page, run_page, scored, settle, slow_loads, wait

pytestmark = pytest.mark.usefixtures("results_dir")


@pytest.mark.slow
def test_the_page_renders_and_works_while_the_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model loads in the background: the page is usable at once, the sidebar shows the load,
    and an Upscale clicked meanwhile waits for it."""

    from dashboard import cache

    cache.model_loads().clear()
    gate = slow_loads(monkeypatch)
    state = {"model": "realesr-animevideov3", "device": "cpu", "precision": "fp32", "tile": None}
    at = AppTest.from_function(run_page, args=("upscale", state), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Upscale & Compare" and at.selectbox(key="up_sample").value == "chelsea"
    assert any("is loading" in c.value for c in at.caption)
    at.slider(key="roi_size").set_value(64).run()
    at.button(key="run").click().run()
    assert any("loading realesr-animevideov3" in p.proto.text for p in at.get("progress")), "no loading status"
    gate.set()
    wait(at, lambda a: bool(a.success))
    assert "256x256 RGB 8-bit" in at.success[0].value and "realesr-animevideov3 · cpu · fp32" in at.success[0].value


@pytest.mark.slow
def test_upscale_compare_and_cache() -> None:
    at = open_page("upscale")
    at.sidebar.selectbox(key="model").set_value("realesr-animevideov3").run()
    at.slider(key="roi_size").set_value(64).run()
    at.button(key="run").click().run()
    wait(at, scored)
    line = at.success[0].value
    assert "256x256 RGB 8-bit" in line and line.count("realesr-animevideov3") == 1  # the model named once
    metrics = at.dataframe[0].value
    assert list(metrics["method"]) == ["bicubic", "realesr-animevideov3"]  # MATLAB bicubic, as on the Benchmark
    niqe = metrics["NIQE ↓"]
    assert niqe.notna().all() and (niqe > 0).all() and niqe.iloc[0] != niqe.iloc[1]
    assert [m.label for m in at.metric] == ["NIQE ↓", "NIQE ↓"]  # no reference: NIQE only, and said so
    assert at.metric[1].delta == f"{niqe.iloc[1] - niqe.iloc[0]:+.3f}"
    assert any("change vs bicubic" in m.value for m in at.markdown)
    assert not any("cropped" in c.value for c in at.caption) and any("Only NIQE" in c.value for c in at.caption)
    assert [b.key for b in at.get("download_button")] == ["download_realesr-animevideov3", "download_comparison"]
    at.run()  # same inputs: shown at once from the store, nothing to run
    assert not [b for b in at.button if b.key == "run"] and at.success


@pytest.mark.slow
def test_up_to_six_methods_in_one_viewer_with_maps_and_a_page_to_download() -> None:
    """Two models, two baselines and the reference on one grid: each scored, with LR-PSNR, the SSIM and
    LR-consistency maps in the viewer, and the offline comparison page offered (two panes was the limit)."""
    at = open_page("upscale", {"model": "realesr-animevideov3", "device": "cpu", "precision": "auto", "tile": None})
    at.slider(key="roi_size").set_value(48).run()
    at.radio(key="reference_mode").set_value("Downscale my image first and compare to it").run()
    picker = at.multiselect(key="compare_with")
    assert picker.value == ["bicubic"] and {"lanczos", "RealESRGAN_x4plus"} <= set(picker.options)
    picker.set_value(["bicubic", "lanczos", "RealESRGAN_x4plus"]).run()
    at.button(key="run").click().run()
    wait(at, scored)
    table = at.dataframe[0].value
    assert list(table["method"]) == ["bicubic", "lanczos", "realesr-animevideov3", "RealESRGAN_x4plus"]
    assert (table["PSNR ↑"] > 15).all() and (table["LR-PSNR ↑"] > 20).all()
    lr_psnr = dict(zip(table["method"], table["LR-PSNR ↑"]))  # the GANs invent detail the input does not hold
    assert min(lr_psnr["bicubic"], lr_psnr["lanczos"]) > max(lr_psnr["realesr-animevideov3"],
                                                             lr_psnr["RealESRGAN_x4plus"])
    assert table["PSNR ↑"].nunique() == 4  # four different outputs, not one shown four times
    frames = [e for e in at.get("iframe") if "studioViewer" in str(e.proto)]
    assert frames, "the viewer is not on the page"
    page = str(frames[0].proto)
    for label in ("1. bicubic", "2. lanczos", "3. realesr-animevideov3", "4. RealESRGAN_x4plus", "HR reference"):
        assert label.split(". ")[-1] in page, label
    assert "SSIM map vs HR" in page and "LR consistency" in page
    assert [b.key for b in at.get("download_button")][-1] == "download_comparison"
    # with a reference, four more methods at most: the model and the reference take two of six panes
    assert at.multiselect(key="compare_with").proto.max_selections == 4


@pytest.mark.slow
def test_a_reference_of_another_size_is_said_before_the_run() -> None:
    """A reference twice the input with a x4 model: the page said so only after the run, under a caption that
    promised PSNR / SSIM."""
    at = open_page("upscale", {"model": "realesr-animevideov3", "device": "cpu", "precision": "auto", "tile": None})
    at.slider(key="roi_size").set_value(32).run()
    at.radio(key="reference_mode").set_value("Upload an HR reference").run()
    source = core.load_sample("chelsea")
    reference = core.resize(source, (source.shape[0] * 2, source.shape[1] * 2), "bicubic")
    at.file_uploader(key="ref_upload").set_value(("ref.png", core.encode_png(reference), "image/png")).run()
    assert any("The reference is 64x64 but the output will be 128x128" in w.value and
               "Set the output scale to 2" in w.value for w in at.warning), [w.value for w in at.warning]
    at.button(key="run").click().run()
    wait(at, lambda a: bool(a.success))
    assert any("the reference is not the output's size" in c.value for c in at.caption)
    assert not any("against the reference" in c.value for c in at.caption)
    at.number_input(key="outscale").set_value(2.0).run()
    assert not any("The reference is" in w.value for w in at.warning)


@pytest.mark.slow
def test_a_reload_offers_the_last_upload_and_result_back(tmp_path: Path) -> None:
    """F5 starts a new session: the upload and the result were lost. The address's token finds them again."""
    state = {"model": "realesr-animevideov3", "device": "cpu", "precision": "auto", "tile": None}
    sessions = tmp_path / "results" / "sessions"
    for name, days in (("o" * 22, 8), ("r" * 22, 6), ("k" * 22, 8)):  # sessions last used 8 and 6 days ago
        (sessions / name / "last").mkdir(parents=True)
        os.utime(sessions / name, (time.time() - days * 86400,) * 2)
    fresh = AppTest.from_function(run_page, args=("upscale", state), default_timeout=120)
    fresh.run()
    token = fresh.query_params["s"]  # every session gets a token in its address
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,64}", token[0] if isinstance(token, list) else token)
    planted = "k" * 22  # a token of someone else's choosing, in a link: never written under
    first = AppTest.from_function(run_page, args=("upscale", state), default_timeout=120)
    first.query_params["s"] = planted
    first.run()
    settle(first)
    first.radio(key="up_source").set_value("Upload").run()
    png = core.encode_png(core.load_sample("rocket")[100:164, 200:264])
    first.file_uploader(key="up_upload").set_value(("my photo.png", png, "image/png")).run()
    first.multiselect(key="compare_with").set_value(["lanczos"]).run()
    first.button(key="run").click().run()
    wait(first, scored)
    table = first.dataframe[0].value
    token = first.query_params["s"]
    token = token[0] if isinstance(token, list) else token
    assert token != planted and re.fullmatch(r"[A-Za-z0-9_-]{22}", token)  # minted here, now in the address
    assert sorted(p.name for p in sessions.iterdir()) == sorted([token, "r" * 22])  # a week unused: removed

    def reload(token: str) -> AppTest:
        at = AppTest.from_function(run_page, args=("upscale", dict(state)), default_timeout=120)
        at.query_params["s"] = token
        at.run()
        return settle(at)

    again = reload(token)
    assert any("my photo.png" in i.value and "realesr-animevideov3" in i.value for i in again.info), \
        [i.value for i in again.info]
    again.button(key="restore_last").click().run()
    assert not again.exception, again.exception
    wait(again, scored)
    assert again.success and not [b for b in again.button if b.key == "run"]  # shown, not run again
    assert again.multiselect(key="compare_with").value == ["lanczos"]
    assert any("Using your upload **my photo.png**" in c.value for c in again.caption)
    restored = again.dataframe[0].value
    assert list(restored["method"]) == list(table["method"])
    assert np.allclose(restored["NIQE ↓"].to_numpy(float), table["NIQE ↓"].to_numpy(float), equal_nan=True)
    assert not any("Your last result" in i.value for i in again.info)  # answered: not offered again

    for other_token in ("x" * 22, planted, token + "\n"):  # nothing kept there, or not a token: nothing offered
        other = reload(other_token)
        assert not any("Your last result" in i.value for i in other.info)
    assert again.query_params["s"] in (token, [token])  # the restored session still names what it restored
    assert not [p for p in (tmp_path / "results").rglob("*.tmp*")]  # every file written whole


@pytest.mark.slow
def test_defaults_and_scales_that_change_the_job_are_said() -> None:
    """The region is on by default for a large image on the CPU, and an output scale past the model's is a
    resize: both used to go unsaid."""
    at = open_page("upscale", {"model": "realesr-animevideov3", "device": "auto", "precision": "auto", "tile": None})
    assert at.checkbox(key="roi").value and any("On by default here" in c.value for c in at.caption)
    assert not any("Beyond x" in c.value for c in at.caption)
    at.number_input(key="outscale").set_value(8.0).run()
    assert any("Beyond x4, the model's own scale, the x4 output is resized to x8" in c.value for c in at.caption)
    at.checkbox(key="roi").uncheck().run()
    assert not any("On by default here" in c.value for c in at.caption)


@pytest.mark.slow
def test_the_source_preview_outlines_the_region() -> None:
    from pages.upscale import PREVIEW_SIDE, preview

    at = open_page("upscale", {"model": "realesr-animevideov3", "device": "auto", "precision": "auto", "tile": None})
    at.slider(key="roi_x").set_value(40).run()
    at.slider(key="roi_y").set_value(20).run()
    captions = [image.proto.imgs[0].caption for image in at.get("image")]
    assert "Source 448x300 · region 128x128 at left 40, top 20 (outlined)" in captions
    at.checkbox(key="roi").uncheck().run()
    assert "Source 448x300" in [image.proto.imgs[0].caption for image in at.get("image")]

    source = core.load_sample("chelsea")  # 448x300: shown as it is
    shown = preview(source, (40, 20, 128))
    assert shown.shape == source.shape
    assert (shown[20, 40:168] == (255, 64, 64)).all() and (shown[20:148, 167] == (255, 64, 64)).all()
    assert np.array_equal(shown[21:147, 41:167], source[21:147, 41:167])  # the region as it is
    assert (shown[200:, 200:].astype(int) < source[200:, 200:]).mean() > 0.9  # the rest dimmed
    big = np.repeat(np.repeat(source, 3, axis=0), 3, axis=1)  # 1344x900: a thumbnail, box scaled
    shown = preview(big, (120, 60, 384))
    side = PREVIEW_SIDE
    assert max(shown.shape[:2]) == side and (shown[int(60 * side / 1344), 50:100] == (255, 64, 64)).all()


@pytest.mark.slow
def test_downscale_first_gives_psnr_and_ssim() -> None:
    at = open_page("upscale")
    at.sidebar.selectbox(key="model").set_value("realesr-animevideov3").run()
    at.slider(key="roi_size").set_value(96).run()
    at.radio(key="reference_mode").set_value("Downscale my image first and compare to it").run()
    at.button(key="run").click().run()
    wait(at, scored)
    metrics = at.dataframe[0].value
    assert {"PSNR ↑", "SSIM ↑", "NIQE ↓"} <= set(metrics.columns)
    assert (metrics["PSNR ↑"] > 20).all() and (metrics["SSIM ↑"] > 0.5).all()
    assert "96x96" in at.success[0].value
    labels = [m.label for m in at.metric]  # every computed metric on each card, not NIQE alone
    assert sorted(labels) == sorted(["PSNR ↑", "SSIM ↑", "NIQE ↓"] * 2), labels
    psnr = [m for m in at.metric if m.label == "PSNR ↑"]
    assert not psnr[0].delta and psnr[1].delta == (
        f"{metrics['PSNR ↑'].iloc[1] - metrics['PSNR ↑'].iloc[0]:+.2f}")  # dB: two decimals
    assert any("with a 4 px border cropped" in c.value for c in at.caption)
    assert any("lower PSNR than bicubic but a better NIQE" in m.value for m in at.markdown)  # explained


@pytest.mark.slow
def test_a_small_upload_after_the_sample_keeps_the_region_controls_valid() -> None:
    """The sample turns the region on at 128 px; an upload no larger than that must not crash the
    region sliders (a 0..0 slider raised StreamlitInvalidMinMaxError), nor one smaller than 32 px."""
    at = open_page("upscale", {"model": "realesr-animevideov3", "device": "cpu", "precision": "auto", "tile": None})
    assert at.checkbox(key="roi").value and at.slider(key="roi_size").value == 128
    at.slider(key="roi_x").set_value(300).run()
    at.radio(key="up_source").set_value("Upload").run()
    for side, sliders in ((128, {"roi_size"}), (150, {"roi_size", "roi_x", "roi_y"}), (20, set())):
        png = core.encode_png(core.load_sample("chelsea")[:side, :side])
        at.file_uploader(key="up_upload").set_value((f"c{side}.png", png, "image/png")).run()
        if not at.checkbox(key="roi").value:
            at.checkbox(key="roi").check().run()
        assert not at.exception, at.exception
        assert {s.key for s in at.slider} == sliders, side
        region = min(side, 128)
        assert any(m.value.startswith(f"Input: {region}x{region} RGB 8-bit") for m in at.markdown), side
    at.file_uploader(key="up_upload").set_value(("c128.png", core.encode_png(core.load_sample("chelsea")[:128, :128]),
                                                  "image/png")).run()
    at.slider(key="roi_size").set_value(64).run()  # room to move: the position sliders come back
    assert not at.exception and {s.key for s in at.slider} == {"roi_size", "roi_x", "roi_y"}


@pytest.mark.slow
def test_bad_upload_and_too_large_input_are_messages() -> None:
    at = open_page("upscale")
    at.radio(key="up_source").set_value("Upload").run()
    at.file_uploader(key="up_upload").set_value(("photo.png", b"not a png at all", "image/png")).run()
    assert not at.exception
    assert "photo.png" in at.error[0].value and "not an image" in at.error[0].value
    big = core.encode_png(np.zeros((1, 20_000), np.uint8))  # 20000x1 is fine...
    at.file_uploader(key="up_upload").set_value(("wide.png", big, "image/png")).run()
    assert not at.error  # ...a thin image is under the pixel limit
    bomb = core.encode_png(np.zeros((5000, 5000), np.uint8))
    at.file_uploader(key="up_upload").set_value(("huge.png", bomb, "image/png")).run()
    assert "limit is 16.8 MP" in at.error[0].value


def test_missing_weights_offer_a_way_forward() -> None:
    at = open_page("upscale", {"model": "RealESRNet_x4plus", "device": "auto", "precision": "auto", "tile": None})
    text = at.error[0].value
    assert "RealESRNet_x4plus" in text and "bicubic" in text and "Models & System" in text


@pytest.mark.slow
def test_cancel_a_running_upscale() -> None:
    at = open_page("upscale", {"model": "RealESRGAN_x4plus", "device": "cpu", "precision": "auto", "tile": 32})
    at.slider(key="roi_size").set_value(128).run()
    at.button(key="run").click().run()
    assert [b for b in at.button if b.key == "upscale_cancel"], "no cancel button while running"
    at.button(key="upscale_cancel").click().run()
    wait(at, lambda a: bool(a.info) and any("Cancelled" in i.value for i in a.info))
    assert not at.success and not at.error
    assert [b for b in at.button if b.key == "run"]  # ready to run again


@pytest.mark.slow
def test_outputs_made_elsewhere_are_panes_cut_to_the_region_and_scored_like_the_others() -> None:
    """An upload of the whole image upscaled by another tool: cut to the region, named after its file, scored in the
    table and shown in the viewer; one at another scale is left out with the scale to set."""
    at = open_page("upscale", {"model": "realesr-animevideov3", "device": "cpu", "precision": "auto", "tile": None})
    at.slider(key="roi_size").set_value(48).run()
    x, y = at.slider(key="roi_x").value, at.slider(key="roi_y").value
    sample = core.load_sample("chelsea")
    theirs = core.resize(sample, (sample.shape[0] * 4, sample.shape[1] * 4), "lanczos")
    half = core.resize(sample, (sample.shape[0] * 2, sample.shape[1] * 2), "lanczos")
    at.file_uploader(key="up_outside").set_value([("chelsea_upscayl_4x.png", core.encode_png(theirs), "image/png"),
                                                  ("half.png", core.encode_png(half), "image/png")]).run()
    assert any("Left out: half.png is 896x600" in w.value and "set the output scale to 2" in w.value
               for w in at.warning), [w.value for w in at.warning]
    at.button(key="run").click().run()
    wait(at, scored)
    table = at.dataframe[0].value
    assert list(table["method"]) == ["bicubic", "realesr-animevideov3", "upscayl_4x"]
    row = table[table["method"] == "upscayl_4x"].iloc[0]
    assert row["device"] == "made elsewhere" and row["seconds"] == "—"
    region = theirs[y * 4: (y + 48) * 4, x * 4: (x + 48) * 4]
    expected = core.score_images({"it": region}, None, metrics=("niqe",))["it"]["niqe"]
    assert row["NIQE ↓"] == pytest.approx(expected, abs=1e-9)  # the region of their output, not another part
    frames = [e for e in at.get("iframe") if "studioViewer" in str(e.proto)]
    assert frames and "upscayl_4x" in str(frames[0].proto)
