"""Votes a study needs: the adaptive design (core.study.adaptive_trial) against every pair repeated in turn.

Simulated raters answer with the Bradley-Terry probabilities of known true scores (and say "can't tell" where
the two are within ``--tie`` of each other with probability 0.5); after every vote, the fit is checked: done
when its ranking is the true one and the true best has P(best) >= 0.95 (200 bootstrap resamples, checked every
``--every`` votes). Printed per design: the votes needed in each run, their median and spread.

Run: ``.venv/bin/python benchmarks/study_design.py [--methods 6] [--runs 10] [--images 4]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from core.study import LEFT, RIGHT, TIE, Vote, adaptive_trial, fit_votes, round_robin_trial


def _answer(truth: dict[str, float], trial: tuple[str, str, str], rng: np.random.Generator, tie: float) -> Vote:
    image, left, right = trial
    gap = truth[left] - truth[right]
    if abs(gap) < tie and rng.random() < 0.5:
        return Vote(image, left, right, TIE)
    return Vote(image, left, right, LEFT if rng.random() < 1 / (1 + np.exp(-gap)) else RIGHT)


def votes_needed(design, truth: dict[str, float], images: list[str], seed: int, every: int, tie: float,
                 limit: int = 3000, resamples: int = 200) -> int:
    rng = np.random.default_rng(seed)
    methods = list(truth)
    order = sorted(methods, key=lambda m: -truth[m])
    votes: list[Vote] = []
    while len(votes) < limit:
        votes.append(_answer(truth, design(methods, images, votes, rng), rng, tie))
        if len(votes) % every == 0:
            fit = fit_votes(methods, votes, resamples=resamples, seed=seed)
            if fit.ranking() == order and fit.best[methods.index(order[0])] >= 0.95:
                return len(votes)
    return limit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", type=int, default=6)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--tie", type=float, default=0.2)
    parser.add_argument("--spacing", type=float, default=0.5, help="true score between neighbours")
    args = parser.parse_args()
    truth = {f"m{k}": args.spacing * k for k in range(args.methods)}
    images = [f"img{k}" for k in range(args.images)]
    print(f"{args.methods} methods, true scores {args.spacing:g} apart, {args.images} images, {args.runs} runs")
    for name, design in (("adaptive", adaptive_trial), ("round robin", round_robin_trial)):
        start = time.perf_counter()
        needed = [votes_needed(design, truth, images, seed, args.every, args.tie) for seed in range(args.runs)]
        print(f"{name:12s} median {statistics.median(needed):6.0f} votes  (min {min(needed)}, max {max(needed)}, "
              f"runs {needed})  {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
