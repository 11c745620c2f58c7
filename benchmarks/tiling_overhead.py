"""Tiling overhead at default settings on this CPU: tiled (default tile) vs untiled, same image.

Run: ``.venv/bin/python benchmarks/tiling_overhead.py [SIZE] [ROUNDS] [PAD]`` (default 448, above the
CPU tile size of 384, so the default run is tiled 2x2; 2 rounds). Tiled and untiled runs
alternate; the best of each is compared. Prints times, the ratio and the seam PSNR.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import core


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 448
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    pad = {"tile_pad": int(sys.argv[3])} if len(sys.argv) > 3 else {}
    image = np.tile(core.load_sample("astronaut"), (2, 2, 1))[:size, :size].astype(np.uint16) * 257
    upscaler = core.Upscaler.load("RealESRGAN_x4plus", device="cpu")
    upscaler.upscale(image[:32, :32])
    default = upscaler.resolve(core.UpscaleSettings(**pad))  # the tile is fixed before any run
    tiles = upscaler.count_tiles(size, size, default)
    times: dict[str, list[float]] = {"tiled": [], "whole": []}
    for _ in range(rounds):  # alternate, so drift on a noisy machine hits both alike
        start = time.perf_counter()
        tiled = upscaler.upscale(image, default).image
        times["tiled"].append(time.perf_counter() - start)
        start = time.perf_counter()
        whole = upscaler.upscale(image, core.UpscaleSettings(tile=0, **pad)).image
        times["whole"].append(time.perf_counter() - start)
    t_tiled, t_whole = min(times["tiled"]), min(times["whole"])
    mse = np.mean((tiled / 65535.0 - whole / 65535.0) ** 2)
    print(f"{upscaler.describe()}")
    print(f"{size}x{size}: default ({tiles} tiles of <= {default.tile} px, context {default.tile_pad} px) "
          f"{t_tiled:.1f} s, "
          f"untiled {t_whole:.1f} s (best of {rounds}), ratio {t_tiled / t_whole:.2f}, "
          f"seam PSNR {10 * np.log10(1 / mse):.1f} dB")


if __name__ == "__main__":
    main()
