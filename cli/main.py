"""Command-line interface: ``realesrgan-studio models | metrics | table | engines | upscale | evaluate | degrade |
bench | div2k | compare``
(also ``python -m cli``, and ``python -m core`` as an alias).

Exit codes: 0 all succeeded, 1 some inputs failed (each reported), 2 usage error or
nothing could run (unknown model, missing weights, bad device).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from cli import compare as compare_command
from core import (
    ALPHA_MODES,
    DEFAULT_MODEL,
    METRICS,
    PRECISIONS,
    PRESETS,
    EvalHooks,
    EvalSettings,
    ImageLimits,
    ResultDB,
    StudioError,
    Upscaler,
    UpscaleSettings,
    check_environment,
    default_results_dir,
    list_models,
    open_dataset,
    resolve_device,
    write_file,
    write_results,
)
from core.degradation import load_degradation
from core.engines import ENGINES, auto_engine, cpu_engine_label, cpu_engines, forget_engine
from core.evaluation import (
    BASELINES,
    TABLE_FORMATS,
    check_dataset,
    coverage_notes,
    download_div2k,
    read_results,
    results_table,
)
from core.metrics import GREY_MODES, download_metric
from core.pipeline import (
    OUT_SUFFIX,
    BatchJob,
    ClusterSettings,
    Executor,
    ModelRun,
    degrade_batch,
    executor_for,
    list_inputs,
    output_folder,
    plan_outputs,
    refuse_replacing_inputs,
    run_batch,
)


def _safe(stream, text: str) -> str:
    """``text`` as ``stream`` can print it: a file name that is not valid UTF-8 (or not valid in the
    terminal's encoding) shows its odd bytes as escapes instead of aborting the batch."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    return text.encode(encoding, "backslashreplace").decode(encoding, "replace")


def _out(text: str) -> None:
    sys.stdout.write(_safe(sys.stdout, text) + "\n")


def _err(text: str) -> None:
    sys.stderr.write(_safe(sys.stderr, text) + "\n")


def _status_line(text: str) -> None:
    """A line about a running job (a cluster run's plan, what it waits for), printed above its progress bar."""
    tqdm.write(_safe(sys.stderr, text), file=sys.stderr)


def _cmd_models(args: argparse.Namespace) -> int:
    rows = [("name", "available", "arch", "scale", "cpu engine", "source / reason")]
    for info in list_models(args.weights_dir):
        detail = info.source if info.available else info.reason
        rows.append((info.name, "yes" if info.available else "no", info.architecture,
                     f"x{info.scale}" if info.scale else "?", cpu_engine_label(info) if info.available else "-",
                     detail))
    _columns(rows)
    return 0


def _cmd_metrics(args: argparse.Namespace) -> int:
    """The metric registry as a table; ``--download`` fetches what the named metrics need."""
    for name in [n for n in args.download.split(",") if n]:
        METRICS.get_metric(name)  # an unknown name fails before anything is fetched
    for name in [n for n in args.download.split(",") if n]:
        _err(f"{name}: fetching its weights")
        download_metric(name, progress=None if args.quiet else _bytes_progress(name))
    rows = [("name", "kind", "better", "weights")]
    details = []
    for metric in METRICS.values():
        weights = "-" if not metric.weights else ("here" if metric.ready() else "missing (--download " + metric.name
                                                                                  + ")")
        rows.append((metric.name, metric.kind, "higher" if metric.higher_is_better else "lower", weights))
        licences = "; ".join(dict.fromkeys(w.licence for w in metric.weights))
        details.append((metric.name, licences, metric.reference))
    _columns(rows)
    # licences and references are long: one block per metric, wrapped to the terminal, not a 400-character row
    width = max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))
    _out("")
    for name, licences, reference in details:
        for label, text in (("licence", licences), ("reference", reference)):
            if text:
                _out(textwrap.fill(text, width, initial_indent=f"{name}  {label}: ",
                                   subsequent_indent=" " * (len(name) + 4), break_on_hyphens=False))
    return 0


def _cmd_table(args: argparse.Namespace) -> int:
    """A run's per-method means as a paper table (Markdown, LaTeX or CSV), printed or written to ``-o``."""
    run = Path(args.run)
    payload = read_results(run.parent if run.name == "results.json" else run)
    text = results_table(payload, args.format)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    refuse_replacing_inputs([run / "results.json" if run.is_dir() else run], [out])  # even with --overwrite
    if out.exists() and not args.overwrite:
        raise _UsageError(f"{out} exists; pass --overwrite to replace it.")
    write_file(out, text.encode("utf-8"))
    _err(f"wrote {out}")
    return 0


