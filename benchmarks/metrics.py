"""Metric speed, side by side in one run: seconds per image and per megapixel of each metric on one
2040x1356 pair (DIV2K's size), on the CPU (NumPy / OpenCV, the path used there), on the torch path
(CPU, and CUDA where there is a GPU), and, given ``--basicsr SRC`` (an unpacked ``basicsr`` 1.4.2
source tree; the package does not import with current torchvision, so only its metric modules are
loaded), BasicSR's own functions, with the largest difference of values to ours.

Run: ``.venv/bin/python benchmarks/metrics.py [--basicsr /tmp/basicsr-1.4.2] [--repeats 5]``.
Learned metrics (LPIPS, DISTS, CLIP-IQA, MUSIQ) are timed where their weights are here (STUDIO_WEIGHTS_DIR).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import core

try:
    from core.metrics import _torch
except ImportError:  # a checkout from before the torch path (to time "before" with this script)
    _torch = None

SIZE = (1356, 2040)


def _times(function: Callable[[], float], repeats: int) -> tuple[list[float], float]:
    value = function()  # warm-up (and the value)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return samples, value


def _basicsr(src: Path) -> dict[str, Callable]:
    """BasicSR's calculate_psnr / ssim / niqe, loaded from its source without its package ``__init__``."""
    package = types.ModuleType("basicsr")
    package.__path__ = [str(src / "basicsr")]
    sys.modules["basicsr"] = package
    import scipy.ndimage

    sys.modules.setdefault("scipy.ndimage.filters", scipy.ndimage)  # the old name BasicSR imports
    from basicsr.metrics.niqe import calculate_niqe
    from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim

    return {"psnr": calculate_psnr, "ssim": calculate_ssim, "niqe": calculate_niqe}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--basicsr", type=Path, default=None, help="unpacked basicsr 1.4.2 source tree")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    hr = core.resize(core.load_sample("astronaut"), SIZE, "lanczos")
    out = np.clip(np.rint(core.imresize(core.imresize(hr.astype(np.float64), 0.25), 4)), 0, 255).astype(np.uint8)
    megapixels = SIZE[0] * SIZE[1] / 1e6
    crop = {"crop_border": 4}
    rows: list[tuple[str, str, Callable[[], float]]] = [
        ("psnr", "numpy (cpu)", lambda: core.compute_metric("psnr", out, hr, **crop)),
        ("ssim", "numpy (cpu)", lambda: core.compute_metric("ssim", out, hr, **crop)),
        ("niqe", "numpy (cpu)", lambda: core.compute_metric("niqe", out)),
    ]
    if _torch is not None:
        rows += [("psnr", "torch cpu", lambda: _torch.psnr_torch(out, hr, **crop, device="cpu")),
                 ("ssim", "torch cpu", lambda: _torch.ssim_torch(out, hr, **crop, device="cpu")),
                 ("niqe", "torch cpu", lambda: _torch.niqe_torch(out, device="cpu"))]
    if torch.cuda.is_available():
        def synced(function: Callable[[], float]) -> Callable[[], float]:
            def run() -> float:
                value = function()
                torch.cuda.synchronize()
                return value
            return run

        rows += [(name, "torch cuda", synced(lambda name=name: core.compute_metric(
            name, out, None if name == "niqe" else hr, crop_border=0 if name == "niqe" else 4, device="cuda")))
            for name in ("psnr", "ssim", "niqe")]
    for name in [m for m in core.METRICS if core.METRICS[m].weights and core.METRICS[m].ready()]:
        for device in ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]:
            rows.append((name, f"torch {device}", lambda name=name, device=device: core.compute_metric(
                name, out, hr, device=device)))
    if args.basicsr is not None:
        basicsr = _basicsr(args.basicsr)
        bgr_out, bgr_hr = out[:, :, ::-1].copy(), hr[:, :, ::-1].copy()  # BasicSR reads with OpenCV
        rows += [
            ("psnr", "BasicSR", lambda: basicsr["psnr"](bgr_out, bgr_hr, 4, test_y_channel=True)),
            ("ssim", "BasicSR", lambda: basicsr["ssim"](bgr_out, bgr_hr, 4, test_y_channel=True)),
            ("niqe", "BasicSR", lambda: basicsr["niqe"](bgr_out, 0, input_order="HWC", convert_to="y")),
        ]
    print(f"{SIZE[1]}x{SIZE[0]} ({megapixels:.2f} MP), {args.repeats} runs after a warm-up, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'metric':<11}{'path':<13}{'median s':>9}{'min':>8}{'max':>8}{'s/MP':>8}  value")
    for name, path, function in sorted(rows, key=lambda row: list(core.METRICS).index(row[0])):
        samples, value = _times(function, args.repeats)
        median = statistics.median(samples)
        print(f"{name:<11}{path:<13}{median:>9.3f}{min(samples):>8.3f}{max(samples):>8.3f}"
              f"{median / megapixels:>8.3f}  {value:.6f}")


if __name__ == "__main__":
    main()
