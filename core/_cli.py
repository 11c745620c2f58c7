"""Command-line interface: ``python -m core models | upscale``.

Exit codes: 0 all succeeded, 1 some inputs failed (each reported), 2 usage error or
nothing could run (unknown model, missing weights, bad device).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from tqdm import tqdm

from ._catalogue import DEFAULT_MODEL
from ._errors import StudioError
from ._io import ImageLimits, read_image, write_png
from ._upscaler import Upscaler, UpscaleSettings
from ._weights import list_models

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _cmd_models(args: argparse.Namespace) -> int:
    rows = [("name", "available", "arch", "scale", "source / reason")]
    for info in list_models(args.weights_dir):
        detail = info.source if info.available else info.reason
        rows.append((info.name, "yes" if info.available else "no", info.architecture,
                     f"x{info.scale}" if info.scale else "?", detail))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        _out("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + "  " + row[4])
    return 0


def _inputs(paths: Sequence[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield path


def _cmd_upscale(args: argparse.Namespace) -> int:
    files = list(_inputs(args.inputs))
    if not files:
        _err("No input images found.")
        return 2
    try:
        settings = UpscaleSettings(outscale=args.outscale, tile=args.tile, alpha=args.alpha,
                                   limits=ImageLimits())
    except ValueError as exc:
        _err(f"error: {exc}")
        return 2
    bar_download = None

    def on_download(done: int, total: int | None) -> None:
        nonlocal bar_download
        if bar_download is None:
            bar_download = tqdm(total=total, unit="B", unit_scale=True, desc="download", leave=False)
        bar_download.update(done - bar_download.n)

    try:
        upscaler = Upscaler.load(args.model, device=args.device, precision=args.precision,
                                 weights_dir=args.weights_dir, allow_download=args.download,
                                 download_progress=on_download)
    except StudioError as exc:
        _err(f"error: {exc}")
        return 2
    finally:
        if bar_download is not None:
            bar_download.close()
    _err(upscaler.describe())
    outdir = Path(args.output)
    failures = 0
    for path in files:
        bar = tqdm(desc=path.name, unit="tile", leave=False, disable=args.quiet)

        def on_progress(done: int, total: int, bar: tqdm = bar) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            image = read_image(path, settings.limits)
            result = upscaler.upscale(image, settings, progress=on_progress)
            target = write_png(outdir / f"{path.stem}{args.suffix}.png", result.image)
        except StudioError as exc:
            failures += 1
            _err(f"skipped {path}: {exc}")
            continue
        finally:
            bar.close()
        _out(f"{path} -> {target} ({result.image.shape[1]}x{result.image.shape[0]}, {result.seconds:.2f} s)")
    if failures:
        _err(f"{failures} of {len(files)} inputs failed.")
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Real-ESRGAN studio core.")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="weights folder (default: $STUDIO_WEIGHTS_DIR or ./weights)")
    sub = parser.add_subparsers(dest="command", required=True)
    models = sub.add_parser("models", help="list models, availability and weight sources")
    models.set_defaults(func=_cmd_models)
    up = sub.add_parser("upscale", help="upscale images or folders of images")
    up.add_argument("inputs", nargs="+", help="image files or folders")
    up.add_argument("-o", "--output", required=True, help="output folder")
    up.add_argument("--model", default=DEFAULT_MODEL)
    up.add_argument("--outscale", type=float, default=None, help="final scale (default: the model's)")
    up.add_argument("--tile", type=int, default=None, help="tile size in input pixels; 0 = no tiling")
    up.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or mps")
    up.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    up.add_argument("--alpha", default="model", choices=["model", "bicubic", "drop"])
    up.add_argument("--suffix", default="", help="added to output file stems (e.g. _x4)")
    up.add_argument("--download", action="store_true",
                    help="allow downloading official weights when no local copy exists")
    up.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    up.set_defaults(func=_cmd_upscale)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