def _bytes_progress(name: str):  # -> a (done, total) callback that prints every 10 %
    shown = [-1]

    def report(done: int, total: int | None) -> None:
        if total:
            step = int(10 * done / total)
            if step != shown[0]:
                shown[0] = step
                _err(f"{name}: {done / 2**20:.1f} of {total / 2**20:.1f} MB")

    return report


def _columns(rows: list[tuple[str, ...]]) -> None:
    """Text rows as left-aligned columns; the last column is not padded (numbers: :func:`_table`)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        _out("  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths)) + "  " + row[-1])


def _cmd_engines(args: argparse.Namespace) -> int:
    """Measure (or show the measurement of) the CPU engine each model runs with."""
    infos = [info for info in list_models(args.weights_dir) if info.available]
    if args.models:
        known = {info.name: info for info in infos}
        unknown = [name for name in args.models if name not in known]
        if unknown:
            raise _UsageError(f"not available here: {', '.join(unknown)} (see `realesrgan-studio models`).")
        infos = [known[name] for name in args.models]
    rows = [("model", "engine", "measured", *ENGINES.names(), "why")]
    for info in infos:
        if args.again:
            forget_engine(info)
        choice = auto_engine(info)
        if choice is None or choice.due():
            choice = Upscaler.load(info.name, device="cpu", precision="fp32", weights_dir=args.weights_dir,
                                   status=lambda text, name=info.name: _err(f"{name}: {text}")).engine_choice
        if choice is None:
            only = cpu_engines(info)[0]
            rows.append((info.name, only, "-", *("-" for _ in ENGINES.names()), "the only engine that can run it here"))
            continue
        rows.append((info.name, choice.engine, choice.progress(),
                     *(choice.cell(e) for e in ENGINES.names()),
                     f"{choice.reason} ({choice.side} px probe, {choice.threads} threads)"))
    _columns(rows)
    return 0


class _UsageError(Exception):
    """A command-line mistake: the message is printed and the command exits with 2."""


def _executor(args: argparse.Namespace, *, download: bool = False) -> Executor:
    """Where the work runs: this process, or the Ray cluster of ``--ray`` (Ray imported only then)."""
    cluster = None
    if args.ray is not None:
        cluster = ClusterSettings(address=args.ray or None, workers=args.workers, threads=args.threads,
                                  gpus_per_worker=args.gpus_per_worker, engine=args.engine)
    return executor_for(cluster, args.engine, allow_download=download and args.download,
                        download_progress=_download_bar() if download else None)


def _download_bar() -> Callable[[int, int | None], None]:
    """A progress bar for a model's download, made on its first bytes."""
    bar = None

    def on_download(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="B", unit_scale=True, desc="download", leave=False)
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()

    return on_download


def _ray_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="run on a Ray cluster: 'auto' (RAY_ADDRESS), host:6379, or nothing "
                             "to start a local Ray on this machine")
    parser.add_argument("--workers", type=int, default=None,
                        help="with --ray: actors at most (default: CPU workers, CPUs / --threads; GPU workers, as "
                             "many as the work can use, started as GPU nodes join)")
    parser.add_argument("--threads", type=int, default=1, help="with --ray: CPU threads per CPU worker")
    parser.add_argument("--gpus-per-worker", type=float, default=None, metavar="N",
                        help="with --ray: GPUs each worker asks the cluster for, so an autoscaler starts GPU nodes "
                             "(default: 1 with --device cuda, or with auto where the cluster has GPUs; 0: CPU workers)")
    parser.add_argument("--engine", default=None, choices=ENGINES.choices(),
                        help="the network engine (default: $STUDIO_ENGINE, else auto: the one measured fastest "
                             "here; with --ray, auto is torch, so every node computes the same numbers)")


