"""The exported comparison page in real Chromium, opened from disk with every network request blocked:
it must render every pane at full resolution, keep the grid's zoom in sync and across a resize, switch
panes with the number keys, and draw |A − B| as the core computes it."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

import core
from core import compare, metrics
from tests.e2e.test_browser import ARTIFACTS, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def chromium() -> str:
    from tests.e2e.test_browser import _chromium

    return _chromium()


def _comparison() -> compare.Comparison:
    hr = core.load_sample("chelsea")[60:188, 160:320]  # 160x128: not square, so a swapped axis shows
    lr = core.imresize(hr, scale=0.25)
    invented = core.resize(lr, hr.shape[:2], "lanczos").copy()
    invented[64:96, 16:64] = np.random.default_rng(1).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    outputs = {"bicubic": core.resize(lr, hr.shape[:2], "matlab"), "lanczos": core.resize(lr, hr.shape[:2], "lanczos"),
               "invented": invented, "hr": hr}
    return compare.score_outputs(lr, outputs, hr, ("psnr", "ssim"))


def _pixels(frame, selector: str) -> np.ndarray:
    url = frame.evaluate("""(sel) => { const img = document.querySelector(sel);
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        c.getContext('2d').drawImage(img, 0, 0); return c.toDataURL('image/png'); }""", selector)
    return core.decode_image(base64.b64decode(url.split(",", 1)[1]))[:, :, :3]


def test_the_exported_page_works_offline_in_a_real_browser(chromium: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    result = _comparison()
    page_file = compare.write_comparison(tmp_path / "compare.html", result, title="offline check")
    blocked: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=True)
        page = context.new_page()

        def network(route) -> None:
            if route.request.url == page_file.as_uri():
                route.continue_()
            else:
                blocked.append(route.request.url[:80])
                route.abort()

        page.route("**/*", network)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(page_file.as_uri())
        page.wait_for_function("() => [...document.querySelectorAll('.cell img:not(.tile)')].every(i => i.complete && "
                               "i.naturalWidth > 0)", timeout=30_000)
        assert not errors, errors
        sizes = page.evaluate("() => [...document.querySelectorAll('.cell img:not(.tile)')].map(i => [i.naturalWidth, "
                              "i.naturalHeight])")
        assert sizes == [[160, 128]] * 4  # every pane at full resolution
        assert page.evaluate("() => window.studioViewer.state().mode") == "grid"
        assert [t.split("\n")[0] for t in page.locator(".cell .label").all_inner_texts()] == [
            "1. bicubic", "2. lanczos", "3. invented", "4. HR reference"]

        # zoom on the second pane: every pane follows, with the same transform
        box = page.locator(".cell").nth(1).bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.4)
        for _ in range(3):
            page.mouse.wheel(0, -120)
            page.wait_for_timeout(50)
        transforms = page.evaluate("() => [...document.querySelectorAll('.cell img:not(.tile)')]"
                                   ".map(i => i.style.transform)")
        assert len(set(transforms)) == 1, transforms
        zoomed = page.evaluate("() => window.studioViewer.state()")
        assert not zoomed["fitted"] and page.locator("#zoomlabel").inner_text() != "100%"
        # a resize (a sidebar collapsing) keeps the zoom and the centre
        page.set_viewport_size({"width": 1000, "height": 1000})
        page.wait_for_timeout(300)
        after = page.evaluate("() => window.studioViewer.state()")
        assert (after["scale"], after["cx"], after["cy"]) == (zoomed["scale"], zoomed["cx"], zoomed["cy"])

        # key 3: the third pane becomes the compared one, in the slider
        page.keyboard.press("3")
        state = page.evaluate("() => window.studioViewer.state()")
        assert (state["mode"], state["a"], state["b"]) == ("slider", 0, 2)
        assert page.locator("#label-b").inner_text() == "invented"
        page.keyboard.press("0")  # fit again

        # d: |A − B| drawn with the core's ramp and scale
        page.keyboard.press("d")
        page.wait_for_function("() => document.getElementById('img-a').dataset.diff === '0,2' && "
                               "document.getElementById('img-a').complete", timeout=30_000)
        shown = _pixels(page, "#img-a")
        heat = metrics.difference_map(result.outputs["bicubic"], result.outputs["invented"])
        expected = heat.colours()
        assert shown.shape == expected.shape
        assert page.locator("#legend-high").inner_text() == f"{heat.high:g}"
        same = np.all(shown == expected, axis=2).mean()
        close = (np.abs(shown.astype(int) - expected).max(axis=2) <= 12).mean()  # one ramp step off at a rounding
        assert same > 0.98 and close == 1.0, (same, close)

        # the LR-consistency maps, as the core computed them, in every pane of the grid
        page.keyboard.press("g")
        page.select_option("#layer", "lr")
        page.wait_for_timeout(300)
        lr_map = _pixels(page, ".cell:nth-child(3) img:not(.tile)")
        heat = result.maps["invented"]["lr"]
        top = max(m["lr"].high for m in result.maps.values())  # one colour scale for every pane's map
        assert np.array_equal(lr_map, metrics.heat_colours(heat.values, heat.low, top))
        assert page.locator("#legend-label").inner_text() == heat.label and page.locator("#legend-high").inner_text(
            ) == f"{top:g}"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "comparison_page.png"), full_page=True)
        browser.close()
    assert not blocked, blocked


def test_on_a_touch_screen_one_finger_scrolls_the_page_and_two_fingers_zoom(chromium: str, tmp_path: Path) -> None:
    """The viewer trapped page scrolling on a phone: one finger now pans only a zoomed view, and a pinch zooms."""
    from playwright.sync_api import sync_playwright

    page_file = compare.write_comparison(tmp_path / "compare.html", _comparison(), title="touch")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        page = context.new_page()
        page.goto(page_file.as_uri())
        page.wait_for_function("() => window.studioViewer && window.studioViewer.state().scale > 0")
        touch = context.new_cdp_session(page)
        box = page.locator("#view").bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

        def fingers(kind: str, points: list[tuple[float, float]]) -> None:
            touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
                {"x": px, "y": py, "id": i} for i, (px, py) in enumerate(points)]})

        before = page.evaluate("() => window.studioViewer.state()")
        fingers("touchStart", [(x, y)])
        for step in range(1, 6):
            fingers("touchMove", [(x - 20 * step, y)])
        fingers("touchEnd", [])
        swiped = page.evaluate("() => window.studioViewer.state()")
        assert swiped["fitted"] and swiped["cx"] == before["cx"]  # not panned: the page keeps the finger
        fingers("touchStart", [(x - 20, y), (x + 20, y)])
        for step in range(1, 8):
            fingers("touchMove", [(x - 20 - 12 * step, y), (x + 20 + 12 * step, y)])
        fingers("touchEnd", [])
        pinched = page.evaluate("() => window.studioViewer.state()")
        assert not pinched["fitted"] and pinched["scale"] > 2 * before["scale"], (before, pinched)
        browser.close()
