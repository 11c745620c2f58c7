"""Metric speed on this machine: NIQE, SSIM and PSNR of a 512x512 image (median of repeats).

Run: ``.venv/bin/python benchmarks/metrics.py``.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

import core


def _time(function, repeats: int = 7) -> float:
    function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    hr = core.load_sample("astronaut")
    bic = np.clip(np.rint(core.imresize(core.imresize(hr.astype(np.float64), 0.25), 4)), 0, 255).astype(np.uint8)
    print("metric  512x512 median ms")
    print(f"niqe    {_time(lambda: core.metrics.niqe(hr)) * 1000:8.1f}")
    print(f"ssim_y  {_time(lambda: core.metrics.ssim(bic, hr, crop_border=4)) * 1000:8.1f}")
    print(f"psnr_y  {_time(lambda: core.metrics.psnr(bic, hr, crop_border=4)) * 1000:8.1f}")


if __name__ == "__main__":
    main()
