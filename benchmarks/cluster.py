"""Batch upscaling in one process vs on a local Ray cluster with 1 and 2 workers, side by side in one run.

    .venv/bin/python benchmarks/cluster.py [--images 64] [--side 96] [--model realesr-animevideov3] [--rounds 2]

The same batch (real photo crops, ``side`` px LR) is upscaled and PNG-encoded (the worker's
whole job) by: the local path at 1 and 2 threads, and Ray Data actor pools of 1 worker x 1
thread, 1 x 2 and 2 x 1 on a local Ray started here (so the total thread count matches the
local run it is compared with). Each Ray run builds its own pool, so its time includes starting
the actors and loading the model in them; "steady" is the throughput after the first image
came back (pool started, model loaded). Configurations take turns ``rounds`` times; medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import core
from core import cluster


def _inputs(folder: Path, count: int, side: int) -> list[Path]:
    names = core.list_samples()
    paths = []
    for i in range(count):
        image = core.load_sample(names[i % len(names)])
        offset = 5 * (i // len(names))
        paths.append(core.write_png(folder / f"{i:03d}.png", image[offset: offset + side, offset: offset + side]))
    return paths


def _rates(start: float, arrivals: list[float]) -> tuple[float, float]:
    """Total seconds, and the steady throughput: images that arrived after the first arrival (and its
    task's other images, which come with it) over the time since."""
    first = arrivals[0]
    later = [t for t in arrivals if t - first > 0.005]
    steady = len(later) / (arrivals[-1] - first) if later else float("nan")
    return arrivals[-1] - start, steady


def _local(paths: list[Path], model: str, threads: int) -> tuple[float, float]:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    upscaler = core.Upscaler.load(model, device="cpu")
    arrivals = []
    for path in paths:
        core.encode_png(upscaler.upscale(core.read_image(path)).image)
        arrivals.append(time.perf_counter())
    return _rates(start, arrivals)


def _ray(paths: list[Path], model: str, workers: int, threads: int) -> tuple[float, float]:
    start = time.perf_counter()
    settings = cluster.ClusterSettings(workers=workers, threads=threads)
    arrivals = []
    for outcome in cluster.upscale_on_ray(paths, model, cluster=settings, device="cpu"):
        assert outcome.png is not None, outcome.error
        arrivals.append(time.perf_counter())
    assert len(arrivals) == len(paths)
    return _rates(start, arrivals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--side", type=int, default=96)
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    core.load_model(args.model)  # convert once, outside the timings
    configs = [("local, 1 thread", lambda p: _local(p, args.model, 1)),
               ("local, 2 threads", lambda p: _local(p, args.model, 2)),
               ("ray, 1 worker x 1 thread", lambda p: _ray(p, args.model, 1, 1)),
               ("ray, 1 worker x 2 threads", lambda p: _ray(p, args.model, 1, 2)),
               ("ray, 2 workers x 1 thread", lambda p: _ray(p, args.model, 2, 1))]
    cluster.connect(None, num_cpus=2)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in configs}
    with tempfile.TemporaryDirectory() as folder:
        paths = _inputs(Path(folder), args.images, args.side)
        for _ in range(args.rounds):
            for name, run in configs:
                times[name].append(run(paths))
    n = args.images
    print(f"{n} images of {args.side}x{args.side} px LR, {args.model}, x4, PNG-encoded; "
          f"median of {args.rounds} rounds; torch {torch.__version__}")
    print("| configuration | total s | images/s | s/image | steady images/s |")
    print("| --- | --- | --- | --- | --- |")
    medians = {}
    for name, runs in times.items():
        total = statistics.median(t for t, _ in runs)
        steady = statistics.median(s for _, s in runs)
        medians[name] = (total, steady)
        print(f"| {name} | {total:.2f} | {n / total:.2f} | {total / n:.3f} | {steady:.2f} |")
    one, two = medians["ray, 1 worker x 1 thread"], medians["ray, 2 workers x 1 thread"]
    local1 = medians["local, 1 thread"]
    print(f"speed-up 1 -> 2 workers: {one[0] / two[0]:.2f}x total, {two[1] / one[1]:.2f}x steady")
    print(f"Ray vs local at 1 thread: steady {1000 / one[1] - 1000 / local1[1]:+.1f} ms/image "
          f"({local1[1] / one[1] - 1:+.0%}); fixed cost of a run (actors start, model loads) about "
          f"{one[0] - n / one[1] - (local1[0] - n / local1[1]):.1f} s")


if __name__ == "__main__":
    main()
