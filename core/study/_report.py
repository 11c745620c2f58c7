"""A study's results as a paper uses them: the fit, the metrics' agreement with the raters, the raters' agreement
with each other, the careless raters left out, as one JSON-ready payload and as Markdown, LaTeX or CSV tables."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import SettingsError
from ..metrics import METRICS
from ._fit import Agreement, Fit, fit_votes, metric_agreement, per_image, rater_agreement
from ._store import Study, is_careless

__all__ = ["StudyResults", "study_results", "study_table"]


@dataclass(frozen=True)
class StudyResults:
    fit: Fit
    metrics: dict[str, Agreement]  # metric -> its 2AFC agreement with the raters
    raters: Agreement
    careless: tuple[str, ...]  # raters whose votes were left out
    per_image: dict[str, dict[str, float]]

    def payload(self) -> dict:
        """JSON-ready (no NaN: ``None``)."""
        def clean(value: float) -> float | None:
            return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

        fit = self.fit
        return {"votes": fit.votes, "resamples": fit.resamples, "ranking": fit.table(),
                "win_rates": {a: {b: clean(float(fit.wins[i, j])) for j, b in enumerate(fit.methods) if i != j}
                              for i, a in enumerate(fit.methods)},
                "apart": [[a, b] for i, a in enumerate(fit.methods) for j, b in enumerate(fit.methods)
                          if i < j and fit.apart[i, j]],
                "metrics": {m: {"agreement": clean(a.rate), "low": clean(a.low), "high": clean(a.high),
                                "votes": a.compared} for m, a in self.metrics.items()},
                "raters": {"agreement": clean(self.raters.rate), "low": clean(self.raters.low),
                           "high": clean(self.raters.high), "pairs": self.raters.compared},
                "careless": list(self.careless), "per_image": self.per_image}


def study_results(study: Study, *, careless: bool = False, resamples: int = 1000, seed: int = 0) -> StudyResults:
    """Fit ``study``'s votes (a careless rater's left out unless ``careless``), with every stored metric's agreement."""
    votes = study.votes(careless=careless)
    methods = study.methods
    fit = fit_votes(methods, votes, resamples=resamples, seed=seed)
    scores = study.scores()
    names = sorted({metric for values in scores.values() for metric in values}, key=list(METRICS).index)
    def scorer(metric: str) -> Callable[[str, str], float | None]:
        return lambda image, method: scores.get((image, method), {}).get(metric)

    agreement = {m: metric_agreement(votes, scorer(m), METRICS[m].higher_is_better) for m in names}
    flagged = () if careless else tuple(r for r, (f, t) in study.checks().items() if is_careless(f, t))
    images = {image: dict(zip(methods, map(float, values))) for image, values in per_image(methods, votes).items()}
    return StudyResults(fit, agreement, rater_agreement(votes), flagged, images)


def _number(value: float, digits: int = 2) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def study_table(results: StudyResults, fmt: str = "markdown") -> str:
    """The ranking (score with its 95 % interval, P(best), win rate) and the metrics' agreement, as ``markdown``,
    ``latex`` or ``csv``. Raises: SettingsError: another format."""
    rows = results.fit.table()
    head = ["Method", "BT score", "95 % interval", "P(best)", "Win rate"]
    body = [[r["method"], _number(r["score"]), f"[{_number(r['low'])}, {_number(r['high'])}]",
             _number(r["p_best"]), _number(r["win_rate"])] for r in rows]
    agree_head = ["Metric", "2AFC agreement", "95 % interval", "Votes"]
    agree = [[METRICS[m].title, _number(a.rate, 3), f"[{_number(a.low, 3)}, {_number(a.high, 3)}]", str(a.compared)]
             for m, a in sorted(results.metrics.items(), key=lambda item: -(item[1].rate if item[1].compared else -1))]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerows([head, *body, [], agree_head, *agree])
        return out.getvalue()
    if fmt == "markdown":
        def table(h: list[str], b: list[list[str]]) -> str:
            lines = ["| " + " | ".join(h) + " |", "|" + "---|" * len(h)]
            return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in b)])
        note = (f"{results.fit.votes} votes; Bradley-Terry scores with bootstrap 95 % intervals "
                f"({results.fit.resamples} resamples)")
        return table(head, body) + f"\n\n{note}\n\n" + (table(agree_head, agree) + "\n" if agree else "")
    if fmt == "latex":
        def latex(h: list[str], b: list[list[str]]) -> str:
            escape = str.maketrans({"%": r"\%", "_": r"\_", "&": r"\&", "#": r"\#"})
            lines = [r"\begin{tabular}{l" + "r" * (len(h) - 1) + "}", r"\toprule",
                     " & ".join(c.translate(escape) for c in h) + r" \\", r"\midrule",
                     *(" & ".join(c.translate(escape).replace("—", "--") for c in r) + r" \\" for r in b),
                     r"\bottomrule", r"\end{tabular}"]
            return "\n".join(lines)
        return latex(head, body) + "\n\n" + (latex(agree_head, agree) + "\n" if agree else "")
    raise SettingsError(f"A study table is markdown, latex or csv, not {fmt!r}.")
