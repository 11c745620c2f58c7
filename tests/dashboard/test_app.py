"""Every dashboard page, driven with Streamlit's AppTest: main paths and error paths.

Pages run real core code (real models on small crops) through the real page functions;
background jobs run in threads of the test process, so a test reruns the script until the
job has finished, as the page's polling fragment would.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import core
from dashboard import charts

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def run_page(page: str, state: dict | None = None) -> None:
    """AppTest script: the frame (sidebar unless ``state`` replaces it) and one page."""
    import streamlit as st

    from dashboard import frame
    from pages import PAGES

    if state is None:
        frame.setup()
    else:
        frame.setup(with_sidebar=False)
        for key, value in state.items():
            st.session_state.setdefault(key, value)
    PAGES[page][0]()


def settle(at: AppTest, timeout: float = 120.0) -> AppTest:
    """Rerun until no model is loading in the background (as the sidebar's status fragment does)."""
    from dashboard import cache

    deadline = time.monotonic() + timeout
    while cache.model_loads().pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    at.run()
    assert not at.exception, at.exception
    return at


def open_page(page: str, state: dict | None = None) -> AppTest:
    at = AppTest.from_function(run_page, args=(page, state), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return settle(at)


def wait(at: AppTest, done, timeout: float = 120.0) -> AppTest:
    """Rerun until ``done(at)`` (a background job finished and its result is shown)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        if done(at):
            return at
        time.sleep(0.3)
    raise AssertionError(f"timed out; errors: {[e.value for e in at.error]}")


def scored(at: AppTest) -> bool:
    """The upscale ended and its scoring job too (scores come in the background: no progress bar is left)."""
    return bool(at.success) and bool(at.dataframe) and not at.get("progress")


@pytest.fixture(autouse=True)
def _folders(weights_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIO_RESULTS_DIR", str(tmp_path / "results"))


@pytest.mark.slow
def test_entry_script_opens_on_defaults_with_offline_models() -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Upscale & Compare"
    settle(at)
    models = at.sidebar.selectbox(key="model")
    assert models.value == "RealESRGAN_x4plus"
    assert "realesr-animevideov3" in models.options and "RealESRNet_x4plus" not in models.options
    assert any("In use: RealESRGAN_x4plus · cpu · fp32" in c.value and "ncnn" in c.value for c in at.sidebar.caption)
    assert any(re.search(r"Auto tile now: \d+ px with 24 px context", c.value) for c in at.sidebar.caption)
    assert any("RealESRNet_x4plus" in c.value and "Download it" in c.value for c in at.sidebar.caption)
    assert at.selectbox(key="up_sample").value == "chelsea" and at.checkbox(key="roi").value


@pytest.mark.slow
def test_the_sidebar_links_to_the_api_docs_where_the_api_is_served(monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m api.serve` serves /docs beside the dashboard and says so; `streamlit run` alone has no API."""
    assert not any("API docs" in m.value for m in open_page("models").sidebar.markdown)
    monkeypatch.setenv("STUDIO_API_DOCS", "/docs")
    assert any("[HTTP API docs](/docs)" in m.value for m in open_page("models").sidebar.markdown)


def _slow_loads(monkeypatch: pytest.MonkeyPatch):
    """Every model load waits for the returned gate, as a first load does: callers with a time limit
    get ``TimeoutError`` meanwhile (the core's contract)."""
    import threading

    gate, real = threading.Event(), core.shared_upscaler

    def slow(*key: str, timeout: float | None = None, cancel=None) -> core.Upscaler:
        if not gate.wait(60 if timeout is None else timeout):
            raise TimeoutError("still loading")
        return real(*key)

    monkeypatch.setattr(core, "shared_upscaler", slow)
    return gate


@pytest.mark.slow
def test_the_page_renders_and_works_while_the_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model loads in the background: the page is usable at once, the sidebar shows the load,
    and an Upscale clicked meanwhile waits for it."""

    from dashboard import cache

    cache.model_loads().clear()
    gate = _slow_loads(monkeypatch)
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


def test_the_sidebar_shows_a_loading_model(monkeypatch: pytest.MonkeyPatch) -> None:

    from dashboard import cache

    cache.model_loads().clear()
    gate = _slow_loads(monkeypatch)
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["precision"] = "fp32"  # a key no other test has loaded
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Upscale & Compare"
    assert any("Loading **RealESRGAN_x4plus** on auto" in i.value for i in at.sidebar.info)
    gate.set()
    settle(at)
    assert not at.sidebar.info and any("In use: RealESRGAN_x4plus · cpu · fp32" in c.value for c in at.sidebar.caption)


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
def test_benchmark_runs_in_the_background_and_reloads() -> None:
    at = open_page("benchmark")
    at.multiselect(key="bench_methods").set_value(["bicubic", "lanczos"]).run()
    at.multiselect(key="bench_metrics").set_value(["psnr", "niqe"]).run()
    at.button(key="bench_run_button").click().run()
    wait(at, lambda a: any("Per-method means" in s.value for s in a.subheader))
    means = at.dataframe[0].value.set_index("method")
    assert set(means.index) == {"bicubic", "lanczos"} and (means["PSNR ↑"] > 20).all()
    assert means.loc["bicubic", "images"] == 6
    rows = at.dataframe[1].value
    assert len(rows) == 12 and rows["NIQE ↓"].notna().all()
    assert len(at.get("download_button")) == 3  # CSV, JSON and the paper table
    best = "**" + f"{means['PSNR ↑'].max():.2f}" + "**"  # the better method's PSNR, in bold
    assert best in at.code[0].value and "| Method | PSNR (dB) ↑ | NIQE ↓ |" in at.code[0].value
    at.radio(key="bench_table_format").set_value("latex").run()
    assert "\\textbf{" + best.strip("*") + "}" in at.code[0].value
    specs = [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]
    assert len(specs) == 2 and specs[0]["height"] == specs[1]["height"]  # bar and per-image charts, side by side
    dots = specs[0]["layer"][0]
    assert dots["mark"]["type"] == "point" and dots["encoding"]["x"]["scale"]["zero"] is False  # a dot plot may
    low, high = dots["encoding"]["x"]["scale"]["domain"]  # span the data; a bar would have to start at zero
    assert low > 20 and low < means["PSNR ↑"].min() < means["PSNR ↑"].max() < high
    colours = dict(zip(dots["encoding"]["color"]["scale"]["domain"], dots["encoding"]["color"]["scale"]["range"]))
    assert colours["bicubic"] == charts.method_colours(["bicubic"])[0]  # one colour per method, whatever the run
    again = open_page("benchmark")  # a new session finds the run in the results folder
    assert again.selectbox(key="bench_run_pick").options and any(
        "Per-method means" in s.value for s in again.subheader)


@pytest.mark.slow
def test_degradation_lab_stages_fixed_mode_and_restore() -> None:
    at = open_page("degradation")
    captions = [image.proto.imgs[0].caption for image in at.get("image")]
    assert captions[0].startswith("input: 256x256")
    heat_maps = [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]
    blur1 = next(spec for spec in heat_maps if spec["title"].startswith("blur 1 kernel ("))  # the kernel heat map...
    assert blur1["encoding"]["color"]["legend"]["title"] == "weight"  # ...with its colour scale
    assert any(c.startswith("blur 1: ") for c in captions) and any(c.startswith("output: 64x64") for c in captions)
    at.number_input(key="lab_seed").set_value(1).run()
    assert [image.proto.imgs[0].caption for image in at.get("image")] != captions  # another draw
    assert captions[1].startswith("usm sharpen: ")  # the preset degrades the sharpened HR, as Real-ESRGAN
    assert any("(simulated, as Real-ESRGAN)" in c for c in captions if c.startswith("jpeg 1: "))
    at.radio(key="lab_mode").set_value("Fixed (set every parameter)").run()
    assert not at.exception
    fixed = [image.proto.imgs[0].caption for image in at.get("image")]
    assert fixed[1].startswith("usm sharpen: ") and any("(simulated" in c for c in fixed if c.startswith("jpeg 1"))
    at.checkbox(key="fx_usm").uncheck().run()
    at.selectbox(key="fx_jpeg").set_value("opencv").run()
    fixed = [image.proto.imgs[0].caption for image in at.get("image")]
    assert not any(c.startswith("usm") for c in fixed) and "jpeg 1: quality 60 (OpenCV codec)" in fixed
    at.multiselect(key="lab_methods").set_value(["bicubic"]).run()
    at.button(key="lab_run").click().run()
    wait(at, lambda a: any(df.value.shape[0] == 1 and "PSNR ↑" in df.value.columns for df in a.dataframe))
    scores = next(df.value for df in at.dataframe if "PSNR ↑" in df.value.columns)
    assert scores["method"].tolist() == ["bicubic"] and 10 < scores["PSNR ↑"].iloc[0] < 40


@pytest.mark.slow
def test_the_sweep_chart_spans_the_scores_in_each_methods_colour() -> None:
    at = open_page("degradation")
    at.number_input(key="sweep_steps").set_value(3).run()
    at.multiselect(key="sweep_methods").set_value(["bicubic"]).run()
    assert at.selectbox(key="sweep_metric").options == [f"{core.METRICS[m].title} {core.METRICS[m].arrow}"
                                                         for m in core.METRICS.names(ready=True)]
    at.selectbox(key="sweep_metric").set_value("psnr").run()
    at.button(key="sweep_run").click().run()
    wait(at, lambda a: any("score" in json.loads(c.proto.spec)["encoding"].get("y", {}).get("field", "")
                           for c in a.get("vega_lite_chart") if "encoding" in json.loads(c.proto.spec)))
    spec = next(json.loads(c.proto.spec) for c in at.get("vega_lite_chart")
                if json.loads(c.proto.spec).get("encoding", {}).get("y", {}).get("field") == "score")
    scores = [p["score"] for p in at.session_state.sweep_points]
    low, high = spec["encoding"]["y"]["scale"]["domain"]
    assert spec["encoding"]["y"]["scale"]["zero"] is False and 0 < low < min(scores) <= max(scores) < high
    assert spec["encoding"]["color"]["scale"]["range"] == charts.method_colours(["bicubic"])


@pytest.mark.slow
def test_a_model_still_to_load_does_not_freeze_the_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run sweep with a model not loaded: the page used to wait for the load (15 s, no cancel). Now the job
    waits, with a status line and a Cancel button, and the page answers at once."""
    from dashboard import cache

    real, slow = core.shared_upscaler, "realesr-animevideov3"

    def loading(name, device="auto", precision="auto", *args, timeout=None, **kwargs):
        if name == slow:
            if timeout == 0:
                raise TimeoutError  # the core: not loaded yet
            time.sleep(8)
        return real(name, device, precision, *args, timeout=timeout, **kwargs)

    monkeypatch.setattr(core, "shared_upscaler", loading)
    cache.model_loads().clear()
    at = open_page("degradation")
    at.number_input(key="sweep_steps").set_value(2).run()
    at.multiselect(key="sweep_methods").set_value(["bicubic", slow]).run()
    start = time.monotonic()
    at.button(key="sweep_run").click().run()
    seconds = time.monotonic() - start
    assert not at.exception, at.exception
    assert seconds < 6, f"the page waited {seconds:.1f} s for the model (it loads for 8 s)"
    wait(at, lambda a: bool(a.session_state["sweep_points"]) if "sweep_points" in a.session_state else False)
    assert {p["method"] for p in at.session_state.sweep_points} == {"bicubic", slow}


@pytest.mark.slow
def test_models_and_system_page(x4plus: core.Upscaler) -> None:
    at = open_page("models")
    table = at.table[0].value.join(at.table[1].value)  # static tables: long sources wrap, nothing is cut
    assert "source" not in at.table[0].value.columns  # the sources in their own table, in an expander
    available = {i.name for i in core.list_models() if i.available}
    assert set(table.index) == available and "RealESRGAN_x4plus" in available
    assert table.loc["RealESRGAN_x4plus", "parameters"] == "16.70 M" and table.loc["RealESRGAN_x4plus", "fp16"] == "yes"
    # what engine="auto" runs it with: the engine its first load here measured fastest (more measurements
    # come on loads an hour or more later)
    assert x4plus.engine_choice is not None and table.loc["RealESRGAN_x4plus", "CPU engine"] == \
        f"{x4plus.engine} (measured 1 of {core.engines.MEASUREMENTS})"
    assert table.loc["RealESRGAN_x4plus", "source"].endswith("/RealESRGAN_x4plus.pth)")  # the official file's link
    assert not table.isna().any().any(), "a cell would show 'None'"
    engines = next(df.value for df in at.dataframe if "why" in df.value.columns).set_index("model")
    assert engines.loc["RealESRGAN_x4plus", "engine"] == x4plus.engine
    assert engines.loc["RealESRGAN_x4plus", "measured"] == f"1 of {core.engines.MEASUREMENTS}"
    assert engines.loc["RealESRGAN_x4plus", "torch"].endswith(" s")
    assert engines.loc["RealESRGAN_x4plus", "why"] == x4plus.engine_choice.reason
    missing = next(m.value for m in at.markdown if "**RealESRNet_x4plus**" in m.value)  # with how to get it
    assert "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.1/RealESRNet_x4plus.pth" in missing
    assert any(s.value.startswith("Not available here (") for s in at.subheader)
    system = next(df.value for df in at.dataframe if "value" in df.value.columns)
    assert "torch" in system[""].tolist() and "ram available / total (GB)" in system[""].tolist()
    at.button(key="clear_models").click().run()
    assert "cleared" in at.success[0].value


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


def test_a_tile_below_the_minimum_is_raised_with_a_note() -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.sidebar.number_input(key="tile").set_value(5).run()
    assert not at.exception, at.exception
    assert at.sidebar.number_input(key="tile").value == core.MIN_TILE
    assert any(f"at least {core.MIN_TILE} px" in info.value for info in at.sidebar.info)


def run_pages() -> None:
    """AppTest script: the frame and whichever page ``_test_page`` names (navigation, as Streamlit does it)."""
    import streamlit as st

    from dashboard import frame
    from pages import PAGES

    frame.setup(with_sidebar=False)
    PAGES[st.session_state.get("_test_page", "degradation")][0]()


@pytest.mark.slow
def test_settings_survive_page_switches_and_hidden_modes() -> None:
    at = AppTest.from_function(run_pages, default_timeout=120)
    at.run()
    at.selectbox(key="lab_preset").set_value("mild").run()
    at.number_input(key="lab_seed").set_value(7).run()
    at.selectbox(key="lab_sample").set_value("rocket").run()
    at.radio(key="lab_mode").set_value("Fixed (set every parameter)").run()  # hides preset and seed
    at.number_input(key="fx_seed").set_value(3).run()
    at.radio(key="lab_mode").set_value("Preset + seed (sampled)").run()
    assert at.selectbox(key="lab_preset").value == "mild" and at.number_input(key="lab_seed").value == 7
    at.session_state["_test_page"] = "models"  # another page: none of the lab's widgets are drawn
    at.run()
    at.run()
    assert not at.exception, at.exception
    at.session_state["_test_page"] = "degradation"
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="lab_sample").value == "rocket"
    assert at.selectbox(key="lab_preset").value == "mild" and at.number_input(key="lab_seed").value == 7
    at.radio(key="lab_mode").set_value("Fixed (set every parameter)").run()
    assert at.number_input(key="fx_seed").value == 3


@pytest.mark.slow
def test_saved_parameters_replay_exactly_in_fixed_mode() -> None:
    at = open_page("degradation")
    at.number_input(key="lab_seed").set_value(5).run()
    drawn = [image.proto.imgs[0].caption for image in at.get("image")]
    hr = core.load_sample("astronaut")
    top, left = (hr.shape[0] - 256) // 2, (hr.shape[1] - 256) // 2
    result = core.degrade(hr[top:top + 256, left:left + 256], core.PRESETS["realesrgan"], 5)
    saved = result.params.to_json().encode()  # what "Save these parameters" offers for this draw
    at.file_uploader(key="lab_load").set_value([("params.json", saved, "application/json")]).run()
    assert "holds drawn parameters, not a configuration" in at.error[0].value  # it was "Unknown ... final"
    at.file_uploader(key="lab_load").set_value([]).run()
    at.radio(key="lab_mode").set_value("Fixed (set every parameter)").run()
    at.file_uploader(key="lab_params_load").set_value([("params.json", saved, "application/json")]).run()
    assert not at.error and any("Replaying params.json exactly" in i.value for i in at.info)
    assert [image.proto.imgs[0].caption for image in at.get("image")] == drawn  # the same stages, the same draw
    wrapped = json.dumps({"seed": 5, "config": {}, "params": json.loads(saved)}).encode()  # degrade's own file
    at.file_uploader(key="lab_params_load").set_value([("a_params.json", wrapped, "application/json")]).run()
    assert [image.proto.imgs[0].caption for image in at.get("image")] == drawn
    at.selectbox(key="lab_scale").set_value(2).run()
    assert "drawn for x4: choose that scale" in at.error[0].value


@pytest.mark.slow
def test_a_failed_download_is_an_error_message_and_the_page_stays_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Models page's background download through the shared job helper: served from loopback, the file is
    not a model, so the job fails; its message shows once, and the Download button is back."""
    import dataclasses

    from core.models import _catalogue
    from tests.loopback import LoopbackServer

    spec = core.models.CATALOGUE["RealESRNet_x4plus"]
    with LoopbackServer({"/bad.pth": b"not a model" * 100}) as server:
        monkeypatch.setitem(_catalogue.CATALOGUE, spec.name, dataclasses.replace(spec, url=f"{server.url}/bad.pth"))
        at = open_page("models")
        at.selectbox(key="dl_model").set_value(spec.name).run()
        at.button(key="dl_go").click().run()
        if not at.error:  # a failure within milliseconds is already shown by the click's own run
            wait(at, lambda a: bool(a.error))
    assert "not a usable model" in at.error[0].value and "run again" in at.error[0].value
    assert not at.success and [b for b in at.button if b.key == "dl_go"]
    at.run()
    assert not at.error, "the outcome is shown once"


@pytest.mark.slow
def test_a_damaged_run_is_listed_as_damaged_and_the_others_still_load(tmp_path: Path) -> None:
    results = tmp_path / "results"
    result = core.evaluate(core.open_dataset("samples", 4), ["bicubic"], ["psnr"])
    core.write_results(result, results / "20260101-000000")
    _, newest = core.write_results(result, results / "20260102-000000")
    newest.write_bytes(newest.read_bytes()[:200])  # killed mid-write by the old code, or a full disk
    at = open_page("benchmark")
    pick = at.selectbox(key="bench_run_pick")
    assert pick.options == ["20260102-000000 (damaged)", "20260101-000000"]
    assert pick.value == "20260101-000000"  # the newest readable run is the default
    assert any("Per-method means" in s.value for s in at.subheader)
    pick.set_value("20260102-000000").run()
    assert not at.exception
    assert any("damaged" in e.value and "results.json" in e.value for e in at.error)


def test_the_benchmark_page_says_what_a_mean_leaves_out(tmp_path: Path) -> None:
    """Issue 38.7: a PSNR of +inf (an output identical to its HR) is left out of the mean, and the page says so."""
    result = core.evaluation.EvalResult("set", 4, "MATLAB bicubic", ["bicubic"], ["psnr"], core.EvalSettings())
    result.rows = [core.evaluation.EvalRow(name, "bicubic", {"psnr": value}, 0.1, "cpu", "fp32", "test")
                   for name, value in (("a", float("inf")), ("b", 30.0), ("c", 32.0))]
    core.write_results(result, tmp_path / "results" / "20260101-000000")
    at = open_page("benchmark")
    assert not at.exception
    notes = [c.value for c in at.caption if "left out" in c.value]
    assert notes == ["⚠ bicubic · PSNR: mean of 2 of 3 images; left out: 1 +inf (an output identical to its "
                     "reference)"], [c.value for c in at.caption]


@pytest.mark.slow
def test_uploaded_pairs_are_exactly_the_current_uploads_and_go_with_the_session() -> None:
    import gc

    at = open_page("benchmark")
    at.radio(key="bench_source").set_value("Uploaded HR / LR pairs").run()
    crops = {name: core.encode_png(core.load_sample(name)[:64, :64]) for name in ("rocket", "coffee")}
    at.file_uploader(key="bench_hr").set_value([(f"{n}.png", data, "image/png") for n, data in crops.items()]).run()
    assert not at.exception
    assert any("2 images" in m.value for m in at.markdown), [m.value for m in at.markdown]
    root = at.session_state["bench_uploads"].root
    at.file_uploader(key="bench_hr").set_value([("rocket.png", crops["rocket"], "image/png")]).run()
    assert any("1 images" in m.value for m in at.markdown), [m.value for m in at.markdown]
    sets = list(root.iterdir())
    assert len(sets) == 1 and [p.name for p in (sets[0] / "hr").iterdir()] == ["rocket.png"]  # coffee is gone
    del at
    gc.collect()
    assert not root.exists()  # the session is gone, and so are its uploads


@pytest.mark.slow
def test_an_uploaded_pair_with_other_names_pairs_by_order_and_no_temporary_path_is_shown() -> None:
    at = open_page("benchmark")
    at.radio(key="bench_source").set_value("Uploaded HR / LR pairs").run()
    hr = core.load_sample("coffee")[:64, :64]
    at.file_uploader(key="bench_hr").set_value([("pair_hr.png", core.encode_png(hr), "image/png")]).run()
    at.file_uploader(key="bench_lr").set_value([("pair_lr.png", core.encode_png(core.imresize(hr, 0.25)),
                                                 "image/png")]).run()
    assert not at.error, [e.value for e in at.error]  # it was "no LR partner in /tmp/studio-upload-…"
    assert any("pair_hr.png ↔ pair_lr.png" in c.value for c in at.caption)
    assert any(m.value.startswith("uploads: pair_hr.png: 1 images") for m in at.markdown)
    at.file_uploader(key="bench_lr").set_value([("pair_lr.png", core.encode_png(hr[:8, :8]), "image/png")]).run()
    at.file_uploader(key="bench_hr").set_value([("pair_hr.png", core.encode_png(hr), "image/png"),
                                                ("other.png", core.encode_png(hr), "image/png")]).run()
    message = at.error[0].value  # two HR, one LR: nothing pairs them, and the message says so without the path
    assert "no LR partner" in message and "the LR uploads" in message and "studio-upload" not in message


@pytest.mark.slow
def test_the_dashboard_keeps_no_model_the_core_has_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    """The core's cache is bounded; the dashboard's load tracker must not hold models beyond it."""
    import gc
    import types
    import weakref

    from core.upscale import _shared
    from dashboard.cache import ModelLoads

    class Model:
        measurement_due = False

    monkeypatch.setattr(_shared, "Upscaler", types.SimpleNamespace(load=lambda name, **kw: Model()))
    core.clear_shared()
    loads, key = ModelLoads(), ("m", "cpu", "fp32")
    first = loads.start(key).result(10)
    assert loads.start(key).result(0) is first  # loaded: answered at once from the core's cache
    gone = weakref.ref(first)
    del first
    core.clear_shared()  # the core lets it go (least recently used, or short of memory)
    gc.collect()
    assert gone() is None
    assert isinstance(loads.start(key).result(10), Model)  # asked for again: loaded again
    core.clear_shared()


@pytest.mark.slow
def test_a_second_benchmark_run_is_the_one_shown() -> None:
    """The Results picker keeps its own state: after a run it must move to the run just made, not stay on the
    one it showed before."""
    at = open_page("benchmark")
    at.multiselect(key="bench_methods").set_value(["bicubic"]).run()
    at.multiselect(key="bench_metrics").set_value(["psnr"]).run()
    at.button(key="bench_run_button").click().run()
    wait(at, lambda a: any("Per-method means" in s.value for s in a.subheader))
    first = at.selectbox(key="bench_run_pick").value
    assert list(at.dataframe[0].value["method"]) == ["bicubic"]
    at.multiselect(key="bench_methods").set_value(["lanczos"]).run()
    at.button(key="bench_run_button").click().run()
    wait(at, lambda a: a.selectbox(key="bench_run_pick").value != first and any(
        "Per-method means" in s.value for s in a.subheader))
    second = at.selectbox(key="bench_run_pick").value
    assert list(at.dataframe[0].value["method"]) == ["lanczos"]  # the new run's numbers, not the first one's
    assert any(second in s.value and "Finished" in s.value for s in at.success)
    assert second in at.selectbox(key="bench_run_pick").options and first in at.selectbox(key="bench_run_pick").options


@pytest.mark.slow
def test_a_real_world_lr_only_folder_is_benchmarked_with_no_reference_metrics(tmp_path: Path) -> None:
    for name in ("cat", "coffee"):
        core.write_png(tmp_path / "RealSRSet" / f"{name}.png", core.load_sample(
            "chelsea" if name == "cat" else "coffee")[:32, :40])
    at = open_page("benchmark")
    at.radio(key="bench_source").set_value("Folder: real-world LR only (no HR)").run()
    at.text_input(key="bench_lr_path").input(str(tmp_path / "RealSRSet")).run()
    assert "hr" not in at.multiselect(key="bench_methods_lr").options  # nothing to compare with
    assert at.multiselect(key="bench_metrics_lr").value == core.METRICS.names("no-reference", ready=True)
    at.multiselect(key="bench_methods_lr").set_value(["bicubic", "lanczos"]).run()
    at.button(key="bench_run_button").click().run()
    wait(at, lambda a: any("Per-method means" in s.value for s in a.subheader))
    means = at.dataframe[0].value.set_index("method")
    assert list(means.columns[:1]) == ["NIQE ↓"] and (means["NIQE ↓"] > 0).all() and (means["images"] == 2).all()
    assert any("real-world LR (no ground truth)" in c.value for c in at.caption)


def run_switchable() -> None:
    """AppTest script: the frame and the page named by ``st.session_state.page`` (a page switch in one session)."""
    import streamlit as st

    from dashboard import frame
    from pages import PAGES

    frame.setup()
    PAGES[st.session_state.setdefault("page", "upscale")][0]()


@pytest.mark.slow
def test_settings_and_result_survive_a_page_switch() -> None:
    """Region on/off, size and position and the output scale stay as set when the user visits another page
    and comes back; so does the finished result, which is keyed on them."""
    at = AppTest.from_function(run_switchable, default_timeout=120)
    settle(at.run())
    at.sidebar.selectbox(key="model").set_value("realesr-animevideov3").run()
    at.slider(key="roi_size").set_value(64).run()
    at.slider(key="roi_x").set_value(40).run()
    at.number_input(key="outscale").set_value(2.0).run()
    at.button(key="run").click().run()
    wait(at, lambda a: any(s.value == "Metrics" for s in a.subheader))
    at.session_state["page"] = "models"
    at.run()
    assert not at.exception and not [s for s in at.slider if s.key == "roi_size"]  # the other page is shown
    at.session_state["page"] = "upscale"
    at.run()
    assert at.checkbox(key="roi").value and at.slider(key="roi_size").value == 64 and at.slider(key="roi_x").value == 40
    assert at.number_input(key="outscale").value == 2.0
    assert any(s.value == "Metrics" for s in at.subheader) and not [b for b in at.button if b.key == "run"]
    at.checkbox(key="roi").uncheck().run()
    at.session_state["page"] = "benchmark"
    at.run()
    at.session_state["page"] = "upscale"
    at.run()
    assert not at.checkbox(key="roi").value  # off stays off


@pytest.mark.slow
def test_the_models_page_lists_metric_weights_and_an_offline_download_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from core.metrics import _lpips, _torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no ImageNet backbone here
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no CLIP in ~/.cache/clip
    with socket.socket() as sock:  # a port nothing listens on: the machine is offline for this download
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setattr(_torchvision, "_source", lambda net: f"http://127.0.0.1:{closed}/vgg16-397923af.pth")
    monkeypatch.setattr(_lpips, "_HEADS_URL", f"http://127.0.0.1:{closed}/{{net}}.pth")
    at = open_page("models")
    table = next(d for d in at.dataframe if "metric" in d.value.columns).value.set_index("metric")
    assert list(table.index) == ["lpips-alex", "lpips-vgg", "dists", "clipiqa", "clipiqa-ensemble", "musiq",
                                 "musiq-spaq", "musiq-paq2piq", "musiq-ava"]
    assert set(table["here"]) == {"no"}
    assert "MIT" in table.loc["dists", "licences"]
    assert "BSD-2-Clause" in table.loc["lpips-alex", "licences"] and "alexnet-owt-7be5be79.pth" in table.loc[
        "lpips-alex", "files"]
    at.selectbox(key="metric_dl_name").set_value("lpips-vgg").run()
    at.button(key="metric_dl_go").click().run()
    if not at.error:  # a failure within milliseconds is already shown by the click's own run
        wait(at, lambda a: bool(a.error))
    assert "Could not download" in at.error[0].value and not at.exception  # offline: said, not a traceback
    assert [b for b in at.button if b.key == "metric_dl_go"]  # and the button is back


def test_the_server_config_keeps_streamlit_from_slowing_the_work() -> None:
    """Streamlit's defaults slowed a running upscale 3x on two cores: ``gc.collect(2)`` after every script run
    (the job panels rerun twice a second) holds the GIL between PyTorch's layers, and the source watcher polls
    every imported file under the project, ``.venv`` included (benchmarks/first_result.py: 2.7 s instead of
    7.5-9.1 s for the default upscale, 13 s instead of 24 s to the first result)."""
    import tomllib

    config = tomllib.loads((Path(APP).parents[1] / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
    assert config["server"]["fileWatcherType"] == "none" and config["server"]["runOnSave"] is False
