"""Peak host memory of one model call on the CPU, measured next to the estimate that picks tiles.

For each model, engine and input side, a fresh subprocess (an engine's pools and the allocator
keep what an earlier call used) runs one untiled call and reads the peak RSS it added
(``VmHWM`` after resetting it through ``/proc/self/clear_refs``), next to the estimate that
:meth:`core.Upscaler.tile_for` uses: ``activation_bytes_per_pixel() * pixels + CALL_OVERHEAD``.
Pinned, because they change the peak and a test cannot otherwise control them: the thread count
(per-thread scratch) at 2, and glibc's mmap threshold at 128 KB. glibc serves allocations above
that threshold (dynamic by default, rising to at most 32 MB) from the kernel and returns them on
free; at the tile sizes the estimate chooses (hundreds of pixels) every activation is above
32 MB, but a small test input's are not and would land on the fragmenting heap instead (up to
1.3x more RSS, varying from run to run). Fixing the threshold measures the regime real tiles are in.

Run: ``.venv/bin/python benchmarks/cpu_memory.py [--models A,B] [--engines ncnn,torch]
[--sides 64,128,192] [--json]``. Linux only. ``tests/core/engines/test_fast_paths.py`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

THREADS = 2
PINNED_ENV = {"OMP_NUM_THREADS": str(THREADS), "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}


def _status(key: str) -> int:
    with open("/proc/self/status") as handle:
        return int(re.search(key + r":\s+(\d+) kB", handle.read()).group(1)) * 1024


def _child(model: str, engine: str, side: int) -> None:
    import numpy as np
    import torch

    import core
    from core.engines import CALL_OVERHEAD

    torch.set_num_threads(THREADS)
    upscaler = core.Upscaler.load(model, device="cpu", engine=engine)
    upscaler.upscale(np.zeros((16, 16, 3), np.uint8))  # warm-up: lazy initialisation is not per pixel
    photo = np.tile(core.load_sample("astronaut"), (2, 2, 1))
    per_pixel = upscaler.activation_bytes_per_pixel()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset the peak (VmHWM) to the current RSS
    before = _status("VmRSS")
    upscaler.upscale(photo[:side, :side], core.UpscaleSettings(tile=0))
    measured = _status("VmHWM") - before
    print(json.dumps({"model": model, "engine": upscaler.engine, "side": side, "per_pixel": per_pixel,
                      "measured_mb": measured / 2**20, "estimate_mb": (per_pixel * side**2 + CALL_OVERHEAD) / 2**20,
                      "measured_per_pixel": measured / side**2}), flush=True)


def measure(models: list[str], engines: list[str], sides: list[int]) -> list[dict]:
    """One subprocess per (model, engine, side): rows of the measured and estimated peak of one call."""
    rows = []
    for model in models:
        for engine in engines:
            for side in sides:
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", model, engine, str(side)],
                    capture_output=True, text=True, env=os.environ | PINNED_ENV, check=False)
                if proc.returncode != 0:
                    raise RuntimeError(f"{model} on {engine} at {side} px failed:\n{proc.stderr[-2000:]}")
                rows += [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return rows


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="RealESRGAN_x4plus,realesr-animevideov3")
    parser.add_argument("--engines", default="ncnn,torch")
    parser.add_argument("--sides", default="64,128,192")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    args = parser.parse_args()
    rows = measure(args.models.split(","), args.engines.split(","), [int(s) for s in args.sides.split(",")])
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{'model':24s} {'engine':6s} {'side':>5s} {'peak MB':>8s} {'bound MB':>9s} {'bound/peak':>10s}"
          f" {'peak B/px':>10s} {'bound B/px':>10s}")
    for r in rows:
        print(f"{r['model']:24s} {r['engine']:6s} {r['side']:5d} {r['measured_mb']:8.1f} {r['estimate_mb']:9.1f} "
              f"{r['estimate_mb'] / r['measured_mb']:10.2f} {r['measured_per_pixel']:10.0f} {r['per_pixel']:10.0f}")


if __name__ == "__main__":
    main()
