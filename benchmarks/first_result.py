"""From the README's dashboard command to the first result, as a new user meets it, in real Chromium.

Run: ``.venv/bin/python benchmarks/first_result.py [--rounds N] [--model NAME]``. Each round starts
``streamlit run dashboard/app.py`` on a new, empty weights folder (the model is converted from the ncnn
package, as on a fresh clone), opens the page, clicks Upscale as soon as the model is in use (the
default sample and its 128 px region, or with ``--whole`` the whole 448x300 sample), and waits for both
images of the comparison. Printed per round, in
seconds from the command: the server's health, the page's first render (the Upscale button), the
model in use, the result (the success line) and the comparison; then the upscale's own seconds as
the page reports them. Medians and min-max close the table.

Needs Chromium (``apt-get install chromium``) and Playwright (in requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.test_browser import CHROMIUM_ARGS, _chromium, _slider_frame  # noqa: E402

PHASES = ("health", "render", "in use", "result", "comparison", "upscale")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_round(model: str, whole: bool = False) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    weights, results = tempfile.mkdtemp(prefix="first-weights-"), tempfile.mkdtemp(prefix="first-results-")
    port = _port()
    env = os.environ | {"STUDIO_WEIGHTS_DIR": weights, "STUDIO_RESULTS_DIR": results}
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times: dict[str, float] = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            times["health"] = time.monotonic() - start
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_role("button", name="Upscale", exact=True).wait_for(timeout=300_000)
            times["render"] = time.monotonic() - start
            page.get_by_text(f"In use: {model}").wait_for(timeout=600_000)
            times["in use"] = time.monotonic() - start
            if whole:  # the whole 448x300 sample instead of the default 128 px region (the clock goes on)
                page.get_by_text("Upscale only a region").click()
                page.get_by_text("Input: 448x300").wait_for(timeout=60_000)
            page.get_by_role("button", name="Upscale", exact=True).click()
            success = page.locator("[data-testid=stAlertContentSuccess]").first
            success.wait_for(timeout=600_000)
            times["result"] = time.monotonic() - start
            _slider_frame(page, timeout=300)
            times["comparison"] = time.monotonic() - start
            found = re.search(r"(\d+\.\d+) s \(tile", success.inner_text())
            times["upscale"] = float(found[1]) if found else float("nan")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(weights, ignore_errors=True)
        shutil.rmtree(results, ignore_errors=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="RealESRGAN_x4plus", help="the default model's name, as the sidebar says")
    parser.add_argument("--whole", action="store_true", help="upscale the whole sample, not the default region")
    args = parser.parse_args()
    rounds = []
    print("round  " + "  ".join(f"{p:>10}" for p in PHASES))
    for number in range(1, args.rounds + 1):
        times = one_round(args.model, args.whole)
        rounds.append(times)
        print(f"{number:>5}  " + "  ".join(f"{times[p]:>10.1f}" for p in PHASES), flush=True)
    print("median " + "  ".join(f"{statistics.median(r[p] for r in rounds):>10.1f}" for p in PHASES))
    print("range  " + "  ".join(f"{min(r[p] for r in rounds):>4.1f}-{max(r[p] for r in rounds):<5.1f}" for p in PHASES))


if __name__ == "__main__":
    main()
