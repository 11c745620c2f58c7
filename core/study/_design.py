"""Which pair a rater sees next: the one whose order the votes so far are least sure of.

A pair of methods whose order is already clear (Real-ESRGAN against bicubic, after a few votes) teaches little;
one whose order the votes cannot yet tell, because the two are close or because the pair has few votes, teaches
the most. Each pair is weighed by the probability that its order is the other way round under the current
Bradley-Terry fit (the Laplace approximation of its posterior: a normal of the fit's score difference and its
standard error); a pair never asked comes first, the image is the one where the chosen pair has the fewest votes,
and the sides are drawn at random. ``benchmarks/study_design.py`` measures what this saves against repeating
every pair in turn.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from itertools import combinations

import numpy as np

from ._fit import Vote, bradley_terry, covariance, wins_of

__all__ = ["Trial", "adaptive_trial", "round_robin_trial"]

Trial = tuple[str, str, str]  # (image, left method, right method)


def _counts(votes: Sequence[Vote]) -> tuple[Counter, Counter]:
    pairs: Counter = Counter()
    per_image: Counter = Counter()
    for vote in votes:
        pair = tuple(sorted((vote.left, vote.right)))
        pairs[pair] += 1
        per_image[(vote.image, *pair)] += 1
    return pairs, per_image


def _sides(image: str, a: str, b: str, rng: np.random.Generator) -> Trial:
    return (image, a, b) if rng.random() < 0.5 else (image, b, a)


def adaptive_trial(methods: Sequence[str], images: Sequence[str], votes: Sequence[Vote],
                   rng: np.random.Generator) -> Trial:
    """The next trial: the pair whose order is least sure (see the module), on its least-asked image, sides at
    random."""
    wins = wins_of(methods, votes)
    scores = bradley_terry(wins) if votes else np.zeros(len(methods))
    spread = covariance(wins, scores)
    pairs, per_image = _counts(votes)
    candidates = list(combinations(sorted(methods), 2))
    index = {m: k for k, m in enumerate(methods)}
    weights = []
    for a, b in candidates:
        i, j = index[a], index[b]
        error = math.sqrt(max(spread[i, i] + spread[j, j] - 2 * spread[i, j], 1e-12))
        weights.append(0.5 * math.erfc(abs(scores[i] - scores[j]) / error / math.sqrt(2)))  # P(the other order)
    unasked = [k for k, pair in enumerate(candidates) if not pairs[pair]]
    open_ = unasked or range(len(candidates))  # a pair never asked comes first: the fit only guesses it
    top = max(weights[k] for k in open_)
    best = [candidates[k] for k in open_ if weights[k] >= top * (1 - 1e-9)]
    a, b = best[int(rng.integers(len(best)))]
    fewest = min(per_image[(image, a, b)] for image in images)
    choices = [image for image in images if per_image[(image, a, b)] == fewest]
    return _sides(choices[int(rng.integers(len(choices)))], a, b, rng)


def round_robin_trial(methods: Sequence[str], images: Sequence[str], votes: Sequence[Vote],
                      rng: np.random.Generator) -> Trial:
    """Every pair of every image in turn (the design the adaptive one is measured against)."""
    trials = [(image, a, b) for image in images for a, b in combinations(sorted(methods), 2)]
    image, a, b = trials[len(votes) % len(trials)]
    return _sides(image, a, b, rng)
