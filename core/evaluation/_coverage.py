"""What a mean covers: how many images gave a finite value, and how many it leaves out and why.

A mean over the finite values alone is the convention of published tables, but it must say so: a set with one
output identical to its reference (PSNR +inf) used to show the other image's PSNR as the mean of "2 images".
These counts go into ``results.json`` and every place a mean is shown (the CLI, the Benchmark page, paper tables)
prints the same note, from :func:`coverage_notes`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = ["coverage", "coverage_notes", "nonfinite"]

HR = "hr"


def nonfinite(value: float | None) -> str | None:
    """How a value the mean leaves out is named: ``"+inf"``, ``"-inf"``, ``"nan"``; ``None`` for a finite one."""
    if value is None or math.isfinite(value):
        return None
    return "nan" if math.isnan(value) else ("+inf" if value > 0 else "-inf")


def coverage(rows: Iterable, methods: list[str], metrics: Mapping[str, bool]) -> dict[str, dict[str, dict[str, int]]]:
    """Per method and metric (``metrics``: name -> whether it is full-reference): ``{"finite", "+inf", "-inf",
    "nan", "error", "missing"}`` counts over the method's rows (``error``: an error row; ``missing``: a row without
    that value). The ground truth has no full-reference entries: it is the reference."""
    rows = list(rows)
    out: dict[str, dict[str, dict[str, int]]] = {}
    for method in methods:
        mine = [row for row in rows if row.method == method]
        out[method] = {}
        for metric, full_reference in metrics.items():
            if method == HR and full_reference:
                continue
            counts = {"finite": 0, "+inf": 0, "-inf": 0, "nan": 0, "error": 0, "missing": 0}
            for row in mine:
                value = row.metrics.get(metric)
                kind = "error" if row.error else "missing" if value is None else (nonfinite(value) or "finite")
                counts[kind] += 1
            out[method][metric] = counts
    return out


_WHY = {"+inf": "+inf", "-inf": "-inf", "nan": "NaN", "error": "failed (error rows)", "missing": "no value"}


def coverage_notes(counts: Mapping[str, Mapping[str, Mapping[str, int]]],
                   titles: Mapping[str, str]) -> dict[tuple[str, str], str]:
    """``(method, metric)`` -> one line for each mean that leaves out some images, e.g. ``"bicubic · PSNR: mean
    of 2 of 3 images; left out: 1 +inf (an output identical to its reference)"``. Means over every image have
    no note, nor has a metric that gave no value at all (its dash says so)."""
    notes = {}
    for method, per_metric in counts.items():
        for metric, found in per_metric.items():
            total = sum(found.values())
            left = [(kind, found.get(kind, 0)) for kind in _WHY if found.get(kind, 0)]
            if not left or (not found.get("finite") and [kind for kind, _ in left] == ["missing"]):
                continue
            parts = []
            for kind, n in left:
                why = _WHY[kind]
                if kind == "+inf" and metric == "psnr":
                    why += " (an output identical to its reference)"
                parts.append(f"{n} {why}")
            title = titles.get(metric, metric)
            head = (f"mean of {found['finite']} of {total} images" if found.get("finite") else
                    f"no mean: none of its {total} images gave a finite value")
            notes[(method, metric)] = f"{method} · {title}: {head}; left out: {', '.join(parts)}"
    return notes
