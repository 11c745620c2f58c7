"""How the CPU engines' speeds drift over minutes, and what one measurement of them would decide.

The automatic engine (``core.engines._choice``) times every engine for a few rounds and keeps the
fastest. That is sound only if a few rounds speak for the minutes and hours after them. This
benchmark runs the engines of one model in turns, one call each per round, for ``--rounds``
rounds in one process, on the same probe image the measurement uses, and prints:

* every round (seconds per engine), so slow phases of the machine show as runs of slow rounds;
* each engine's mean, median, min and max over the whole run: the long-run figure a user lives with;
* what a single measurement (``--window`` consecutive rounds, each engine's median) would pick,
  window by window: how often one measurement disagrees with the long-run means;
* what the pooled rule would pick from three windows spread over the run (first, middle, last).

Run: ``.venv/bin/python benchmarks/engine_drift.py [--model RealESRGAN_x4plus] [--rounds 60]
[--window 5] [--side 64]``. Needs the model's weights (the bundled ncnn files are enough for the
official models) and, for OpenVINO, the ``openvino`` package.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="RealESRGAN_x4plus")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--window", type=int, default=5, help="rounds in one measurement (the core uses up to 5)")
    parser.add_argument("--side", type=int, default=64, help="probe side, LR px")
    args = parser.parse_args()

    import core
    from core.engines import cpu_engines
    from core.engines._choice import EngineTrial, _probe, pick

    info = core.model_info(args.model)
    engines = cpu_engines(info)
    image = _probe(args.side)
    upscalers = {e: core.Upscaler.load(args.model, device="cpu", precision="fp32", engine=e) for e in engines}
    for upscaler in upscalers.values():
        upscaler.upscale(image)  # warm-up
    memory = {e: u.activation_bytes_per_pixel() for e, u in upscalers.items()}
    print(f"{args.model}, {args.side} px probe, engines {', '.join(engines)}; seconds per call")
    print("round  elapsed  " + "  ".join(f"{e:>8}" for e in engines))
    times: dict[str, list[float]] = {e: [] for e in engines}
    started = time.perf_counter()
    for index in range(args.rounds):
        for engine, upscaler in upscalers.items():
            start = time.perf_counter()
            upscaler.upscale(image)
            times[engine].append(time.perf_counter() - start)
        print(f"{index:5d}  {time.perf_counter() - started:6.1f}s  "
              + "  ".join(f"{times[e][-1]:8.3f}" for e in engines), flush=True)

    print("\nengine     mean  median     min     max")
    for engine in engines:
        values = times[engine]
        print(f"{engine:8} {statistics.fmean(values):6.3f}  {statistics.median(values):6.3f}  "
              f"{min(values):6.3f}  {max(values):6.3f}")

    def choice(seconds: dict[str, float]) -> str:
        return pick([EngineTrial(e, seconds[e], None if e == "torch" else 100.0, memory[e]) for e in engines])[0]

    long_run = choice({e: statistics.fmean(v) for e, v in times.items()})
    windows = [{e: statistics.median(v[i:i + args.window]) for e, v in times.items()}
               for i in range(0, args.rounds - args.window + 1)]
    picks = [choice(w) for w in windows]
    counts = ", ".join(f"{e} {picks.count(e)}" for e in engines if picks.count(e))
    print(f"\nlong-run means pick {long_run}; one {args.window}-round measurement picks: {counts} "
          f"(of {len(windows)} windows; {sum(p != long_run for p in picks)} disagree)")
    spread = [windows[0], windows[len(windows) // 2], windows[-1]]
    pooled = choice({e: statistics.fmean(w[e] for w in spread) for e in engines})
    print(f"three windows spread over the run ({', '.join(choice(w) for w in spread)}), pooled: {pooled}")


if __name__ == "__main__":
    main()
