"""``realesrgan-studio metrics``: the metric registry (kind, direction, weights, licences), and ``--download``."""

from __future__ import annotations

import argparse
import shutil
import textwrap

from cli._common import bytes_progress, emit, emit_err, text_columns
from core import METRICS
from core.metrics import download_metric


def add_parser(sub: argparse._SubParsersAction) -> None:
    mt = sub.add_parser("metrics", help="list the metrics, whether their weights are here, and fetch them")
    mt.add_argument("--download", default="", metavar="NAMES",
                    help="comma-separated metrics whose weights to fetch (needs internet)")
    mt.add_argument("-q", "--quiet", action="store_true", help="no download progress")
    mt.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The metric registry as a table; ``--download`` fetches what the named metrics need."""
    for name in [n for n in args.download.split(",") if n]:
        METRICS.get_metric(name)  # an unknown name fails before anything is fetched
    for name in [n for n in args.download.split(",") if n]:
        emit_err(f"{name}: fetching its weights")
        download_metric(name, progress=None if args.quiet else bytes_progress(name))
    rows = [("name", "kind", "better", "weights")]
    details = []
    for metric in METRICS.values():
        weights = "-" if not metric.weights else ("here" if metric.ready() else "missing (--download " + metric.name
                                                                                  + ")")
        rows.append((metric.name, metric.kind, "higher" if metric.higher_is_better else "lower", weights))
        licences = "; ".join(dict.fromkeys(w.licence for w in metric.weights))
        details.append((metric.name, licences, metric.reference))
    text_columns(rows)
    # licences and references are long: one block per metric, wrapped to the terminal, not a 400-character row
    width = max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))
    emit("")
    for name, licences, reference in details:
        for label, text in (("licence", licences), ("reference", reference)):
            if text:
                emit(textwrap.fill(text, width, initial_indent=f"{name}  {label}: ",
                                   subsequent_indent=" " * (len(name) + 4), break_on_hyphens=False))
    return 0
