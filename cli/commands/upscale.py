"""``realesrgan-studio upscale``: images or folders, here or on a Ray cluster; an output never replaces an input."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from cli._common import UsageError, emit, emit_err, executor_of, ray_options, status_line
from core import ALPHA_MODES, DEFAULT_MODEL, PRECISIONS, EvalHooks, ImageLimits, UpscaleSettings
from core.pipeline import OUT_SUFFIX, BatchJob, ModelRun, list_inputs, output_folder, plan_outputs, run_batch


def add_parser(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("upscale", help="upscale images or folders of images")
    up.add_argument("inputs", nargs="+", help="image files or folders")
    up.add_argument("-o", "--output", required=True,
                    help="output folder; with --ray also a URI (s3://bucket/out) that the workers write to themselves")
    up.add_argument("--model", default=DEFAULT_MODEL)
    up.add_argument("--outscale", type=float, default=None, help="final scale (default: the model's)")
    up.add_argument("--tile", type=int, default=None,
                    help="tile size in input pixels (32-8192); 0 = no tiling where the image fits in memory")
    up.add_argument("--device", default="auto", help="auto, cpu, cuda[:N], mps or intel-gpu[:N] (OpenVINO)")
    up.add_argument("--precision", default="auto", choices=PRECISIONS)
    up.add_argument("--alpha", default="model", choices=ALPHA_MODES)
    up.add_argument("--suffix", default=None,
                    help="added to output file stems: outputs are STEM{SUFFIX}.png (default: none, or _out where the "
                         "output folder holds inputs; there, images named *SUFFIX.* are earlier outputs and are not "
                         "taken as inputs). An output never replaces an input.")
    up.add_argument("--download", action="store_true",
                    help="allow downloading official weights when no local copy exists")
    up.add_argument("--skip-existing", action="store_true",
                    help="leave inputs whose output file exists (resume an interrupted batch)")
    up.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    ray_options(up)
    up.add_argument("--shared-output", action="store_true",
                    help="with --ray: the output folder is at this path on every node (NFS, EFS): each worker writes "
                         "its own outputs there, and no image passes through this process")
    up.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = UpscaleSettings(outscale=args.outscale, tile=args.tile, alpha=args.alpha, limits=ImageLimits())
    except ValueError as exc:
        emit_err(f"error: {exc}")
        return 2
    executor = executor_of(args, download=True)
    files = list_inputs(args.inputs, uris=executor.remote)
    if not files:
        emit_err("No input images found.")
        return 2
    if "://" in args.output and not executor.remote:
        raise UsageError(f"{args.output}: outputs at a URI are written by cluster workers; add --ray, or give a "
                          "folder.")
    dest = args.output.rstrip("/") if "://" in args.output else output_folder(args.output)
    plan = plan_outputs(files, dest, args.suffix, args.inputs)
    if not plan.inputs:
        emit_err(f"No input images found (images named *{args.suffix or OUT_SUFFIX}.* in the output folder are "
             "earlier outputs).")
        return 2
    job = BatchJob(plan, ModelRun(args.model, args.device, args.precision, args.weights_dir), settings,
                   skip_existing=args.skip_existing, shared_output=args.shared_output)
    failures = 0
    images = tqdm(total=len(plan.inputs), unit="image", disable=args.quiet or not executor.remote)
    tiles: dict[str, tqdm] = {}  # the tile bar of the image in work, on this machine

    def on_tiles(done: int, total: int, source: str) -> None:
        if source not in tiles:
            for bar in tiles.values():
                bar.close()
            tiles.clear()
            tiles[source] = tqdm(desc=Path(source).name, unit="tile", leave=False, disable=args.quiet)
        tiles[source].total = total
        tiles[source].update(int(done) - tiles[source].n)  # whole tiles (done moves inside a tile too)

    try:
        for event in run_batch(job, executor, EvalHooks(status=status_line, progress=on_tiles)):
            for bar in tiles.values():
                bar.close()
            tiles.clear()
            images.update(1)
            if event.status == "skipped":
                emit(f"{event.source} -> {event.target} (exists; skipped)")
            elif event.status == "failed":
                failures += 1
                emit_err(f"skipped {event.source}: {event.error}")
            else:
                where = f" on worker {event.worker}" if event.worker is not None else ""
                emit(f"{event.source} -> {event.target}{' (replaced the earlier file)' if event.replaced else ''} "
                     f"({event.size[0]}x{event.size[1]}, {event.seconds:.2f} s{where})")
    finally:
        images.close()
    if failures:
        emit_err(f"{failures} of {len(plan.inputs)} inputs failed.")
    return 1 if failures else 0
