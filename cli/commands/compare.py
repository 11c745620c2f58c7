"""``realesrgan-studio compare``: up to six methods on one image, written as one self-contained HTML page
(every output at full resolution, the grid, slider, zoom and difference views, the maps and the scores)
that opens from disk with no network."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core import StudioError, Upscaler, read_image
from core.compare import MAX_METHODS, CompareJob, compare_methods, write_comparison
from core.evaluation import BASELINES
from core.metrics import METRICS
from core.pipeline import Ownership, ownership, refuse_replacing_inputs

PAGE_WARNING_MB = 200  # a page this large opens slowly: say so


def add_parser(sub: argparse._SubParsersAction) -> None:
    cp = sub.add_parser("compare", help="compare up to six methods on one image as one offline HTML page")
    cp.add_argument("image", nargs="?", default=None,
                    help="the input image (the LR); leave it out to compare images made elsewhere only (NAME=PATH)")
    cp.add_argument("--methods", default="bicubic,RealESRGAN_x4plus",
                    help=f"comma-separated, at most {MAX_METHODS} with the reference: {', '.join(BASELINES)}, "
                         "model names, or NAME=PATH: an image made elsewhere (or a folder holding one named after "
                         "the input)")
    cp.add_argument("--reference", default=None,
                    help="the HR image of the same scene: shown as a pane, and PSNR / SSIM / the SSIM map against it")
    cp.add_argument("--outscale", type=float, default=None,
                    help="output scale without a reference (default: the first model's)")
    cp.add_argument("--metrics", default=None, help=f"comma-separated, of: {', '.join(METRICS)} (default: every one "
                    "whose weights are here; full-reference ones with --reference)")
    cp.add_argument("-o", "--output", required=True, help="the HTML file to write")
    cp.add_argument("--overwrite", action="store_true", help="replace the output file where it exists")
    cp.add_argument("--device", default="auto", help="auto, cpu, cuda[:N], mps or intel-gpu[:N]")
    cp.add_argument("--tile", type=int, default=None, help="tile size in input pixels (default: automatic)")
    cp.add_argument("--download", action="store_true", help="allow downloading official weights")
    cp.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    cp.set_defaults(func=run)


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.suffix.lower() not in (".html", ".htm"):
        _err(f"error: {out}: the comparison is an HTML page; name it FILE.html.")
        return 2
    try:
        refuse_replacing_inputs([Path(p) for p in (args.image, args.reference) if p], [out])
    except StudioError as exc:
        _err(f"error: {exc}")
        return 2
    owner = ownership(out)
    if owner is not Ownership.MISSING and not args.overwrite:
        _err(f"error: {out} exists; pass --overwrite to replace it.")
        return 2
    if not owner.replaceable:
        _err(f"error: {out} was not written by the studio (it carries no realesrgan-studio mark), so it is not "
             "replaced, even with --overwrite; choose another -o.")
        return 2
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    metrics = None if args.metrics is None else tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    unknown = [m for m in metrics or () if m not in METRICS]
    if unknown:
        _err(f"error: unknown metrics {', '.join(unknown)}; known: {', '.join(METRICS)}")
        return 2
    try:
        image = read_image(args.image) if args.image else None
        reference = read_image(args.reference) if args.reference else None
        job = CompareJob(image, methods, reference, args.outscale, metrics, args.tile,
                         Path(args.image).stem if args.image else "input")
        loaded: dict[str, Upscaler] = {}

        def load(name: str) -> Upscaler:
            if name not in loaded:
                loaded[name] = Upscaler.load(name, device=args.device, weights_dir=args.weights_dir,
                                             allow_download=args.download)
            return loaded[name]

        def progress(done: float, total: int, label: str) -> None:
            if not args.quiet:
                _err(f"[{int(done)}/{total}] {label}")

        comparison = compare_methods(job, load, progress=progress)
        title = f"{Path(args.image).name if args.image else 'Images made elsewhere'}: {', '.join(comparison.outputs)}"
        write_comparison(out, comparison, title=title)
    except (StudioError, ValueError) as exc:
        _err(f"error: {exc}")
        return 2
    except OSError as exc:  # the folder is missing or read-only, or the disk is full: name -o, not a temporary file
        _err(f"error: cannot write {out}: {exc.strerror or exc}.")
        return 2
    size_mb = out.stat().st_size / 1e6
    grid = next(iter(comparison.outputs.values())).shape
    _err(f"wrote {out} ({size_mb:.1f} MB: {len(comparison.outputs)} images at {grid[1]}x{grid[0]}, with maps)")
    if size_mb > PAGE_WARNING_MB:
        _err(f"note: a {size_mb:.0f} MB page opens slowly in a browser; compare a crop to share a smaller one.")
    for method, scores in comparison.scores.items():
        values = " · ".join(f"{name} {value:.4f}" if value is not None else f"{name} —"
                            for name, value in scores.items())
        _err(f"  {method}: {values}")
    return 0
