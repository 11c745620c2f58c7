"""``realesrgan-studio div2k``: download and extract DIV2K (needs internet; resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from cli._common import emit, emit_err
from core import StudioError
from core.evaluation import download_div2k


def add_parser(sub: argparse._SubParsersAction) -> None:
    dv = sub.add_parser("div2k", help="download and extract DIV2K (needs internet; resumable)")
    dv.add_argument("--dest", required=True)
    dv.add_argument("--scales", type=int, nargs="+", default=[4], choices=[2, 3, 4])
    dv.add_argument("--split", default="valid", choices=["valid", "train"])
    dv.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    bars: dict[str, tqdm] = {}

    def on_progress(name: str, done: int, total: int | None) -> None:
        bar = bars.setdefault(name, tqdm(total=total, unit="B", unit_scale=True, desc=name))
        bar.update(done - bar.n)

    try:
        download_div2k(Path(args.dest), tuple(args.scales), split=args.split, progress=on_progress)
    except StudioError as exc:
        emit_err(f"error: {exc}")
        return 2
    finally:
        for bar in bars.values():
            bar.close()
    emit(f"DIV2K {args.split} ready in {args.dest}")
    return 0
