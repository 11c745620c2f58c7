"""Speed of the degradation pipeline on a 512x512 image, per preset (median over seeds).

Run: ``.venv/bin/python benchmarks/degradations.py``.
"""

from __future__ import annotations

import statistics
import time

import core


def main() -> None:
    hr = core.load_sample("astronaut")
    print("preset       512x512 median ms   max ms  (20 seeds)")
    for name, config in core.PRESETS.items():
        core.degrade(hr, config, 0)
        times = []
        for seed in range(20):
            start = time.perf_counter()
            core.degrade(hr, config, seed, keep_stages=False)
            times.append(time.perf_counter() - start)
        print(f"{name:12s} {statistics.median(times) * 1000:10.1f} {max(times) * 1000:10.1f}")


if __name__ == "__main__":
    main()
