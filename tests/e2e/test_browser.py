"""End to end: the real `streamlit run` server, driven by headless Chromium through Playwright.

Debian's Chromium comes from the test command's set-up step (``tools/chromium.sh``; Playwright's
own browser download cannot work offline, so it is pointed at the system binary); without it these
tests skip, and say the command. Artifacts (a screenshot and timings) go to ``results/e2e/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import core

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "results" / "e2e"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    """Debian's Chromium; installed by the test command's set-up step (``tools/chromium.sh``), never by a test."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    how = "Chromium is not installed: bash tools/chromium.sh (as root), or sudo apt-get install -y chromium"
    if os.environ.get("CI"):
        pytest.fail(how)
    pytest.skip(how)


@pytest.fixture(scope="module")
def chromium() -> str:
    return _chromium()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    env = os.environ | {"STUDIO_WEIGHTS_DIR": str(weights_dir),
                        "STUDIO_RESULTS_DIR": str(tmp_path_factory.mktemp("results"))}
    log = (tmp_path_factory.mktemp("server") / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the Streamlit server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _slider_frame(page, timeout: float = 120.0):
    """The comparison component's frame, once both images have loaded."""
    deadline = time.monotonic() + timeout
    script = ("() => { const a = document.getElementById('img-a'), b = document.getElementById('img-b');"
              " return !!(a && b && a.complete && b.complete && a.naturalWidth > 0 && b.naturalWidth > 0); }")
    while time.monotonic() < deadline:
        for handle in page.locator("iframe").element_handles():
            frame = handle.content_frame()
            try:
                if frame is not None and frame.evaluate(script):
                    return frame
            except Exception:  # the frame is being replaced by a rerun: look again
                pass
        time.sleep(0.1)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "slider_timeout.png"), full_page=True)
    raise AssertionError(f"the comparison slider never showed both images (see {ARTIFACTS}/slider_timeout.png)")


def test_upload_upscale_compare_in_a_real_browser(chromium: str, server: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    sample = core.write_png(tmp_path / "cat.png", core.load_sample("chelsea")[100:228, 200:328])  # 128x128
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(server + "/")
        page.get_by_text("Upscale & Compare").first.wait_for(timeout=60_000)
        # Upload once the model is ready: the page reruns as a whole when the background load ends,
        # and an upload sent at that moment was lost once in a full-suite run (an open race, see the note).
        page.get_by_text("In use: RealESRGAN_x4plus").wait_for(timeout=120_000)
        page.get_by_role("radiogroup", name="Image").get_by_text("Upload").click()  # the source radio
        picker = page.locator('[data-testid="stFileUploader"]', has_text="Upload an image")  # not the other uploader
        picker.locator("input[type=file]").set_input_files(str(sample))
        page.get_by_text("Input: 128x128 RGB 8-bit").wait_for(timeout=60_000)
        start = time.monotonic()
        page.get_by_role("button", name="Upscale", exact=True).click()
        frame = _slider_frame(page)
        seconds = time.monotonic() - start

        sizes = frame.evaluate("() => ['img-a', 'img-b'].map(id => { const i = document.getElementById(id);"
                               " return [i.naturalWidth, i.naturalHeight]; })")
        assert sizes == [[512, 512], [512, 512]]
        labels = frame.evaluate("() => [document.getElementById('label-a').textContent,"
                                " document.getElementById('label-b').textContent]")
        assert labels == ["bicubic", "RealESRGAN_x4plus"]

        clip_before = frame.evaluate("() => document.getElementById('pane-b').style.clipPath")
        frame.locator("#divider").scroll_into_view_if_needed()  # the mouse acts only inside the viewport
        box = frame.locator("#divider").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] - 200, box["y"] + box["height"] / 2, steps=8)
        page.mouse.up()
        clip_after = frame.evaluate("() => document.getElementById('pane-b').style.clipPath")
        assert clip_before != clip_after, "dragging the divider did not move the split"
        split = frame.evaluate("() => +document.getElementById('divider').getAttribute('aria-valuenow')")
        assert split < 45
        frame.locator("#divider").focus()
        page.keyboard.press("ArrowRight")
        assert frame.evaluate("() => +document.getElementById('divider').getAttribute('aria-valuenow')") > split
        frame.locator("#zoom-in").click()
        frame.locator("#one").click()
        assert frame.evaluate("() => document.getElementById('zoomlabel').textContent") == "100%"

        page.locator("[data-testid=stMetricValue]").first.wait_for(timeout=30_000)
        values = page.locator("[data-testid=stMetricValue]").all_inner_texts()
        numbers = [float(v.split()[-1]) for v in values]
        assert len(numbers) == 2 and all(0 < n < 100 for n in numbers), values
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "upscale_compare.png"), full_page=True)

        # another page and back: the upload and its result are still there (not the default sample)
        page.get_by_role("link", name="Benchmark").click()
        page.get_by_role("heading", name="Benchmark").first.wait_for(timeout=60_000)
        page.get_by_role("link", name="Upscale & Compare").click()
        page.get_by_text("Input: 128x128 RGB 8-bit").wait_for(timeout=60_000)
        # the page says it uses the kept upload; where the switch came before the Benchmark run ended, Streamlit
        # never emptied the uploader, which then still lists cat.png: the upload is in use either way
        page.get_by_text(re.compile(r"Using your upload cat\.png|^cat\.png$")).first.wait_for(timeout=10_000)
        frame = _slider_frame(page, timeout=60)
        assert frame.evaluate("() => document.getElementById('img-b').naturalWidth") == 512

        # F5: a new session; the address's token offers the upload and the result back
        assert "?s=" in page.url, page.url
        page.reload()
        page.get_by_text(re.compile(r"Your last result, from .*cat\.png")).wait_for(timeout=60_000)
        page.get_by_role("button", name="Restore").click()
        page.get_by_text("Input: 128x128 RGB 8-bit").wait_for(timeout=60_000)
        frame = _slider_frame(page, timeout=60)
        assert frame.evaluate("() => document.getElementById('img-b').naturalWidth") == 512
        assert page.get_by_role("button", name="Upscale", exact=True).count() == 0  # shown, not run again
        (ARTIFACTS / "timings.json").write_text(json.dumps({"click_to_slider_seconds_128px_x4plus": seconds}))
        browser.close()


