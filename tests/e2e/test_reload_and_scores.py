"""The Upscale page in a real Chromium against real `streamlit run` servers (issue 38, points 16 to 18):

* F5 during a job finds the job again (its image, settings and progress), and a restart of the server
  during a job gives the image and settings back with a line that says the job stopped;
* learned metrics score in the page's background job: cheap numbers first, "computing" on the cards until
  the learned ones are ready, Cancel keeping what finished, and a button that computes the rest;
* with six methods every card's numbers, labels and method name are whole, and every picked chip shows;
* the Models page says where a metric file fetched by hand goes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import core
from tests.e2e.test_browser import ARTIFACTS, CHROMIUM_ARGS, _free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chromium() -> str:
    from tests.e2e.test_browser import _chromium

    return _chromium()


@contextmanager
def streamlit(env: dict[str, str], log: Path, port: int | None = None) -> Iterator[str]:
    """A `streamlit run` of the dashboard with ``env``; stopped (this process only) on exit."""
    port = port or _free_port()
    with log.open("a") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"), "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=ROOT, env=os.environ | env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail(f"the Streamlit server did not start: {log.read_text()[-2000:]}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


REGION = "Upscale only a region (fast on CPU)"


def _upload(page, path: Path) -> None:
    """Upload ``path`` and upscale all of it (a first large image starts with "only a region" ticked, on a CPU)."""
    page.get_by_role("radiogroup", name="Image").get_by_text("Upload").click()  # the source radio
    picker = page.locator('[data-testid="stFileUploader"]', has_text="Upload an image")  # not the other uploader
    picker.locator("input[type=file]").set_input_files(str(path))
    page.get_by_text(f"Source {core.read_image(path).shape[1]}x").wait_for(timeout=60_000)
    _region(page, False)


def _region(page, on: bool) -> None:
    box = page.get_by_role("checkbox", name=REGION)
    box.wait_for(state="attached", timeout=60_000)
    deadline = time.monotonic() + 30
    while box.is_checked() != on and time.monotonic() < deadline:
        page.get_by_text(REGION).click()
        page.wait_for_timeout(1000)
    assert box.is_checked() == on


def _until(page, done, seconds: float) -> None:
    """Wait until ``done()`` holds on two looks a second apart (a rerun can redraw the page between them)."""
    deadline, held = time.monotonic() + seconds, 0
    while held < 2:
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(1000)
        held = held + 1 if done() else 0


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def test_f5_during_a_job_finds_it_and_a_restart_gives_the_upload_back(chromium: str, weights_dir: Path,
                                                                       tmp_path: Path) -> None:
    """Before: F5 during a job lost the job, the upload and the settings, and offered an older result of another
    image instead."""
    from playwright.sync_api import sync_playwright

    photo = core.write_png(tmp_path / "my cat.png", core.resize(core.load_sample("chelsea"), (384, 512), "bicubic"))
    older = core.write_png(tmp_path / "older.png", core.load_sample("chelsea")[:96, :96])
    env = {"STUDIO_WEIGHTS_DIR": str(weights_dir), "STUDIO_RESULTS_DIR": str(tmp_path / "results")}
    port, log = _free_port(), tmp_path / "streamlit.log"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        with streamlit(env, log, port) as url:
            page.goto(url + "/")
            page.get_by_text("In use: RealESRGAN_x4plus").wait_for(timeout=180_000)
            _upload(page, older)  # an older result of another image, kept for a reload
            page.get_by_text("Input: 96x96 RGB 8-bit").wait_for(timeout=60_000)
            page.get_by_role("button", name="Upscale", exact=True).click()
            page.get_by_role("heading", name="Metrics").wait_for(timeout=120_000)

            _upload(page, photo)
            page.get_by_text("Input: 512x384 RGB 8-bit").wait_for(timeout=60_000)
            page.get_by_role("button", name="Upscale", exact=True).click()
            page.get_by_text(re.compile(r"^Upscaling: ")).first.wait_for(timeout=60_000)
            page.reload()  # F5 while it runs
            page.get_by_text(re.compile(r"The page was reloaded while the upscale of my cat\.png with "
                                        r"RealESRGAN_x4plus ran")).wait_for(timeout=60_000)
            assert page.get_by_text("Your last result").count() == 0  # the older image's result is not offered
            page.get_by_text(re.compile(r"^Upscaling: ")).first.wait_for(timeout=30_000)  # followed, not lost
            page.get_by_role("heading", name="Metrics").wait_for(timeout=300_000)
            page.get_by_text("Source 512x384").wait_for(timeout=10_000)  # the result with the input it belongs to
            assert page.get_by_text(re.compile(r"Using your upload my cat\.png")).count() == 1
            assert page.get_by_text(re.compile(r"RealESRGAN_x4plus · .* · 2048x1536 RGB 8-bit")).count() == 1
            _shot(page, "reload_reattached.png")

            # a second job, and the server restarts while it runs
            _region(page, True)
            square = page.get_by_text(re.compile(r"^Input: (\d+)x\1 RGB 8-bit")).first
            square.wait_for(timeout=60_000)
            region = square.inner_text()  # a square region (its size kept from the first image)
            page.get_by_role("button", name="Upscale", exact=True).click()
            page.get_by_text(re.compile(r"^Upscaling: ")).first.wait_for(timeout=60_000)
            address = page.url
        with streamlit(env, log, port) as url:
            assert address.startswith(url)
            page.goto(address)
            page.get_by_text(re.compile(r"the upscale of my cat\.png with RealESRGAN_x4plus \(started at [0-9:]+\) "
                                        r"stopped before it finished")).wait_for(timeout=60_000)
            page.get_by_text(region, exact=True).wait_for(timeout=60_000)  # the region too
            assert page.get_by_text(re.compile(r"Using your upload my cat\.png")).count() == 1
            page.get_by_role("button", name="Upscale", exact=True).wait_for(timeout=10_000)  # ready to run again
            _shot(page, "reload_after_restart.png")
            page.reload()  # said once: the stopped job is not announced at every reload
            page.get_by_text("Upscale & Compare").first.wait_for(timeout=60_000)
            page.wait_for_timeout(3000)
            assert page.get_by_text(re.compile("stopped before it finished")).count() == 0
        browser.close()


def _vgg16_backbone(torch_home: Path) -> None:
    """torchvision's VGG-16 file (its official name and format) with seeded random weights: LPIPS (VGG) and DISTS
    become ready (their heads ship with the reference packages), and take a second or two per image."""
    import torch
    import torchvision

    torch.manual_seed(0)
    features = torchvision.models.vgg16(weights=None).features.state_dict()
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save({f"features.{k}": v for k, v in features.items()}, folder / "vgg16-397923af.pth")


_WHOLE = """(sel) => [...document.querySelectorAll(sel)].filter(e => e.offsetParent !== null).map(e => {
    const cut = [e, ...e.querySelectorAll('*')].some(x => x.scrollWidth > x.clientWidth + 1);
    return [e.innerText.trim(), cut, e.getClientRects().length]; })"""


def test_learned_metrics_in_the_background_with_cancel_and_six_whole_cards(chromium: str, weights_dir: Path,
                                                                           tmp_path: Path) -> None:
    """Before: one spinner held the page until every learned metric of every method was done, with no progress
    and no cancel; with six methods the cards cut every number ("32.…") and the chips hid the picks."""
    from playwright.sync_api import sync_playwright

    pytest.importorskip("lpips")  # its package ships the LPIPS heads; DISTS's ships its own
    pytest.importorskip("DISTS_pytorch")
    _vgg16_backbone(tmp_path / "torch")
    photo = core.write_png(tmp_path / "photo.png", core.resize(core.load_sample("chelsea"), (384, 512), "bicubic"))
    env = {"STUDIO_WEIGHTS_DIR": str(weights_dir), "STUDIO_RESULTS_DIR": str(tmp_path / "results"),
           "TORCH_HOME": str(tmp_path / "torch")}
    picks = ["lanczos", "realesr-animevideov3", "RealESRGAN_x4plus_anime_6B"]
    with sync_playwright() as playwright, streamlit(env, tmp_path / "streamlit.log") as url:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url + "/")
        page.get_by_text("In use: RealESRGAN_x4plus").wait_for(timeout=180_000)
        _upload(page, photo)
        page.get_by_text("Input: 512x384 RGB 8-bit").wait_for(timeout=60_000)
        page.get_by_text("Downscale my image first and compare to it").click()
        page.get_by_text("Input: 128x96 RGB 8-bit").wait_for(timeout=60_000)
        picker = page.locator("[data-testid=stMultiSelect]").first
        for name in picks:
            picker.click()
            page.get_by_role("option", name=name, exact=True).click()
            page.wait_for_timeout(600)
        page.keyboard.press("Escape")
        chips = picker.evaluate("""(e) => [...e.querySelectorAll('.react-aria-ComboBox [data-tag] [title]')].map(
            t => [t.innerText.trim(), t.scrollWidth > t.clientWidth + 1 || t.offsetParent === null])""")
        assert [c[0] for c in chips] == ["bicubic", *picks] and not any(c[1] for c in chips), chips  # all whole
        page.get_by_role("button", name="Upscale", exact=True).click()

        # the cheap numbers come first, the learned ones say "computing"
        page.get_by_text(re.compile(r"computing (LPIPS \(VGG-16\)|DISTS)")).first.wait_for(timeout=180_000)
        page.get_by_text(re.compile(r"^Scoring: .*DISTS of ")).first.wait_for(timeout=120_000)
        numbers = page.locator('[class*="st-key-score_card_"] [data-testid=stMetricValue]').all_inner_texts()
        assert any(re.fullmatch(r"\d+\.\d\d", n) for n in numbers), numbers  # a PSNR is shown while DISTS runs
        _shot(page, "scores_computing.png")
        page.get_by_role("button", name="Cancel").click()
        page.get_by_text(re.compile(r"Not computed \(stopped before they were\): .*DISTS")).first.wait_for(
            timeout=60_000)
        assert page.get_by_text(re.compile(r"^Scoring: ")).count() == 0  # the job stopped
        assert page.get_by_text(re.compile("computing ")).count() == 0
        cards = page.locator('[class*="st-key-score_card_"]')
        assert cards.count() == 5  # five methods (the reference is a pane, not a card)
        lpips = page.locator('[class*="st-key-score_card_0"] [data-testid=stMetricValue]').all_inner_texts()
        assert len(lpips) == 5 and re.fullmatch(r"\d\.\d{4}", lpips[3]), lpips  # LPIPS of bicubic was kept
        page.get_by_role("button", name="Compute the missing scores").click()
        _until(page, lambda: page.get_by_text(re.compile("Not computed|computing |^Scoring: ")).count() == 0, 180)
        values = page.locator('[class*="st-key-score_card_"] [data-testid=stMetricValue]').all_inner_texts()
        assert len(values) == 25 and all(re.fullmatch(r"\d+\.\d+", v) for v in values), values
        for selector in ('[class*="st-key-score_card_"] [data-testid=stMetricValue]',
                         '[class*="st-key-score_card_"] [data-testid=stMetricLabel]'):
            cut = [text for text, clipped, _ in page.evaluate(_WHOLE, selector) if clipped]
            assert not cut, (selector, cut)  # every number and label whole
        names = page.evaluate(_WHOLE, '[class*="st-key-score_card_"] strong')
        assert {n[0] for n in names} == {"bicubic", "lanczos", "RealESRGAN_x4plus", *picks[1:]}, names
        assert all(lines == 1 and not clipped for _, clipped, lines in names), names  # on one line, whole
        page.get_by_role("heading", name="Metrics").scroll_into_view_if_needed()
        _shot(page, "scores_six_methods.png")

        page.get_by_role("link", name="Models & System").click()
        page.get_by_text("Fetched a metric file by hand? Where each one goes").click()
        where = page.locator("[data-testid=stExpander]", has_text="Fetched a metric file by hand")
        row = where.locator("tr", has_text="vgg16-397923af.pth").first
        row.wait_for(timeout=30_000)
        assert str(tmp_path / "torch" / "hub" / "checkpoints") in row.inner_text()
        assert "lpips-vgg" in row.inner_text() and "dists" in row.inner_text()
        heads = where.locator("tr", has_text="musiq_koniq_ckpt-e95806b9.pth").first.inner_text()
        assert str(weights_dir / "metrics") in heads
        browser.close()
