"""What a study's votes say: Bradley-Terry scores with bootstrap intervals, the win-rate matrix, the probability
that each method is the best, which pairs the votes tell apart, agreement between raters, and how often each
metric prefers what the raters preferred (2AFC agreement).

The Bradley-Terry model: ``P(i beats j) = 1 / (1 + exp(-(s_i - s_j)))``. The scores are the maximum a-posteriori
estimate under a Gaussian prior of variance ``1 / (2 * PRIOR)`` (a small ridge, so that a method that wins every
vote has a finite score), found by Newton's method on the negative log-likelihood, whose gradient and Hessian are
exact; a "can't tell" counts as half a win each way. The scores sum to zero. Intervals come from resampling the
votes with replacement (a fixed seed: the same votes give the same table).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

__all__ = ["LEFT", "RIGHT", "TIE", "Agreement", "Fit", "Vote", "bradley_terry", "covariance", "expit", "fit_votes",
           "metric_agreement", "per_image", "rater_agreement", "win_matrix", "wins_of"]

LEFT, RIGHT, TIE = "left", "right", "tie"
PRIOR = 0.01  # the ridge: scores of a few votes stay finite, many votes outweigh it
_Z95 = 1.959963984540054


@dataclass(frozen=True)
class Vote:
    """One answer: on ``image``, the rater saw ``left`` and ``right`` (method names) and chose one, or ``tie``."""

    image: str
    left: str
    right: str
    choice: str  # LEFT, RIGHT or TIE
    rater: str = ""

    def winner(self) -> str | None:
        return {LEFT: self.left, RIGHT: self.right}.get(self.choice)


def wins_of(methods: Sequence[str], votes: Sequence[Vote]) -> np.ndarray:
    """``W[i, j]``: the wins of method ``i`` over ``j`` (a tie: half each way)."""
    index = {m: k for k, m in enumerate(methods)}
    wins = np.zeros((len(methods), len(methods)))
    for vote in votes:
        a, b = index[vote.left], index[vote.right]
        if vote.choice == LEFT:
            wins[a, b] += 1
        elif vote.choice == RIGHT:
            wins[b, a] += 1
        else:
            wins[a, b] += 0.5
            wins[b, a] += 0.5
    return wins


def expit(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))  # stable for any x


def bradley_terry(wins: np.ndarray, prior: float = PRIOR) -> np.ndarray:
    """The Bradley-Terry scores (summing to zero) of the win matrix ``wins`` (see :func:`wins_of`)."""
    n = wins.shape[0]
    both = wins + wins.T

    def objective(s: np.ndarray) -> float:
        d = s[:, None] - s[None, :]
        return float(np.sum(wins * np.logaddexp(0.0, -d)) + prior * np.sum(s**2))

    def gradient(s: np.ndarray) -> np.ndarray:
        d = s[:, None] - s[None, :]
        lost = wins * expit(-d)  # W_ij P(j beats i)
        return -lost.sum(axis=1) + lost.sum(axis=0) + 2 * prior * s

    def hessian(s: np.ndarray) -> np.ndarray:
        d = s[:, None] - s[None, :]
        p = expit(d)
        v = both * p * (1 - p)
        return np.diag(v.sum(axis=1)) - v + 2 * prior * np.eye(n)

    found = optimize.minimize(objective, np.zeros(n), jac=gradient, hess=hessian, method="trust-exact",
                              options={"gtol": 1e-10})
    scores = found.x
    return scores - scores.mean()


def covariance(wins: np.ndarray, scores: np.ndarray, prior: float = PRIOR) -> np.ndarray:
    """The Laplace approximation of the scores' posterior covariance: the inverse Hessian of the objective of
    :func:`bradley_terry` at ``scores``."""
    d = scores[:, None] - scores[None, :]
    p = expit(d)
    v = (wins + wins.T) * p * (1 - p)
    return np.linalg.inv(np.diag(v.sum(axis=1)) - v + 2 * prior * np.eye(len(scores)))


def win_matrix(methods: Sequence[str], votes: Sequence[Vote]) -> np.ndarray:
    """``M[i, j]``: the share of the votes between ``i`` and ``j`` that ``i`` won (ties half); NaN where none."""
    wins = wins_of(methods, votes)
    total = wins + wins.T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, wins / np.where(total > 0, total, 1), np.nan)


@dataclass(frozen=True)
class Fit:
    """The scores of ``methods`` (Bradley-Terry, summing to zero), their 95 % intervals, each method's probability
    of being the best, and for each pair whether its 95 % interval of the score difference excludes zero."""

    methods: tuple[str, ...]
    scores: np.ndarray
    low: np.ndarray
    high: np.ndarray
    best: np.ndarray  # P(best): the share of resamples in which each method scores highest
    apart: np.ndarray  # apart[i, j]: the votes tell i and j apart
    wins: np.ndarray  # win-rate matrix (see win_matrix)
    votes: int
    resamples: int = 0

    def ranking(self) -> list[str]:
        return [self.methods[k] for k in np.argsort(-self.scores, kind="stable")]

    def table(self) -> list[dict]:
        """One row per method, best first: score, interval, P(best), win rate, votes it took part in."""
        counts = np.nansum(np.where(np.isnan(self.wins), 0, 1), axis=1)
        rows = []
        for name in self.ranking():
            k = self.methods.index(name)
            shares = self.wins[k][~np.isnan(self.wins[k])]
            rows.append({"method": name, "score": float(self.scores[k]), "low": float(self.low[k]),
                         "high": float(self.high[k]), "p_best": float(self.best[k]),
                         "win_rate": float(shares.mean()) if shares.size else math.nan,
                         "opponents": int(counts[k])})
        return rows


def fit_votes(methods: Sequence[str], votes: Sequence[Vote], *, resamples: int = 1000, seed: int = 0,
              prior: float = PRIOR) -> Fit:
    """Fit ``votes`` over ``methods``, with ``resamples`` bootstrap resamples of the votes (0: no intervals).

    Raises:
        ValueError: fewer than two methods, or a vote naming a method not among ``methods``.
    """
    methods = tuple(methods)
    if len(methods) < 2:
        raise ValueError("A study needs two methods or more.")
    unknown = {m for v in votes for m in (v.left, v.right)} - set(methods)
    if unknown:
        raise ValueError(f"Votes name methods not in the study: {', '.join(sorted(unknown))}.")
    scores = bradley_terry(wins_of(methods, votes), prior)
    n = len(methods)
    low, high, best = scores.copy(), scores.copy(), np.zeros(n)
    apart = np.zeros((n, n), bool)
    if resamples and votes:
        rng = np.random.default_rng(seed)
        pairs = np.array([[methods.index(v.left), methods.index(v.right)] for v in votes])
        outcome = np.array([{LEFT: 0, RIGHT: 1, TIE: 2}[v.choice] for v in votes])
        draws = np.empty((resamples, n))
        for r in range(resamples):
            pick = rng.integers(0, len(votes), len(votes))
            wins = np.zeros((n, n))
            a, b, o = pairs[pick, 0], pairs[pick, 1], outcome[pick]
            np.add.at(wins, (a[o == 0], b[o == 0]), 1.0)
            np.add.at(wins, (b[o == 1], a[o == 1]), 1.0)
            np.add.at(wins, (a[o == 2], b[o == 2]), 0.5)
            np.add.at(wins, (b[o == 2], a[o == 2]), 0.5)
            draws[r] = bradley_terry(wins, prior)
        low, high = np.percentile(draws, 2.5, axis=0), np.percentile(draws, 97.5, axis=0)
        best = np.bincount(np.argmax(draws, axis=1), minlength=n) / resamples
        differences = draws[:, :, None] - draws[:, None, :]
        lo, hi = np.percentile(differences, 2.5, axis=0), np.percentile(differences, 97.5, axis=0)
        apart = (lo > 0) | (hi < 0)
    return Fit(methods, scores, low, high, best, apart, win_matrix(methods, votes), len(votes), resamples)


@dataclass(frozen=True)
class Agreement:
    """How often one judge (a metric, or a rater) chose as the raters did: ``agreed`` of ``compared`` decided votes
    (the judge's own ties count half), with a Wilson 95 % interval."""

    agreed: float
    compared: int
    low: float = field(default=math.nan)
    high: float = field(default=math.nan)

    @property
    def rate(self) -> float:
        return self.agreed / self.compared if self.compared else math.nan


def _wilson(agreed: float, total: int) -> tuple[float, float]:
    if not total:
        return math.nan, math.nan
    p = agreed / total
    z2 = _Z95**2
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = _Z95 * math.sqrt(p * (1 - p) / total + z2 / (4 * total**2)) / (1 + z2 / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def metric_agreement(votes: Sequence[Vote], score: Callable[[str, str], float | None],
                     higher_is_better: bool) -> Agreement:
    """2AFC agreement of a metric with the raters: of the votes that chose a side, the share in which the metric
    (``score(image, method)``) prefers the chosen output; a metric tie counts half, a vote it cannot score (a
    missing or NaN score) is left out."""
    agreed, compared = 0.0, 0
    for vote in votes:
        winner = vote.winner()
        if winner is None:
            continue
        loser = vote.right if winner == vote.left else vote.left
        a, b = score(vote.image, winner), score(vote.image, loser)
        if a is None or b is None or math.isnan(a) or math.isnan(b):
            continue
        compared += 1
        agreed += 0.5 if a == b else float((a > b) == higher_is_better)
    return Agreement(agreed, compared, *_wilson(agreed, compared))


def rater_agreement(votes: Sequence[Vote]) -> Agreement:
    """Agreement between raters: over every two raters who answered the same pair of outputs of one image, the share
    of such answer pairs that agree (a "can't tell" against a side counts half)."""
    by_pair: dict[tuple[str, ...], list[tuple[str, str | None]]] = {}
    for vote in votes:
        key = (vote.image, *sorted((vote.left, vote.right)))
        by_pair.setdefault(key, []).append((vote.rater, vote.winner()))
    agreed, compared = 0.0, 0
    for answers in by_pair.values():
        for i in range(len(answers)):
            for j in range(i + 1, len(answers)):
                (r1, w1), (r2, w2) = answers[i], answers[j]
                if r1 == r2:
                    continue
                compared += 1
                agreed += 1.0 if w1 == w2 else 0.5 if (w1 is None) != (w2 is None) else 0.0
    return Agreement(agreed, compared, *_wilson(agreed, compared))


def per_image(methods: Sequence[str], votes: Sequence[Vote]) -> Mapping[str, np.ndarray]:
    """Each image's Bradley-Terry scores (no intervals: an image has few votes)."""
    images = sorted({v.image for v in votes})
    return {image: bradley_terry(wins_of(methods, [v for v in votes if v.image == image])) for image in images}