def _cmd_upscale(args: argparse.Namespace) -> int:
    try:
        settings = UpscaleSettings(outscale=args.outscale, tile=args.tile, alpha=args.alpha, limits=ImageLimits())
    except ValueError as exc:
        _err(f"error: {exc}")
        return 2
    executor = _executor(args, download=True)
    files = list_inputs(args.inputs, uris=executor.remote)
    if not files:
        _err("No input images found.")
        return 2
    if "://" in args.output and not executor.remote:
        raise _UsageError(f"{args.output}: outputs at a URI are written by cluster workers; add --ray, or give a "
                          "folder.")
    dest = args.output.rstrip("/") if "://" in args.output else output_folder(args.output)
    plan = plan_outputs(files, dest, args.suffix, args.inputs)
    if not plan.inputs:
        _err(f"No input images found (images named *{args.suffix or OUT_SUFFIX}.* in the output folder are "
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
        for event in run_batch(job, executor, EvalHooks(status=_status_line, progress=on_tiles)):
            for bar in tiles.values():
                bar.close()
            tiles.clear()
            images.update(1)
            if event.status == "skipped":
                _out(f"{event.source} -> {event.target} (exists; skipped)")
            elif event.status == "failed":
                failures += 1
                _err(f"skipped {event.source}: {event.error}")
            else:
                where = f" on worker {event.worker}" if event.worker is not None else ""
                _out(f"{event.source} -> {event.target}{' (replaced the earlier file)' if event.replaced else ''} "
                     f"({event.size[0]}x{event.size[1]}, {event.seconds:.2f} s{where})")
    finally:
        images.close()
    if failures:
        _err(f"{failures} of {len(plan.inputs)} inputs failed.")
    return 1 if failures else 0


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths))]
        _out("  ".join(cells))


def _cmd_evaluate(args: argparse.Namespace) -> int:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.ray is None and any("://" in str(raw) for raw in (args.dataset, args.lr_dir) if raw):
        raise _UsageError(f"{args.dataset}: a dataset at a URI is read by cluster workers; add --ray.")
    try:
        degradation = load_degradation(args.degradation, args.scale) if args.degradation else None
        dataset = open_dataset(args.dataset, args.scale, lr_dir=args.lr_dir, degradation=degradation,
                               seed=args.seed, lr_only=args.lr_only)
    except (StudioError, ValueError) as exc:
        _err(f"error: {exc}")
        return 2
    if args.metrics is None:  # the default: every hand-made metric the dataset allows
        metrics = ["niqe"] if dataset.lr_only else ["psnr", "ssim", "niqe"]
    else:
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        _err(f"error: unknown metrics {', '.join(unknown)}; known: {', '.join(METRICS)}")
        return 2
    check_dataset(dataset, methods, metrics)  # before a run folder is made
    known_models = {info.name for info in list_models(args.weights_dir) if info.available}
    bad = [m for m in methods if m not in BASELINES and m != "hr" and m not in known_models]
    if bad:
        _err(f"error: unknown or unavailable methods {', '.join(bad)}; baselines: {', '.join(BASELINES)}, hr; "
             f"models: {', '.join(sorted(known_models))}")
        return 2
    settings = EvalSettings(crop_border=args.crop_border, channel=args.channel, grey=args.grey, tile=args.tile,
                            device=args.device, precision=args.precision)
    # default: a dated run folder beside the dashboard's (it lists them), sharing its result store
    out = output_folder(args.out or str(default_results_dir() / time.strftime("%Y%m%d-%H%M%S")))
    db = ResultDB(args.db or (out / "results.sqlite" if args.out else default_results_dir() / "results.sqlite"))
    _err(f"{dataset.name}: {len(dataset)} images, x{dataset.scale}, LR from {dataset.lr_source}")
    bar = tqdm(total=len(dataset) * len(methods), unit="step", disable=args.quiet)

    def on_progress(done: int, total: int, label: str) -> None:
        bar.set_postfix_str(label)
        bar.update(done - bar.n)

    try:
        hooks = EvalHooks(progress=on_progress, status=_status_line)
        result = _executor(args).evaluate(dataset, methods, metrics, settings, db=db, hooks=hooks,
                                          weights_dir=args.weights_dir)
    except StudioError as exc:
        _err(f"error: {exc}")
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
    _table(rows)
    for note in notes.values():
        _err(f"* {note}")
    errors = [row for row in result.rows if row.error]
    for row in errors:
        _err(f"failed {row.image} · {row.method}: {row.error}")
    _err(f"{result.computed} computed, {result.reused} reused from {db.path}; wrote {csv_path} and {json_path}")
    return 1 if errors else 0


