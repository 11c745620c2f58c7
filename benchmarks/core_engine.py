"""Core-engine numbers: conversion agreement, x4plus CPU time, peak memory of tiled runs.

Run: ``.venv/bin/python benchmarks/core_engine.py`` (prints a table; not part of the tests).
Each memory figure comes from a fresh subprocess (peak RSS via ``resource``).
"""

from __future__ import annotations

import json
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

import core


def _ncnn_psnr(stem: str, crop: np.ndarray) -> float:
    import ncnn
    import spandrel

    param, binary = core.models.ncnn_model_files(stem)  # type: ignore[misc]
    model = spandrel.ModelLoader().load_from_state_dict(core.models.convert_ncnn(param, binary).state_dict).eval()
    ours = model(torch.from_numpy(crop)[None]).numpy()[0]
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = False
    net.load_param(str(param))
    net.load_model(str(binary))
    ex = net.create_extractor()
    data = np.ascontiguousarray(crop)
    ex.input("data", ncnn.Mat(data))
    _, out = ex.extract("output")
    ref = np.clip(np.array(out), 0, 1)
    mse = float(np.mean((ours.astype(np.float64) - ref) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def _child(size: int, tile: int) -> None:
    upscaler = core.Upscaler.load("RealESRGAN_x4plus", device="cpu")
    image = core.load_sample("astronaut")[:size, :size]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    upscaler.upscale(image, core.UpscaleSettings(tile=tile))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sys.stdout.write(json.dumps({"seconds": seconds, "peak_mb": peak / 1024, "before_mb": before / 1024}))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(int(sys.argv[2]), int(sys.argv[3]))
        return
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    crop = core.load_sample("chelsea")[100:164, 200:264]
    chw = np.ascontiguousarray(crop.transpose(2, 0, 1).astype(np.float32) / 255)
    print("\n## ncnn -> PyTorch conversion vs ncnn runtime (64x64 crop of chelsea)")
    for stem in ("REALESRGAN_X4PLUS_UP4X", "REALESRGAN_X4PLUSANIME_UP4X", "REALESRGAN_ANIMAVIDEOV3_UP4X"):
        print(f"{stem:32s} PSNR {_ncnn_psnr(stem, chw):7.1f} dB")

    upscaler = core.Upscaler.load("RealESRGAN_x4plus", device="cpu")
    image = core.load_sample("astronaut")[150:278, 150:278]
    upscaler.upscale(image[:32, :32], core.UpscaleSettings(tile=0))  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        untiled = upscaler.upscale(image, core.UpscaleSettings(tile=0)).image
        times.append(time.perf_counter() - start)
    print("\n## RealESRGAN_x4plus on CPU, 128x128 -> 512x512, untiled")
    print(f"median {statistics.median(times):.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)})")
    tiled = upscaler.upscale(image, core.UpscaleSettings(tile=64)).image
    mse = np.mean((tiled.astype(np.float64) - untiled) ** 2)
    print(f"tile 64 (default overlap 8, context 24) vs untiled: PSNR {10 * np.log10(255**2 / mse):.1f} dB (8-bit)")
    crop = core.load_sample("astronaut")[150:230, 150:230]
    a = upscaler.upscale(crop, core.UpscaleSettings(tile=0)).image
    b = upscaler.upscale(crop, core.UpscaleSettings(tile=48)).image
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    print(f"test setting (80x80, tile 48) vs untiled: PSNR {10 * np.log10(255**2 / mse):.1f} dB (8-bit)")

    print("\n## Peak RSS of one process (model load + one upscale), astronaut crop")
    print("size  tile  seconds  peak RSS MB")
    for size, tile in ((256, 0), (256, 128), (512, 0), (512, 128), (512, 384)):
        out = subprocess.run([sys.executable, __file__, "--child", str(size), str(tile)],
                             capture_output=True, text=True, check=True).stdout
        row = json.loads(out)
        print(f"{size:4d}  {tile:4d}  {row['seconds']:7.1f}  {row['peak_mb']:8.0f}")


if __name__ == "__main__":
    main()
