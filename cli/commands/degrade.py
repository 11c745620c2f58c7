"""``realesrgan-studio degrade``: the Real-ESRGAN degradation pipeline on images, seeded."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli._common import emit, emit_err
from core import PRESETS, StudioError
from core.degradation import load_degradation
from core.pipeline import degrade_batch, list_inputs, output_folder


def add_parser(sub: argparse._SubParsersAction) -> None:
    dg = sub.add_parser("degrade", help="apply the Real-ESRGAN degradation pipeline (seeded)")
    dg.add_argument("inputs", nargs="+", help="image files or folders")
    dg.add_argument("-o", "--output", required=True)
    group = dg.add_mutually_exclusive_group()
    group.add_argument("--preset", default="realesrgan", choices=sorted(PRESETS))
    group.add_argument("--config", default=None, help="JSON or YAML configuration file")
    dg.add_argument("--scale", type=int, default=None, help="override the configuration's scale")
    dg.add_argument("--seed", type=int, default=0, help="seed of the first image (+1 per further image)")
    dg.add_argument("--save-stages", action="store_true", help="also write the image after every stage")
    dg.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_degradation(args.config or args.preset, args.scale)
    except (StudioError, ValueError) as exc:
        emit_err(f"error: {exc}")
        return 2
    outdir = output_folder(args.output)
    failures = 0
    files = [f for f in list_inputs(args.inputs, uris=False) if isinstance(f, Path)]
    for event in degrade_batch(files, outdir, config, args.seed, save_stages=args.save_stages, named=args.inputs):
        if event.error:
            failures += 1
            emit_err(f"skipped {event.source}: {event.error}")
        else:
            emit(f"{event.source} -> {event.target} (seed {event.seed}, {config.name})")
    return 1 if failures else (0 if files else 2)
