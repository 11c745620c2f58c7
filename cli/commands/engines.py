"""``realesrgan-studio engines``: which CPU engine runs each model fastest here (measured, kept per machine)."""

from __future__ import annotations

import argparse
from functools import partial

from cli._common import UsageError, emit_err, text_columns
from core import Upscaler, list_models
from core.engines import ENGINES, auto_engine, cpu_engines, forget_engine


def add_parser(sub: argparse._SubParsersAction) -> None:
    en = sub.add_parser("engines", help="measure which CPU engine runs each model fastest here (kept per machine)")
    en.add_argument("models", nargs="*", help="models to measure (default: every available one)")
    en.add_argument("--again", action="store_true", help="measure again, even where a measurement is kept")
    en.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure (or show the measurement of) the CPU engine each model runs with."""
    infos = [info for info in list_models(args.weights_dir) if info.available]
    if args.models:
        known = {info.name: info for info in infos}
        unknown = [name for name in args.models if name not in known]
        if unknown:
            raise UsageError(f"not available here: {', '.join(unknown)} (see `realesrgan-studio models`).")
        infos = [known[name] for name in args.models]
    rows = [("model", "engine", "measured", *ENGINES.names(), "why")]
    for info in infos:
        if args.again:
            forget_engine(info)
        choice = auto_engine(info)
        if choice is None or choice.due():
            choice = Upscaler.load(info.name, device="cpu", precision="fp32", weights_dir=args.weights_dir,
                                   status=partial(_status, info.name)).engine_choice
        if choice is None:
            only = cpu_engines(info)[0]
            rows.append((info.name, only, "-", *("-" for _ in ENGINES.names()), "the only engine that can run it here"))
            continue
        rows.append((info.name, choice.engine, choice.progress(),
                     *(choice.cell(e) for e in ENGINES.names()),
                     f"{choice.reason} ({choice.side} px probe, {choice.threads} threads)"))
    text_columns(rows)
    return 0


def _status(name: str, text: str) -> None:
    emit_err(f"{name}: {text}")
