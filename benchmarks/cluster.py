"""Batch upscaling in one process vs on a local Ray cluster with 1 and 2 workers, side by side in one run.

    .venv/bin/python benchmarks/cluster.py [--images 160] [--side 96] [--model realesr-animevideov3] [--rounds 3]
                                           [--engine torch]

The same batch (real photo crops, ``side`` px LR) is upscaled and PNG-encoded (the worker's
whole job) by: the local path at 1 and 2 threads, and Ray Data actor pools of 1 worker x 1
thread, 1 x 2 and 2 x 1 on a local Ray started here (so the total thread count matches the
local run it is compared with). Every configuration runs the same engine (``--engine``, the one a
cluster run uses by default), so they do the same arithmetic. The local path runs in a process of its
own started with ``OMP_NUM_THREADS`` set, as Ray starts its workers.

"total" is the wall time of a run of ``images``: for Ray it includes starting the actors and loading
the model in each. "steady" is the marginal throughput, from two runs of each configuration, of
``images`` and of half as many: the extra images over the extra time. It leaves out every fixed cost
(pool start, model load, first call) without timing arrivals at the driver: Ray hands finished tasks to
the driver late and in bunches, so a rate measured from the first arrival (as this benchmark once did)
said Ray was 15-20 % faster per image than the local path at equal threads, which it is not.
Configurations take turns ``rounds`` times; each round is printed, then medians and the spread (min-max).
Keep ``images`` at 160 or more on a small machine: with fewer, the extra time is within the noise of a
pool's start (a few seconds) and the marginal rate means nothing (16 images gave 188 and -14 images/s).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
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


def _local(paths: list[Path], model: str, threads: int, engine: str) -> float:
    """The local path in a fresh process whose thread count is fixed from its start, as a Ray worker's is."""
    env = os.environ | {"OMP_NUM_THREADS": str(threads)}
    job = json.dumps([model, threads, engine, [str(p) for p in paths]])
    proc = subprocess.run([sys.executable, __file__, "--local", job], env=env, capture_output=True, text=True,
                          check=True)
    return float(proc.stdout.splitlines()[-1])


def _local_here(paths: list[Path], model: str, threads: int, engine: str) -> float:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    upscaler = core.Upscaler.load(model, device="cpu", engine=engine)
    for path in paths:
        core.encode_png(upscaler.upscale(core.read_image(path)).image)
    return time.perf_counter() - start


def _ray(paths: list[Path], model: str, workers: int, threads: int, engine: str, sizes: list[int]) -> float:
    start = time.perf_counter()
    settings = cluster.ClusterSettings(workers=workers, threads=threads, engine=engine)
    count = 0
    for outcome in cluster.upscale_on_ray(paths, cluster.ModelRun(model, device="cpu"), cluster=settings):
        assert outcome.png is not None, outcome.error
        sizes.append(len(outcome.png))  # every output travels through the driver (it writes them)
        count += 1
    assert count == len(paths)
    return time.perf_counter() - start


def main() -> None:
    if sys.argv[1:2] == ["--local"]:  # the local path, in its own process (see _local)
        model, threads, engine, paths = json.loads(sys.argv[2])
        print(_local_here([Path(p) for p in paths], model, threads, engine))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--side", type=int, default=96)
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engine", default="torch", help="the engine of every configuration (default: torch, "
                                                          "which a cluster run uses unless told otherwise)")
    args = parser.parse_args()
    core.load_model(args.model)  # convert once, outside the timings
    sizes: list[int] = []
    configs = [("local, 1 thread", lambda p: _local(p, args.model, 1, args.engine)),
               ("local, 2 threads", lambda p: _local(p, args.model, 2, args.engine)),
               ("ray, 1 worker x 1 thread", lambda p: _ray(p, args.model, 1, 1, args.engine, sizes)),
               ("ray, 1 worker x 2 threads", lambda p: _ray(p, args.model, 1, 2, args.engine, sizes)),
               ("ray, 2 workers x 1 thread", lambda p: _ray(p, args.model, 2, 1, args.engine, sizes))]
    cluster.connect(None, num_cpus=2)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in configs}
    with tempfile.TemporaryDirectory() as folder:
        paths = _inputs(Path(folder), args.images, args.side)
        half = paths[: len(paths) // 2]
        for round_ in range(1, args.rounds + 1):
            for name, run in configs:
                total, part = run(paths), run(half)
                steady = (len(paths) - len(half)) / (total - part)
                times[name].append((total, steady))
                print(f"round {round_}: {name}: {total:.2f} s for {len(paths)}, {part:.2f} s for {len(half)}: "
                      f"steady {steady:.2f} images/s", flush=True)
    n = args.images
    print(f"{n} images of {args.side}x{args.side} px LR, {args.model}, x4, engine {args.engine}, PNG-encoded; "
          f"median (min-max) of {args.rounds} rounds; torch {torch.__version__}")
    print("| configuration | total s | images/s | steady images/s (marginal) |")
    print("| --- | --- | --- | --- |")
    medians = {}
    for name, runs in times.items():
        totals, steadies = [t for t, _ in runs], [s for _, s in runs]
        total, steady = statistics.median(totals), statistics.median(steadies)
        medians[name] = (total, steady)
        print(f"| {name} | {total:.2f} ({min(totals):.2f}-{max(totals):.2f}) | {n / total:.2f} | "
              f"{steady:.2f} ({min(steadies):.2f}-{max(steadies):.2f}) |")
    print(f"through the driver: {statistics.mean(sizes) / 1024:.1f} KiB of PNG per image (the workers return "
          "every output to the driver, which writes it)")
    one, two = medians["ray, 1 worker x 1 thread"], medians["ray, 2 workers x 1 thread"]
    local1 = medians["local, 1 thread"]
    # per round, side by side: a marginal rate is a difference of two noisy times, so its ratio is printed only
    # where it can be real (two workers cannot be more than 2x one) and the rounds agree (spread within 25 %)
    ratios = [b[1] / a[1] for a, b in zip(times["ray, 1 worker x 1 thread"], times["ray, 2 workers x 1 thread"])]
    spread = (max(ratios) - min(ratios)) / statistics.median(ratios)
    if max(ratios) <= 2.0 and min(ratios) > 0 and spread <= 0.25:
        steady_text = f"{statistics.median(ratios):.2f}x steady ({min(ratios):.2f}-{max(ratios):.2f})"
    else:
        steady_text = (f"steady not measurable here (per round {', '.join(f'{r:.2f}' for r in ratios)}x: above "
                       f"the 2x two workers can give, or rounds {spread:.0%} apart; more --images or --rounds)")
    print(f"speed-up 1 -> 2 workers: {one[0] / two[0]:.2f}x total, {steady_text}; this machine has "
          f"{os.cpu_count()} cores")
    print(f"Ray vs local at 1 thread: steady {1000 / one[1] - 1000 / local1[1]:+.1f} ms/image "
          f"({local1[1] / one[1] - 1:+.0%}); fixed cost of a run (actors start, model loads) about "
          f"{one[0] - n / one[1] - (local1[0] - n / local1[1]):.1f} s")


if __name__ == "__main__":
    main()
