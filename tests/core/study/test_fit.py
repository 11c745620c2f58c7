"""The fit of a study's votes, against choix (MIT) as the reference, and the design that picks the next trial."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from core.study import (
    LEFT,
    RIGHT,
    TIE,
    Vote,
    adaptive_trial,
    bradley_terry,
    fit_votes,
    metric_agreement,
    rater_agreement,
    round_robin_trial,
    win_matrix,
)
from core.study._fit import PRIOR, wins_of

METHODS = ("bicubic", "lanczos", "esrgan", "x4plus")


def _simulated(truth: dict[str, float], count: int, seed: int, ties: float = 0.0) -> list[Vote]:
    rng = np.random.default_rng(seed)
    names = list(truth)
    votes = []
    for k in range(count):
        a, b = rng.choice(len(names), 2, replace=False)
        left, right = names[a], names[b]
        if rng.random() < ties:
            votes.append(Vote(f"img{k % 3}", left, right, TIE, f"r{k % 5}"))
            continue
        p = 1 / (1 + math.exp(-(truth[left] - truth[right])))
        votes.append(Vote(f"img{k % 3}", left, right, LEFT if rng.random() < p else RIGHT, f"r{k % 5}"))
    return votes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_scores_are_choix_maximum_a_posteriori_estimate(seed: int) -> None:
    choix = pytest.importorskip("choix")
    truth = dict(zip(METHODS, np.random.default_rng(seed).normal(0, 1, len(METHODS))))
    votes = _simulated(truth, 300, seed)
    data = [(METHODS.index(v.winner()), METHODS.index(v.right if v.winner() == v.left else v.left)) for v in votes]
    reference = choix.opt_pairwise(len(METHODS), data, alpha=PRIOR, method="Newton-CG", tol=1e-12)
    ours = bradley_terry(wins_of(METHODS, votes))
    np.testing.assert_allclose(ours, reference - reference.mean(), atol=1e-6)
    assert abs(ours.sum()) < 1e-9


def test_a_tie_is_half_a_win_each_way_and_a_clean_sweep_stays_finite() -> None:
    choix = pytest.importorskip("choix")
    votes = [Vote("a", "bicubic", "x4plus", TIE), Vote("a", "x4plus", "bicubic", LEFT),
             Vote("b", "lanczos", "x4plus", RIGHT), Vote("b", "bicubic", "lanczos", TIE)]
    three = ("bicubic", "lanczos", "x4plus")
    # each tie as one win each way and each win as two: the same likelihood, doubled, so the same estimate at 2x prior
    doubled = [(2, 0), (0, 2), (2, 0), (2, 0), (2, 1), (2, 1), (0, 1), (1, 0)]
    reference = choix.opt_pairwise(3, doubled, alpha=2 * PRIOR, method="Newton-CG", tol=1e-12)
    np.testing.assert_allclose(bradley_terry(wins_of(three, votes)), reference - reference.mean(), atol=1e-6)
    sweep = bradley_terry(wins_of(three, [Vote("a", "x4plus", m, LEFT) for m in ("bicubic", "lanczos")] * 20))
    assert np.isfinite(sweep).all() and sweep[2] == sweep.max() and sweep[2] - sweep[0] < 20


def test_the_fit_finds_the_true_order_with_intervals_and_p_best() -> None:
    truth = {"bicubic": -1.0, "lanczos": -0.8, "esrgan": 0.6, "x4plus": 1.2}
    fit = fit_votes(METHODS, _simulated(truth, 800, 3, ties=0.1), resamples=300)
    assert fit.ranking() == ["x4plus", "esrgan", "lanczos", "bicubic"]
    assert (fit.low <= fit.scores).all() and (fit.scores <= fit.high).all()
    assert fit.best.sum() == pytest.approx(1.0) and fit.best[METHODS.index("x4plus")] > 0.9
    k = {m: METHODS.index(m) for m in METHODS}
    assert fit.apart[k["x4plus"], k["bicubic"]] and fit.apart[k["esrgan"], k["lanczos"]]
    assert not fit.apart[k["bicubic"], k["lanczos"]]  # 0.2 apart: 800 votes cannot tell them apart reliably
    table = fit.table()
    assert [r["method"] for r in table] == fit.ranking() and table[0]["win_rate"] > 0.6
    # the same votes, the same table (a fixed seed)
    again = fit_votes(METHODS, _simulated(truth, 800, 3, ties=0.1), resamples=300)
    np.testing.assert_array_equal(again.low, fit.low)


def test_the_win_matrix_counts_ties_half_and_says_where_no_vote_was_cast() -> None:
    votes = [Vote("a", "bicubic", "x4plus", RIGHT), Vote("a", "x4plus", "bicubic", TIE),
             Vote("b", "x4plus", "bicubic", LEFT), Vote("b", "x4plus", "bicubic", RIGHT)]
    matrix = win_matrix(("bicubic", "lanczos", "x4plus"), votes)
    assert matrix[2, 0] == pytest.approx(2.5 / 4) and matrix[0, 2] == pytest.approx(1.5 / 4)
    assert math.isnan(matrix[0, 1]) and math.isnan(matrix[1, 2])


def test_metric_agreement_is_the_share_of_decided_votes_where_the_metric_prefers_the_chosen_output() -> None:
    votes = [Vote("a", "bicubic", "x4plus", RIGHT), Vote("b", "bicubic", "x4plus", RIGHT),
             Vote("c", "bicubic", "x4plus", LEFT), Vote("d", "bicubic", "x4plus", TIE),
             Vote("e", "bicubic", "x4plus", RIGHT)]
    niqe = {("a", "x4plus"): 3.0, ("a", "bicubic"): 6.0, ("b", "x4plus"): 4.0, ("b", "bicubic"): 5.0,
            ("c", "x4plus"): 3.0, ("c", "bicubic"): 7.0, ("d", "x4plus"): 1.0, ("d", "bicubic"): 2.0,
            ("e", "x4plus"): 5.0, ("e", "bicubic"): 5.0}
    found = metric_agreement(votes, lambda image, method: niqe.get((image, method)), higher_is_better=False)
    # a and b agree, c does not, d is a tie (left out), e is the metric's tie (half)
    assert (found.agreed, found.compared) == (2.5, 4) and found.rate == pytest.approx(0.625)
    assert 0 < found.low < found.rate < found.high < 1
    psnr = metric_agreement(votes, lambda image, method: -niqe.get((image, method), math.nan), higher_is_better=True)
    assert psnr.agreed == found.agreed
    unscored = metric_agreement(votes, lambda image, method: None, higher_is_better=True)
    assert unscored.compared == 0 and math.isnan(unscored.rate)


def test_rater_agreement_compares_every_two_raters_on_the_same_pair() -> None:
    votes = [Vote("a", "bicubic", "x4plus", RIGHT, "ann"), Vote("a", "x4plus", "bicubic", LEFT, "bob"),
             Vote("a", "bicubic", "x4plus", TIE, "cat"), Vote("b", "bicubic", "x4plus", LEFT, "ann"),
             Vote("b", "bicubic", "x4plus", RIGHT, "bob"), Vote("b", "bicubic", "x4plus", RIGHT, "bob")]
    found = rater_agreement(votes)
    # image a: ann-bob agree (1), ann-cat and bob-cat half each; image b: ann-bob twice, disagreeing; bob-bob skipped
    assert (found.agreed, found.compared) == (2.0, 5)


def test_the_adaptive_design_covers_every_pair_first_then_asks_what_is_uncertain() -> None:
    rng = np.random.default_rng(0)
    images = ["a", "b"]
    votes: list[Vote] = []
    seen = set()
    for _ in range(6):  # six pairs of four methods: each once before any twice
        image, left, right = adaptive_trial(METHODS, images, votes, rng)
        seen.add(frozenset((left, right)))
        votes.append(Vote(image, left, right, LEFT))
    assert len(seen) == 6
    # x4plus has beaten everything by far, esrgan and lanczos are even: the even pair is asked next
    lopsided = [Vote(i, "x4plus", m, LEFT) for i in images for m in ("bicubic", "lanczos", "esrgan")] * 10
    even = [Vote(i, "esrgan", "lanczos", c) for i in images for c in (LEFT, RIGHT)] * 3
    _, left, right = adaptive_trial(METHODS, images, lopsided + even, rng)
    assert {left, right} != {"x4plus", "bicubic"} and "x4plus" not in (left, right)
    sides = {adaptive_trial(METHODS, images, [], rng)[1] for _ in range(40)}
    assert len(sides) > 1  # sides are drawn at random


def test_round_robin_repeats_every_pair_of_every_image_in_turn() -> None:
    rng = np.random.default_rng(0)
    trials = [round_robin_trial(METHODS, ["a", "b"], [Vote("a", "x", "y", LEFT)] * k, rng) for k in range(12)]
    assert {(t[0], frozenset(t[1:])) for t in trials} == {(i, frozenset(p)) for i in ("a", "b")
                                                         for p in itertools.combinations(METHODS, 2)}


@pytest.mark.slow
def test_the_adaptive_design_needs_clearly_fewer_votes_than_every_pair_in_turn() -> None:
    """Six methods, simulated raters: votes until the fit ranks them right with P(best) >= 0.95 for the best."""
    from benchmarks.study_design import votes_needed

    truth = {f"m{k}": 0.5 * k for k in range(6)}
    images = ["a", "b", "c", "d"]
    adaptive = [votes_needed(adaptive_trial, truth, images, seed, 10, 0.2, resamples=100) for seed in range(5)]
    turns = [votes_needed(round_robin_trial, truth, images, seed, 10, 0.2, resamples=100) for seed in range(5)]
    assert np.median(adaptive) < 0.75 * np.median(turns), (adaptive, turns)


@pytest.mark.slow
def test_simulated_studies_recover_the_ranking_and_their_intervals_cover_the_truth() -> None:
    """Raters voting from known Bradley-Terry scores, on uniformly drawn pairs: at 300 votes among six methods the
    ranking's Kendall tau averages at least 0.9; over 30 studies of 400 votes among four methods, the 95 %
    intervals cover the true (centred) scores about 95 % of the time."""
    from scipy.stats import kendalltau

    six = {f"m{k}": 0.5 * k for k in range(6)}
    taus = []
    for seed in range(5):
        fit = fit_votes(list(six), _simulated(six, 300, seed), resamples=0)
        taus.append(kendalltau(fit.scores, list(six.values())).statistic)
    assert np.mean(taus) >= 0.9, taus
    truth = {"a": -0.9, "b": -0.2, "c": 0.3, "d": 0.8}
    centred = np.array(list(truth.values())) - np.mean(list(truth.values()))
    covered = []
    for seed in range(30):
        fit = fit_votes(list(truth), _simulated(truth, 400, 100 + seed), resamples=200, seed=seed)
        covered += list((fit.low <= centred) & (centred <= fit.high))
    assert 0.88 <= np.mean(covered) <= 1.0, np.mean(covered)
