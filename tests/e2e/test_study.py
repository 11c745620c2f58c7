"""A served study, rated in real Chromium: two raters at once on the real `python -m api.serve`, votes stored once,
sides random, no method name reaching a browser, and a server killed mid-study that loses nothing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import core
from core.study import Study, create_study
from tests.e2e.test_browser import CHROMIUM_ARGS, ROOT, _chromium, _free_port

METHODS = ("quokkamethod", "narwhalmethod", "pangolinmethod", "axolotlmethod")  # names no image or id contains
IMAGES = ("capybaraimage", "okapiimage", "tapirimage")


@pytest.fixture(scope="module")
def chromium() -> str:
    return _chromium()


def _serve(results: Path, port: int, log: Path) -> subprocess.Popen:
    env = os.environ | {"STUDIO_RESULTS_DIR": str(results), "STUDIO_API_MODEL": "realesr-animevideov3"}
    proc = subprocess.Popen([sys.executable, "-m", "api.serve", "--api-only", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=log.open("a"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    pytest.fail(f"the API did not start: {log.read_text()[-2000:]}")


def _study(results: Path) -> Study:
    samples = core.list_samples()
    outputs, references = {}, {}
    for k, image in enumerate(IMAGES):
        hr = core.load_sample(samples[k])[:96, :96]
        lr = core.imresize(hr, 0.25)
        references[image] = hr
        outputs[image] = {m: core.evaluation.run_method(b, lr, (96, 96))
                          for m, b in zip(METHODS, ("bicubic", "lanczos", "bicubic-opencv", "bicubic"))}
        outputs[image][METHODS[3]] = hr  # one method is the HR itself: raters should prefer it
    return create_study(results / "studies" / "s1", "e2e", outputs, references=references)


@pytest.mark.slow
def test_two_raters_in_two_browsers_vote_blind_and_a_killed_server_loses_nothing(chromium: str,
                                                                                  tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    study = _study(tmp_path)
    rater_key, owner_key = study.meta("rater_key"), study.meta("owner_key")
    port = _free_port()
    base = f"http://127.0.0.1:{port}/v1/studies/s1"
    log = tmp_path / "api.log"
    server = _serve(tmp_path, port, log)
    seen: list[str] = []  # every URL, header and body a browser received
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            # bypass_csp: the page's policy forbids eval, which Playwright's waits use
            contexts = [browser.new_context(viewport={"width": 1000, "height": 700}, bypass_csp=True)
                        for _ in range(2)]
            pages = [context.new_page() for context in contexts]

            def keep(response) -> None:
                seen.append(response.url + json.dumps(dict(response.headers)))
                with contextlib.suppress(Exception):  # a redirect or an aborted load has no body
                    seen.append(response.body().decode("latin-1"))

            def shown(page) -> None:  # both images loaded, answers taken
                page.wait_for_function("document.body.dataset.ready === '1' && "
                                       "document.getElementById('left').naturalWidth > 0 && "
                                       "document.getElementById('right').naturalWidth > 0", timeout=30_000)

            for page in pages:
                page.on("response", keep)
                page.goto(f"{base}/rate?key={rater_key}")
            for step in range(4):  # interleaved: both raters at the same time
                for k, page in enumerate(pages):
                    shown(page)
                    page.keyboard.press(["ArrowLeft", "ArrowRight", "ArrowDown"][(step + k) % 3])
            for page in pages:
                shown(page)
                page.wait_for_function("document.getElementById('progress').textContent.startsWith('5 of')")
            # the server dies mid-study (SIGKILL: no shutdown); a new one serves the same folder
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
            server = _serve(tmp_path, port, log)
            for page in pages:
                page.reload()
                page.wait_for_function("document.getElementById('progress').textContent.startsWith('5 of')")
            while not pages[0].locator("#message").is_visible():  # the first rater finishes, by clicking
                shown(pages[0])
                pages[0].get_by_role("button", name="← Left is better").click()
                pages[0].wait_for_function("document.body.dataset.ready === '1' || "
                                           "!document.getElementById('message').hidden")
            assert "answered every pair" in pages[0].locator("#message").inner_text()
            seen += [page.content() for page in pages]
            browser.close()
        for name in (*METHODS, *IMAGES, owner_key):
            assert not any(name in text for text in seen), f"{name} reached a browser"
        again = Study.open(tmp_path / "studies" / "s1")
        total = int(again.meta("trials_per_rater"))
        assert sorted(again.raters().values()) == [4, total]  # every vote once, none lost to the kill
        ids = again.outputs()
        assert {method for _, method, role in ids.values() if role == "output"} == set(METHODS)
        pair_votes = again.votes(careless=True)
        first_left = np.mean([min(v.left, v.right) == v.left for v in pair_votes])
        assert len(pair_votes) >= 15 and 0.1 < first_left < 0.9, first_left  # sides drawn at random
        with pytest.raises(urllib.error.HTTPError) as refused:  # the rater's key reads no results
            urllib.request.urlopen(f"{base}/results?key={rater_key}", timeout=10)
        assert refused.value.code == 403
        with urllib.request.urlopen(f"{base}/results?key={owner_key}&resamples=100", timeout=30) as response:
            payload = json.load(response)
        assert payload["votes"] == len(again.votes()) and payload["raters"]["count"] == 2
        assert {r["method"] for r in payload["ranking"]} == set(METHODS)
    finally:
        server.kill()
        server.wait(timeout=30)
