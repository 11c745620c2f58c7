"""Tiling overhead at default settings on this CPU: tiled (default tile) vs untiled, same image.

Run: ``.venv/bin/python benchmarks/tiling_overhead.py [SIZE]`` (default 448, above the CPU
tile size of 384, so the default run is tiled 2x2). Prints times, the ratio and the seam PSNR.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import core


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 448
    image = np.tile(core.load_sample("astronaut"), (2, 2, 1))[:size, :size].astype(np.uint16) * 257
    upscaler = core.Upscaler.load("RealESRGAN_x4plus", device="cpu")
    upscaler.upscale(image[:32, :32])
    default = core.UpscaleSettings()
    tiles = upscaler.count_tiles(size, size, default)
    start = time.perf_counter()
    tiled = upscaler.upscale(image, default).image
    t_tiled = time.perf_counter() - start
    start = time.perf_counter()
    whole = upscaler.upscale(image, core.UpscaleSettings(tile=0)).image
    t_whole = time.perf_counter() - start
    mse = np.mean((tiled / 65535.0 - whole / 65535.0) ** 2)
    print(f"{upscaler.describe()}")
    print(f"{size}x{size}: default ({tiles} tiles of <= {core.default_tile('cpu')} px) {t_tiled:.1f} s, "
          f"untiled {t_whole:.1f} s, ratio {t_tiled / t_whole:.2f}, seam PSNR {10 * np.log10(1 / mse):.1f} dB")


if __name__ == "__main__":
    main()
