"""A study of 3 images and 4 methods run in the browser: the real `python -m api.serve`, raters in headless
Chromium answering on the rater page (by key presses), and the results the owner's link returns.

The raters are simulated: each answers a pair from known Bradley-Terry scores of the methods (the script knows
which method each blind image is, through the study folder, as the owner does; the page does not). Checks are
answered as a careful rater would. Printed: the votes, the ranking with its 95 % intervals, and the metrics'
2AFC agreement table.

Run: ``.venv/bin/python benchmarks/study_browser.py [--raters 3] [--methods bicubic,lanczos,...]``
(Debian's Chromium: ``bash tools/chromium.sh``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

import core
from core.study import Study, make_study, study_results, study_table

ROOT = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="bicubic,lanczos,realesr-animevideov3,RealESRGAN_x4plus")
    parser.add_argument("--truth", default="0,0.3,1.0,1.5", help="the raters' Bradley-Terry scores, in that order")
    parser.add_argument("--raters", type=int, default=3)
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    methods = args.methods.split(",")
    truth = dict(zip(methods, map(float, args.truth.split(","))))
    results = Path(tempfile.mkdtemp(prefix="study-browser-"))
    dataset = core.open_dataset("samples", 4)
    dataset = type(dataset)(dataset.name, 4, dataset.items[: args.images], dataset.lr_source)
    start = time.perf_counter()
    study = make_study(results / "studies" / "s", dataset, methods, core.Upscaler.load,
                       metrics=["psnr", "ssim", "niqe"])
    print(f"made the study: {len(study.images)} images x {len(methods)} methods in "
          f"{time.perf_counter() - start:.0f} s; {study.meta('trials_per_rater')} trials per rater")
    port = _port()
    env = os.environ | {"STUDIO_RESULTS_DIR": str(results), "STUDIO_API_MODEL": "realesr-animevideov3"}
    server = subprocess.Popen([sys.executable, "-m", "api.serve", "--api-only", "--port", str(port)], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        ids = study.outputs()
        rng = np.random.default_rng(args.seed)
        from playwright.sync_api import sync_playwright

        base = f"http://127.0.0.1:{port}/v1/studies/s"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium") or "chromium",
                                                 args=["--no-sandbox", "--disable-gpu"])
            for _ in range(args.raters):
                page = browser.new_context(bypass_csp=True).new_page()
                page.goto(f"{base}/rate?key={study.meta('rater_key')}")
                while True:
                    page.wait_for_function("document.body.dataset.ready === '1' || "
                                           "!document.getElementById('message').hidden")
                    if page.locator("#message").is_visible():
                        break
                    left = page.get_attribute("#left", "src").rsplit("/", 1)[1]
                    right = page.get_attribute("#right", "src").rsplit("/", 1)[1]
                    (_, a, role_a), (_, b, role_b) = ids[left], ids[right]
                    if "copy" in (role_a, role_b):
                        key = "ArrowDown"
                    elif role_a in ("hr", "degraded"):
                        key = "ArrowLeft" if role_a == "hr" else "ArrowRight"
                    else:
                        p = 1 / (1 + math.exp(-(truth[a] - truth[b])))
                        key = "ArrowLeft" if rng.random() < p else "ArrowRight"
                    page.keyboard.press(key)
            browser.close()
        with urllib.request.urlopen(f"{base}/results?key={study.meta('owner_key')}", timeout=60) as response:
            payload = json.load(response)
        print(f"{payload['votes']} votes from {payload['raters']['count']} raters in the browser")
        print(study_table(study_results(Study.open(results / "studies" / "s"))))
        print("true scores (centred):", {m: round(v - np.mean(list(truth.values())), 2) for m, v in truth.items()})
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(results, ignore_errors=True)


if __name__ == "__main__":
    main()
