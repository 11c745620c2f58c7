"""``realesrgan-studio evaluate``: score methods on a dataset, resumably (a result store), here or on Ray."""

from __future__ import annotations

import argparse
import time

from tqdm import tqdm

from cli._common import UsageError, emit_err, executor_of, number_table, ray_options, status_line
from core import (
    METRICS,
    PRECISIONS,
    PRESETS,
    EvalHooks,
    EvalSettings,
    ResultDB,
    StudioError,
    default_results_dir,
    list_models,
    open_dataset,
    write_results,
)
from core.degradation import load_degradation
from core.evaluation import BASELINES, check_dataset, coverage_notes, outside_outputs
from core.metrics import GREY_MODES
from core.pipeline import output_folder


def add_parser(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evaluate", help="score methods on a dataset (PSNR / SSIM / NIQE), resumably")
    ev.add_argument("--dataset", default="samples",
                    help="'samples', a DIV2K root, a RealSR-style folder (NAME_HR / NAME_LR4), an HR folder or a zip")
    ev.add_argument("--lr-dir", default=None, help="folder of LR images paired by file stem (0801 / 0801x4, "
                    "DSC_1_x1 / DSC_1_x4, A_HR / A_LR4)")
    ev.add_argument("--lr-only", action="store_true", help="--dataset holds real-world LR images with no ground "
                    "truth (RealSRSet, RealLQ250): upscale them and score no-reference metrics only")
    ev.add_argument("--scale", type=int, default=4)
    ev.add_argument("--methods", default="bicubic,RealESRGAN_x4plus",
                    help="comma-separated: bicubic, bicubic-opencv, lanczos, hr, model names, or NAME=FOLDER: "
                         "outputs made elsewhere (Upscayl, chaiNNer, a paper's results), matched to the images by "
                         "name (0801.png, 0801_out.png) or else by order")
    ev.add_argument("--metrics", default=None, help=f"comma-separated, of: {', '.join(METRICS)} (default: "
                    "psnr,ssim,niqe; niqe with --lr-only)")
    ev.add_argument("--channel", default="y", choices=["y", "rgb"])
    ev.add_argument("--grey", default=GREY_MODES[0], choices=GREY_MODES,
                    help="grey images: read as RGB before scoring (BasicSR and published tables) or scored as-is")
    ev.add_argument("--crop-border", type=int, default=None, help="default: the scale")
    ev.add_argument("--out", default=None, help="folder for results.csv / results.json (default: a dated folder "
                    "in $STUDIO_RESULTS_DIR, else results/ in the repository, where the dashboard lists runs)")
    ev.add_argument("--db", default=None, help="SQLite result store (default: OUT/results.sqlite; without --out, "
                    "the dashboard's store results.sqlite beside the run folders)")
    ev.add_argument("--tile", type=int, default=None)
    ev.add_argument("--device", default="auto")
    ev.add_argument("--precision", default="auto", choices=PRECISIONS)
    ev.add_argument("--degradation", default=None,
                    help=f"make LR with a degradation preset ({', '.join(PRESETS)}) or a JSON/YAML config")
    ev.add_argument("--seed", type=int, default=0, help="base seed of the degradation draws")
    ev.add_argument("-q", "--quiet", action="store_true")
    ray_options(ev)
    ev.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.ray is None and any("://" in str(raw) for raw in (args.dataset, args.lr_dir) if raw):
        raise UsageError(f"{args.dataset}: a dataset at a URI is read by cluster workers; add --ray.")
    try:
        degradation = load_degradation(args.degradation, args.scale) if args.degradation else None
        dataset = open_dataset(args.dataset, args.scale, lr_dir=args.lr_dir, degradation=degradation,
                               seed=args.seed, lr_only=args.lr_only)
    except (StudioError, ValueError) as exc:
        emit_err(f"error: {exc}")
        return 2
    if args.metrics is None:  # the default: every hand-made metric the dataset allows
        metrics = ["niqe"] if dataset.lr_only else ["psnr", "ssim", "niqe"]
    else:
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        emit_err(f"error: unknown metrics {', '.join(unknown)}; known: {', '.join(METRICS)}")
        return 2
    try:  # before a run folder is made
        names, outside = outside_outputs(dataset, methods)
        check_dataset(dataset, names, metrics)
    except StudioError as exc:
        emit_err(f"error: {exc}")
        return 2
    known_models = {info.name for info in list_models(args.weights_dir) if info.available}
    bad = [m for m in names if m not in BASELINES and m != "hr" and m not in known_models and m not in outside]
    if bad:
        emit_err(f"error: unknown or unavailable methods {', '.join(bad)}; baselines: {', '.join(BASELINES)}, hr; "
             f"models: {', '.join(sorted(known_models))}")
        return 2
    settings = EvalSettings(crop_border=args.crop_border, channel=args.channel, grey=args.grey, tile=args.tile,
                            device=args.device, precision=args.precision)
    # default: a dated run folder beside the dashboard's (it lists them), sharing its result store
    out = output_folder(args.out or str(default_results_dir() / time.strftime("%Y%m%d-%H%M%S")))
    db = ResultDB(args.db or (out / "results.sqlite" if args.out else default_results_dir() / "results.sqlite"))
    emit_err(f"{dataset.name}: {len(dataset)} images, x{dataset.scale}, LR from {dataset.lr_source}")
    bar = tqdm(total=len(dataset) * len(methods), unit="step", disable=args.quiet)

    def on_progress(done: int, total: int, label: str) -> None:
        bar.set_postfix_str(label)
        bar.update(done - bar.n)

    try:
        hooks = EvalHooks(progress=on_progress, status=status_line)
        result = executor_of(args).evaluate(dataset, methods, metrics, settings, db=db, hooks=hooks,
                                          weights_dir=args.weights_dir)
    except StudioError as exc:
        emit_err(f"error: {exc}")
        return 2
    finally:
        bar.close()
        db.close()
    csv_path, json_path = write_results(result, out)
    rows = [["method", *(f"{METRICS[m].title} {METRICS[m].arrow}" for m in metrics), "s/image", "images"]]
    notes = coverage_notes(result.counts(), {m: METRICS[m].title for m in metrics})
    for method, means in result.means().items():
        cells = [(f"{means[m]:.4f}" if means[m] is not None else "-") + ("*" if (method, m) in notes else "")
                 for m in metrics]
        rows.append([method, *cells, f"{means['seconds']:.2f}" if means["seconds"] is not None else "-",
                     f"{means['images']:.0f}"])
    number_table(rows)
    for note in notes.values():
        emit_err(f"* {note}")
    errors = [row for row in result.rows if row.error]
    for row in errors:
        emit_err(f"failed {row.image} · {row.method}: {row.error}")
    emit_err(f"{result.computed} computed, {result.reused} reused from {db.path}; wrote {csv_path} and {json_path}")
    return 1 if errors else 0