def _cmd_degrade(args: argparse.Namespace) -> int:
    try:
        config = load_degradation(args.config or args.preset, args.scale)
    except (StudioError, ValueError) as exc:
        _err(f"error: {exc}")
        return 2
    outdir = output_folder(args.output)
    failures = 0
    files = [f for f in list_inputs(args.inputs, uris=False) if isinstance(f, Path)]
    for event in degrade_batch(files, outdir, config, args.seed, save_stages=args.save_stages, named=args.inputs):
        if event.error:
            failures += 1
            _err(f"skipped {event.source}: {event.error}")
        else:
            _out(f"{event.source} -> {event.target} (seed {event.seed}, {config.name})")
    return 1 if failures else (0 if files else 2)


def _cmd_bench(args: argparse.Namespace) -> int:
    from cli.bench import BenchPlan, format_table, rows_to_json, run_bench

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        device = resolve_device(args.device).device
        sizes_text = args.sizes or ("256,512,1024" if device.startswith("cuda") else "64,128")
        sizes = [int(s) for s in sizes_text.split(",") if s.strip()]
        engines = [e.strip() for e in args.engines.split(",") if e.strip()]
        repeats = args.repeats
        if repeats < 1 or args.rounds < 1:
            raise ValueError("--repeats and --rounds must be at least 1")
        if args.quick:
            sizes, repeats = [24], 1
        plan = BenchPlan(models, sizes, engines, device=device, repeats=repeats,
                         rounds=1 if args.quick else args.rounds, subprocesses=not args.in_process,
                         weights_dir=args.weights_dir)
        rows, info = run_bench(plan, log=None if args.quiet else _err)
    except (StudioError, ValueError) as exc:
        _err(f"error: {exc}")
        return 2
    _out(f"# {info['cpu']} · {info['threads']} threads · torch {info['torch']} · ncnn {info['ncnn']} · "
         f"device {info['device']}" + (f" · {info['gpu']}" if "gpu" in info else "")
         + (f" · rough CPU peak {info['rough_cpu_peak_gflops']:.0f} GFLOP/s" if info["rough_cpu_peak_gflops"] else ""))
    _out(format_table(rows))
    out = Path(args.out) if args.out else default_results_dir() / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_file(out, rows_to_json(rows, info))
    _err(f"wrote {out}")
    return 0 if rows else 1


