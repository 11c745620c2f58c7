"""Seams of tiled inference on real photos: whole-image and seam-band PSNR against untiled, and cost.

Run: ``.venv/bin/python benchmarks/seams.py [MODEL] [TILE] [PAD[:OVERLAP] ...]`` (default
RealESRGAN_x4plus, 128 px tiles, the model's default context and overlap, and 16 px context with
8 px overlap, the defaults before). For each bundled photo, crops that the tile splits into
2, 3 and 4 tiles along the width (textured content crosses every seam) are upscaled untiled and
tiled; the seam band is the output within 8 input px of each tile boundary. Prints one row per
(image, tiles, context) and the worst band per context; times are summed over all crops.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import core

PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket")
BAND = 8  # input px each side of a seam


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)) / 255.0**2
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def seam_columns(width: int, settings: core.UpscaleSettings, scale: int) -> np.ndarray:
    """Output columns within :data:`BAND` input px of a tile boundary (the middle of each overlap)."""
    cols = core.upscale.plan_axis(width, settings.tile or 0, settings.tile_overlap)
    mask = np.zeros(width * scale, bool)
    for (_, end), (start, _) in zip(cols, cols[1:]):
        middle = (start + end) // 2
        mask[max(0, middle - BAND) * scale : (middle + BAND) * scale] = True
    return mask


def measure(upscaler: core.Upscaler, crop: np.ndarray, settings: core.UpscaleSettings,
            untiled: np.ndarray) -> tuple[float, float, int, float]:
    """``(whole PSNR, seam-band PSNR, max difference, seconds)`` of a tiled run against ``untiled``."""
    start = time.perf_counter()
    tiled = upscaler.upscale(crop, settings).image
    seconds = time.perf_counter() - start
    band = seam_columns(crop.shape[1], settings, upscaler.scale)
    diff = int(np.abs(tiled.astype(int) - untiled.astype(int)).max())
    return _psnr(tiled, untiled), _psnr(tiled[:, band], untiled[:, band]), diff, seconds


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "RealESRGAN_x4plus"
    tile = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    upscaler = core.Upscaler.load(name, device="cpu")
    print(upscaler.describe())
    default = upscaler.resolve(core.UpscaleSettings(tile=tile))
    pads = [(int(a), int(b or default.tile_overlap)) for a, _, b in (p.partition(":") for p in sys.argv[3:])]
    pads = pads or [(default.tile_pad, default.tile_overlap), (16, 8)]
    overlap = default.tile_overlap
    totals = {pad: 0.0 for pad in pads}
    untiled_total = 0.0
    worst = {pad: (np.inf, np.inf) for pad in pads}
    print(f"{'image':10} {'tiles':>5} {'crop':>9} {'pad:ovl':>8} {'whole dB':>9} {'band dB':>8} {'max diff':>8}")
    for photo in PHOTOS:
        image = core.load_sample(photo)
        for tiles in (2, 3, 4):
            width = min(image.shape[1], tiles * (tile - overlap) + overlap - 4)
            height = min(image.shape[0], 96)
            top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
            crop = np.ascontiguousarray(image[top : top + height, left : left + width])
            start = time.perf_counter()
            reference = upscaler.upscale(crop, core.UpscaleSettings(tile=core.upscale.MAX_TILE))  # explicit: one tile
            assert reference.tile == 0, "the reference must be untiled"
            untiled = reference.image
            untiled_total += time.perf_counter() - start
            for pad in pads:
                settings = core.UpscaleSettings(tile=tile, tile_pad=pad[0], tile_overlap=pad[1])
                count = len(core.upscale.plan_axis(width, tile, pad[1]))
                whole, band, diff, seconds = measure(upscaler, crop, settings, untiled)
                totals[pad] += seconds
                worst[pad] = (min(worst[pad][0], whole), min(worst[pad][1], band))
                print(f"{photo:10} {count:>5} {width:>4}x{height:<4} {pad[0]:>4}:{pad[1]:<3} {whole:9.2f} {band:8.2f} "
                      f"{diff:8d}")
    for pad in pads:
        print(f"context {pad[0]:>2} px, overlap {pad[1]:>2} px: worst whole {worst[pad][0]:.2f} dB, "
              f"worst seam band {worst[pad][1]:.2f} dB, time {totals[pad]:.1f} s vs untiled {untiled_total:.1f} s "
              f"({totals[pad] / untiled_total:.2f}x)")


if __name__ == "__main__":
    main()
