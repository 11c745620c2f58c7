"""A run's per-method means as the table a paper prints: Markdown, LaTeX (booktabs) or CSV.

Every column says its direction (↑ / ↓); in Markdown and LaTeX the best value of each column is in
bold (every method that ties at the printed precision). The ground truth (``hr``) is listed last
and never counted as best: it is the reference, not a competitor. Values a metric could not give
are a dash. CSV stays numbers only, at full precision, for spreadsheets.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Literal

from ._coverage import coverage_notes

__all__ = ["TABLE_FORMATS", "TableFormat", "results_table"]

TableFormat = Literal["markdown", "latex", "csv"]
TABLE_FORMATS: tuple[TableFormat, ...] = ("markdown", "latex", "csv")
_HR = "hr"


def _digits(meta: dict) -> int:
    return 2 if meta.get("unit") == "dB" else 4


def _header(name: str, meta: dict, latex: bool) -> str:
    arrow = ("$\\uparrow$" if meta.get("higher_is_better") else "$\\downarrow$") if latex else (
        "↑" if meta.get("higher_is_better") else "↓")
    unit = f" ({meta['unit']})" if meta.get("unit") else ""
    return f"{meta.get('title', name)}{unit} {arrow}"


def _best(payload: dict, metric: str, methods: list[str]) -> set[str]:
    """The methods whose mean of ``metric``, printed, is the best of the column (ties all count)."""
    meta, digits = payload["metrics"][metric], _digits(payload["metrics"][metric])
    printed = {m: round(v, digits) for m in methods if m != _HR
               for v in [payload["means"].get(m, {}).get(metric)] if v is not None and math.isfinite(v)}
    if not printed:
        return set()
    best = (max if meta.get("higher_is_better") else min)(printed.values())
    return {m for m, v in printed.items() if v == best}


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"), ("#", "\\#"),
                          ("$", "\\$"), ("{", "\\{"), ("}", "\\}")):
        text = text.replace(char, escaped) if char != "\\" else text.replace(char, "\x00")
    return text.replace("\x00", "\\textbackslash{}")


def _caption(payload: dict) -> str:
    settings = payload.get("settings", {})
    text = (f"{payload['dataset']}, x{payload['scale']}, LR: {payload['lr_source']}; PSNR / SSIM on "
            f"{'Y (BT.601)' if settings.get('channel', 'y') == 'y' else 'RGB'}, crop {settings.get('crop_border')} px")
    return text + ("; cancelled run (partial)" if payload.get("cancelled") else "")


def results_table(payload: dict, fmt: TableFormat = "markdown") -> str:
    """The means of a run (the payload of :func:`~core.evaluation.read_results`) as a ``fmt`` table.

    Raises:
        ValueError: an unknown format.
    """
    if fmt not in TABLE_FORMATS:
        raise ValueError(f"Unknown table format {fmt!r}; use {', '.join(TABLE_FORMATS)}.")
    metrics = list(payload["metrics"])
    methods = [m for m in payload["methods"] if m != _HR] + [m for m in payload["methods"] if m == _HR]
    means = payload["means"]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["method", *(_header(m, payload["metrics"][m], False) for m in metrics), "images"])
        for method in methods:
            values = [means.get(method, {}).get(m) for m in metrics]
            writer.writerow([method, *("" if v is None else repr(float(v)) for v in values),
                             int(means.get(method, {}).get("images") or 0)])
        return out.getvalue()
    latex = fmt == "latex"
    best = {m: _best(payload, m, methods) for m in metrics}
    notes = coverage_notes(payload.get("counts", {}), {m: payload["metrics"][m].get("title", m) for m in metrics})
    mark = "$^\\dagger$" if latex else "†"
    rows = []
    for method in methods:
        cells = []
        for metric in metrics:
            value = means.get(method, {}).get(metric)
            if value is None or not math.isfinite(value):
                cells.append("--" if latex else "–")
                continue
            text = f"{value:.{_digits(payload['metrics'][metric])}f}"
            if method in best[metric]:
                text = f"\\textbf{{{text}}}" if latex else f"**{text}**"
            cells.append(text + (mark if (method, metric) in notes else ""))
        label = "HR (ground truth)" if method == _HR else method
        rows.append([_latex_escape(label) if latex else label.replace("|", "\\|"), *cells])
    headers = ["Method", *(_header(m, payload["metrics"][m], latex) for m in metrics)]
    if latex:
        lines = [f"% {_latex_escape(_caption(payload))}",
                 *(f"% $^\\dagger$ {_latex_escape(n)}" for n in notes.values()),
                 "\\begin{tabular}{l" + "c" * len(metrics) + "}",
                 "\\toprule", " & ".join(headers) + " \\\\", "\\midrule"]
        lines += [" & ".join(row) + " \\\\" for row in rows]
        return "\n".join([*lines, "\\bottomrule", "\\end{tabular}"]) + "\n"
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join([":---", *(["---:"] * len(metrics))]) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join([*lines, "", f"*{_caption(payload)}*", *(f"\n† {n}" for n in notes.values())]) + "\n"