def _cmd_div2k(args: argparse.Namespace) -> int:
    bars: dict[str, tqdm] = {}

    def on_progress(name: str, done: int, total: int | None) -> None:
        bar = bars.setdefault(name, tqdm(total=total, unit="B", unit_scale=True, desc=name))
        bar.update(done - bar.n)

    try:
        download_div2k(Path(args.dest), tuple(args.scales), split=args.split, progress=on_progress)
    except StudioError as exc:
        _err(f"error: {exc}")
        return 2
    finally:
        for bar in bars.values():
            bar.close()
    _out(f"DIV2K {args.split} ready in {args.dest}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="realesrgan-studio",
                                     description="Real-ESRGAN studio: models, upscale, evaluate, degrade, bench.")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="weights folder (default: $STUDIO_WEIGHTS_DIR or ./weights)")
    sub = parser.add_subparsers(dest="command", required=True)
    models = sub.add_parser("models", help="list models, availability and weight sources")
    models.set_defaults(func=_cmd_models)
    mt = sub.add_parser("metrics", help="list the metrics, whether their weights are here, and fetch them")
    mt.add_argument("--download", default="", metavar="NAMES",
                    help="comma-separated metrics whose weights to fetch (needs internet)")
    mt.add_argument("-q", "--quiet", action="store_true", help="no download progress")
    mt.set_defaults(func=_cmd_metrics)
    tb = sub.add_parser("table", help="a run's means as a paper table: Markdown, LaTeX or CSV, best in bold")
    tb.add_argument("run", help="a run folder (results/NAME) or its results.json")
    tb.add_argument("--format", default="markdown", choices=TABLE_FORMATS)
    tb.add_argument("-o", "--output", default=None, help="write to this file (default: print)")
    tb.add_argument("--overwrite", action="store_true", help="replace the output file where it exists")
    tb.set_defaults(func=_cmd_table)
    compare_command.add_parser(sub)
    en = sub.add_parser("engines", help="measure which CPU engine runs each model fastest here (kept per machine)")
    en.add_argument("models", nargs="*", help="models to measure (default: every available one)")
    en.add_argument("--again", action="store_true", help="measure again, even where a measurement is kept")
    en.set_defaults(func=_cmd_engines)
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
    _ray_options(up)
    up.add_argument("--shared-output", action="store_true",
                    help="with --ray: the output folder is at this path on every node (NFS, EFS): each worker writes "
                         "its own outputs there, and no image passes through this process")
    up.set_defaults(func=_cmd_upscale)
    ev = sub.add_parser("evaluate", help="score methods on a dataset (PSNR / SSIM / NIQE), resumably")
    ev.add_argument("--dataset", default="samples",
                    help="'samples', a DIV2K root, a RealSR-style folder (NAME_HR / NAME_LR4), an HR folder or a zip")
    ev.add_argument("--lr-dir", default=None, help="folder of LR images paired by file stem (0801 / 0801x4, "
                    "DSC_1_x1 / DSC_1_x4, A_HR / A_LR4)")
    ev.add_argument("--lr-only", action="store_true", help="--dataset holds real-world LR images with no ground "
                    "truth (RealSRSet, RealLQ250): upscale them and score no-reference metrics only")
    ev.add_argument("--scale", type=int, default=4)
    ev.add_argument("--methods", default="bicubic,RealESRGAN_x4plus",
                    help="comma-separated: bicubic, bicubic-opencv, lanczos, hr, or model names")
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
    _ray_options(ev)
    ev.set_defaults(func=_cmd_evaluate)
    dg = sub.add_parser("degrade", help="apply the Real-ESRGAN degradation pipeline (seeded)")
    dg.add_argument("inputs", nargs="+", help="image files or folders")
    dg.add_argument("-o", "--output", required=True)
    group = dg.add_mutually_exclusive_group()
    group.add_argument("--preset", default="realesrgan", choices=sorted(PRESETS))
    group.add_argument("--config", default=None, help="JSON or YAML configuration file")
    dg.add_argument("--scale", type=int, default=None, help="override the configuration's scale")
    dg.add_argument("--seed", type=int, default=0, help="seed of the first image (+1 per further image)")
    dg.add_argument("--save-stages", action="store_true", help="also write the image after every stage")
    dg.set_defaults(func=_cmd_degrade)
    bn = sub.add_parser("bench", help="benchmark our upscaler against plain PyTorch and ncnn")
    bn.add_argument("--models", default="RealESRGAN_x4plus,realesr-animevideov3")
    bn.add_argument("--sizes", default=None,
                    help="LR sizes (square); default 64,128 (CPU) or 256,512,1024 (--device cuda)")
    bn.add_argument("--engines", default="ours,pytorch,ncnn",
                    help="ours, pytorch, ncnn, ncnn-vulkan, openvino; variants of ours with colon options, e.g. "
                         "ours:batch=4, ours:tile=256, ours:compile=reduce-overhead, ours:nchw, ours:torch, "
                         "ours:openvino, ours:bf16")
    bn.add_argument("--repeats", type=int, default=3, help="timed runs per engine process, after a warm-up")
    bn.add_argument("--rounds", type=int, default=1,
                    help="engines take turns this many times (fresh processes); times are pooled")
    bn.add_argument("--device", default="auto")
    bn.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (a smoke test)")
    bn.add_argument("--in-process", action="store_true", help="no subprocess per engine (peak RSS is shared)")
    bn.add_argument("--out", default=None, help="JSON file (default: $STUDIO_RESULTS_DIR/bench-<time>.json, "
                    "else results/ in the repository)")
    bn.add_argument("-q", "--quiet", action="store_true")
    bn.set_defaults(func=_cmd_bench)
    dv = sub.add_parser("div2k", help="download and extract DIV2K (needs internet; resumable)")
    dv.add_argument("--dest", required=True)
    dv.add_argument("--scales", type=int, nargs="+", default=[4], choices=[2, 3, 4])
    dv.add_argument("--split", default="valid", choices=["valid", "train"])
    dv.set_defaults(func=_cmd_div2k)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # progress bars print file names too
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    try:
        check_environment()  # a wrong STUDIO_* variable is one line before anything runs
        return int(args.func(args))
    except _UsageError as exc:
        _err(f"error: {exc}")
        return 2
    except StudioError as exc:  # one no command handled (a corrupt result store): nothing could run
        _err(f"error: {exc}")
        return 2
    except sqlite3.Error as exc:
        _err(f"error: the result store cannot be used ({exc}); pass --db with a writable path.")
        return 2
    except OSError as exc:  # a file system failure no command handled: say what and where
        _err(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return 1
    except KeyboardInterrupt:
        _err("interrupted; finished outputs are kept.")
        return 130