def test_real_pixels_past_100_percent_of_a_preview(chromium: str, server: str, tmp_path: Path) -> None:
    """A result over 1600 px is shown as a preview; zoomed past 100 %, the part in view loads at full
    resolution (it used to enlarge the preview, with real pixels only in a second viewer moved by sliders)."""
    import base64

    import numpy as np
    from playwright.sync_api import sync_playwright

    source = core.load_sample("chelsea")[100:200, :412]  # x4: 1648x400, over the 1600 px preview
    core.write_png(tmp_path / "wide.png", source)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(server + "/")
        page.get_by_text(re.compile("In use: ")).first.wait_for(timeout=180_000)
        page.get_by_label("Model", exact=True).first.click()
        page.get_by_role("option", name="realesr-animevideov3", exact=True).click()
        page.get_by_text("In use: realesr-animevideov3").wait_for(timeout=180_000)
        page.get_by_role("radiogroup", name="Image").get_by_text("Upload").click()  # the source radio
        picker = page.locator('[data-testid="stFileUploader"]', has_text="Upload an image")  # not the other uploader
        picker.locator("input[type=file]").set_input_files(str(tmp_path / "wide.png"))
        page.get_by_text("Upscale only a region").wait_for(timeout=60_000)
        page.get_by_text("Upscale only a region").click()  # on by default on the CPU: the whole image here
        page.get_by_text("Input: 412x100").wait_for(timeout=60_000)
        page.get_by_role("button", name="Upscale", exact=True).click()
        frame = _slider_frame(page, timeout=180)
        # the preview; 1648 would be the full image, and 103 the output scale reset to 0.25 (see pages/upscale.py)
        assert frame.evaluate("() => document.getElementById('img-a').naturalWidth") == 1600
        assert not frame.evaluate("() => document.getElementById('tile-a').classList.contains('on')")
        frame.locator("#one").click()  # 1:1 of the full image: past 100 % of the preview
        frame.wait_for_function("() => { const t = document.getElementById('tile-a'),"
                                " u = document.getElementById('tile-b'); return t.classList.contains('on') &&"
                                " u.classList.contains('on') && t.complete && t.naturalWidth > 0; }", timeout=60_000)
        x0, y0, x1, y1 = frame.evaluate("() => window.studioViewer.tiles().rect")
        state = frame.evaluate("() => window.studioViewer.state()")
        assert x0 <= state["cx"] * state["one"] <= x1 and y0 <= state["cy"] * state["one"] <= y1  # the part in view
        url = frame.evaluate("""() => { const img = document.getElementById('tile-a');
            const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
            c.getContext('2d').drawImage(img, 0, 0); return c.toDataURL('image/png'); }""")
        shown = core.decode_image(base64.b64decode(url.split(",", 1)[1]))[:, :, :3]
        expected = core.resize(source, (400, 1648), "matlab")[y0:y1, x0:x1]  # the bicubic pane at full resolution
        assert shown.shape == expected.shape and np.array_equal(shown, expected)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "real_pixels.png"), full_page=True)
        browser.close()


def test_docs_and_dashboard_make_no_request_outside_the_server(chromium: str, weights_dir: Path,
                                                               tmp_path: Path) -> None:
    """/docs, /redoc and the dashboard (one `api.serve` process) render offline: every request stays on 127.0.0.1."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    env = os.environ | {"STUDIO_WEIGHTS_DIR": str(weights_dir), "STUDIO_API_MODEL": "realesr-animevideov3",
                        "STUDIO_API_DEVICE": "cpu", "STUDIO_RESULTS_DIR": str(tmp_path / "results")}
    with (tmp_path / "server.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "api.serve", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    outside: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail((tmp_path / "server.log").read_text()[-2000:])
                time.sleep(0.5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            local = (url, url.replace("http", "ws"), "data:", "blob:")

            def network(route) -> None:  # every request that reaches the network layer (after CSP)
                if route.request.url.startswith(local):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", network)
            page.goto(f"{url}/docs")
            page.locator(".swagger-ui .info .title").get_by_text("Real-ESRGAN studio API").wait_for(timeout=30_000)
            page.locator(".opblock-summary-path").first.wait_for(timeout=30_000)  # the operations rendered
            assert page.locator(".opblock-summary-path").count() >= 6
            page.goto(f"{url}/redoc")
            page.locator("h1").get_by_text("Real-ESRGAN studio API").wait_for(timeout=30_000)
            page.locator("h2").get_by_text("Upscale an uploaded image, get a PNG back").wait_for(timeout=30_000)
            page.goto(f"{url}/")
            page.get_by_text("Upscale & Compare").first.wait_for(timeout=60_000)
            page.wait_for_timeout(2000)  # late requests (fonts, telemetry) would come now
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not outside, f"requests left the server: {sorted(set(outside))[:10]}"
    log = (tmp_path / "server.log").read_text()
    docs = [line for line in log.splitlines() if '"GET /docs HTTP/1.1"' in line]
    assert len(docs) == 1, f"each request is logged once, /docs was logged {len(docs)} times: {docs}"
