"""``realesrgan-studio models``: every model, whether it runs here, its architecture, scale, engine, source."""

from __future__ import annotations

import argparse

from cli._common import text_columns
from core import list_models
from core.engines import cpu_engine_label


def add_parser(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="list models, availability and weight sources")
    models.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = [("name", "available", "arch", "scale", "cpu engine", "source / reason")]
    for info in list_models(args.weights_dir):
        detail = info.source if info.available else info.reason
        rows.append((info.name, "yes" if info.available else "no", info.architecture,
                     f"x{info.scale}" if info.scale else "?", cpu_engine_label(info) if info.available else "-",
                     detail))
    text_columns(rows)
    return 0
