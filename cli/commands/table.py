"""``realesrgan-studio table``: a run's per-method means as a paper table (Markdown, LaTeX or CSV)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli._common import UsageError, emit_err
from core import write_file
from core.evaluation import TABLE_FORMATS, read_results, results_table
from core.pipeline import refuse_replacing_inputs


def add_parser(sub: argparse._SubParsersAction) -> None:
    tb = sub.add_parser("table", help="a run's means as a paper table: Markdown, LaTeX or CSV, best in bold")
    tb.add_argument("run", help="a run folder (results/NAME) or its results.json")
    tb.add_argument("--format", default="markdown", choices=TABLE_FORMATS)
    tb.add_argument("-o", "--output", default=None, help="write to this file (default: print)")
    tb.add_argument("--overwrite", action="store_true", help="replace the output file where it exists")
    tb.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """A run's per-method means as a paper table (Markdown, LaTeX or CSV), printed or written to ``-o``."""
    source = Path(args.run)
    payload = read_results(source.parent if source.name == "results.json" else source)
    text = results_table(payload, args.format)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    refuse_replacing_inputs([source / "results.json" if source.is_dir() else source], [out])  # even with --overwrite
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it.")
    write_file(out, text.encode("utf-8"))
    emit_err(f"wrote {out}")
    return 0
