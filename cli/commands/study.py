"""``realesrgan-studio study``: blind preference studies (create, results, import); ``python -m api.serve`` serves
the rater link that ``create`` prints."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from cli._common import UsageError, emit_err
from core import Upscaler, default_results_dir, open_dataset
from core.study import Study, make_study, study_results, study_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser("study", help="blind preference studies: create one, import votes, read the results")
    actions = st.add_subparsers(dest="action", required=True)
    cr = actions.add_parser("create", help="make a study of methods' outputs on a dataset's images")
    cr.add_argument("--dataset", default="samples", help="as evaluate's --dataset (HR images: LR made by bicubic)")
    cr.add_argument("--lr-dir", default=None)
    cr.add_argument("--lr-only", action="store_true")
    cr.add_argument("--scale", type=int, default=4)
    cr.add_argument("--methods", required=True,
                    help="2 to 6, comma-separated: bicubic, lanczos, model names, or NAME=FOLDER (outputs made "
                         "elsewhere)")
    cr.add_argument("--images", type=int, default=None, help="the first N images only")
    cr.add_argument("--metrics", default=None, help="metrics whose agreement with the raters is reported "
                    "(default: every ready one)")
    cr.add_argument("--trials", type=int, default=None, help="trials per rater (default: every pair once, at most 60)")
    cr.add_argument("--name", default="", help="the study's title")
    cr.add_argument("--device", default="auto")
    cr.set_defaults(func=_create)
    rs = actions.add_parser("results", help="a study's ranking with intervals and the metrics' agreement")
    rs.add_argument("study", help="the study's folder, or its id under $STUDIO_RESULTS_DIR/studies")
    rs.add_argument("--format", default="markdown", choices=["markdown", "latex", "csv", "json"])
    rs.add_argument("--careless", action="store_true", help="keep the votes of raters who failed their checks")
    rs.add_argument("--resamples", type=int, default=1000)
    rs.set_defaults(func=_results)
    im = actions.add_parser("import", help="add votes collected elsewhere (a JSON list of votes); each once")
    im.add_argument("study")
    im.add_argument("votes", help="the JSON file")
    im.set_defaults(func=_import)


def _folder(name: str) -> Path:
    path = Path(name)
    return path if path.exists() else default_results_dir() / "studies" / name


def _create(args: argparse.Namespace) -> int:
    dataset = open_dataset(args.dataset, args.scale, lr_dir=args.lr_dir, lr_only=args.lr_only)
    if args.images:
        dataset = type(dataset)(dataset.name, dataset.scale, dataset.items[: args.images], dataset.lr_source)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    metrics = None if args.metrics is None else [m.strip() for m in args.metrics.split(",") if m.strip()]
    folder = default_results_dir() / "studies" / time.strftime("%Y%m%d-%H%M%S")
    bar = tqdm(total=len(dataset) * len(methods), unit="output", file=sys.stderr)

    def progress(done: int, total: int, label: str) -> None:
        bar.set_postfix_str(label)
        bar.update(done - bar.n)

    try:
        study = make_study(folder, dataset, methods, lambda name: Upscaler.load(name, device=args.device),
                           name=args.name, metrics=metrics, progress=progress, trials_per_rater=args.trials)
    finally:
        bar.close()
    sid = study.folder.name
    emit_err(f"study {sid}: {len(study.images)} images x {len(study.methods)} methods, "
             f"{study.meta('trials_per_rater')} trials per rater, in {study.folder}")
    emit_err("serve it with `python -m api.serve` (--host 0.0.0.0 for raters on other machines), then share")
    sys.stdout.write(f"rater link:  /v1/studies/{sid}/rate?key={study.meta('rater_key')}\n"
                     f"owner link:  /v1/studies/{sid}/results?key={study.meta('owner_key')}\n")
    return 0


def _results(args: argparse.Namespace) -> int:
    study = Study.open(_folder(args.study))
    results = study_results(study, careless=args.careless, resamples=args.resamples)
    if args.format == "json":
        sys.stdout.write(json.dumps(results.payload(), indent=2) + "\n")
    else:
        sys.stdout.write(study_table(results, args.format))
    if results.careless:
        emit_err(f"left out: the votes of {len(results.careless)} rater(s) who failed most of their checks "
                 "(--careless keeps them)")
    emit_err(f"{results.fit.votes} votes from {len(study.raters())} raters; agreement between raters "
             f"{results.raters.rate:.2f} over {results.raters.compared} pairs of answers")
    return 0


def _import(args: argparse.Namespace) -> int:
    study = Study.open(_folder(args.study))
    try:
        records = json.loads(Path(args.votes).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{args.votes}: not a votes file ({exc}).") from exc
    if isinstance(records, dict):
        records = records.get("votes", [])
    added = study.import_votes(records)
    emit_err(f"{added} votes added, {len(records) - added} already there")
    return 0
