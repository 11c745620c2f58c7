"""Studies: people's blind preferences between methods' outputs, and what they say (Bradley-Terry scores with
intervals, P(best), agreement of raters and of every metric with them), with the design that picks each trial."""

from __future__ import annotations

from ._design import Trial, adaptive_trial, round_robin_trial
from ._fit import (
    LEFT,
    RIGHT,
    TIE,
    Agreement,
    Fit,
    Vote,
    bradley_terry,
    fit_votes,
    metric_agreement,
    per_image,
    rater_agreement,
    win_matrix,
)
from ._make import make_study
from ._report import StudyResults, study_results, study_table
from ._store import CHOICES, Study, TrialView, create_study

__all__ = ["CHOICES", "LEFT", "RIGHT", "TIE", "Agreement", "Fit", "Study", "StudyResults", "Trial", "TrialView",
           "Vote", "adaptive_trial", "bradley_terry", "create_study", "fit_votes", "make_study", "metric_agreement",
           "per_image", "rater_agreement", "round_robin_trial", "study_results", "study_table", "win_matrix"]
