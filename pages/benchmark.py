"""Benchmark: score methods on a dataset in a background job, browse and export the results."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
import time
import weakref
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import streamlit as st

import core
from core import errors, evaluation
from core.degradation import load_degradation
from core.metrics import GREY_MODES
from core.pipeline import ClusterSettings, executor_for
from dashboard import cache, charts
from dashboard.errors import show_error
from dashboard.jobs import follow_job, start_job
from dashboard.loading import load_upscaler
from dashboard.pickers import UPLOAD_TYPES
from dashboard.slider import comparison
from dashboard.texts import METRICS_EXPLAINED, metric_header

SOURCES = ["Bundled samples", "Folder: DIV2K or HR images", "Uploaded HR / LR pairs",
           "Folder: real-world LR only (no HR)"]
GREY_LABELS = {"rgb": "as RGB (BasicSR)", "as-is": "as is"}


class _UploadFolder:
    """A session's uploaded HR / LR pairs on disk, one sub-folder per set of uploads.

    The dataset is exactly the current uploads: a new set gets its own folder, and earlier sets are
    removed unless a benchmark of this session may still read them. The whole folder is removed when
    the session ends (its state is dropped) or the server exits.
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="studio-upload-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.root, ignore_errors=True)

    def current(self, hr: list, lr: list, *, prune: bool) -> Path:
        digest = hashlib.sha256()
        for folder, files in (("hr", hr), ("lr", lr)):
            for upload in files:
                digest.update(f"{folder}/{upload.name}/{upload.size}/{upload.file_id}".encode())
        folder = self.root / digest.hexdigest()[:16]
        if not folder.is_dir():
            for upload in hr:
                core.write_file(folder / "hr" / Path(upload.name).name, upload.getvalue())
            for name, upload in _lr_names(hr, lr).items():
                core.write_file(folder / "lr" / name, upload.getvalue())
            (folder / "hr").mkdir(parents=True, exist_ok=True)
        if prune:
            for other in self.root.iterdir():
                if other != folder:
                    shutil.rmtree(other, ignore_errors=True)
        return folder


def _stem(name: str) -> str:
    return Path(name).stem


def _by_order(hr: list, lr: list) -> bool:
    """Whether LR uploads pair with the HR ones by order, not by name: as many of each, and names that do not
    pair (``pair_hr.png`` / ``pair_lr.png``)."""
    if not lr or len(hr) != len(lr):
        return False
    hr_stems = {_stem(u.name) for u in hr}
    return not all(_stem(u.name) in hr_stems or re.sub(r"(_LR\d+|_?x\d+)$", "", _stem(u.name), flags=re.I)
                   in hr_stems for u in lr)


def _lr_names(hr: list, lr: list) -> dict[str, object]:
    """The file name each LR upload is stored under: its own, or, paired by order, its HR partner's."""
    if _by_order(hr, lr):
        return {Path(h.name).stem + Path(low.name).suffix: low for h, low in zip(hr, lr)}
    return {Path(low.name).name: low for low in lr}


def _private(text: str, folder: Path) -> str:
    """A message about the uploads without the server's temporary paths."""
    for path, words in ((folder / "hr", "the HR uploads"), (folder / "lr", "the LR uploads"), (folder, "the uploads")):
        text = text.replace(str(path), words)
    return text


def _uploaded_pairs(scale: int) -> tuple[str, str | None, str] | None:
    """The uploads on disk: the HR folder, the LR folder (None: made by bicubic), and a name for the set."""
    hr_files = st.file_uploader("HR images", type=UPLOAD_TYPES, accept_multiple_files=True, key="bench_hr")
    lr_files = st.file_uploader("LR images (same names, optionally with an xN suffix)", type=UPLOAD_TYPES,
                                accept_multiple_files=True, key="bench_lr")
    if not hr_files:
        st.info("Upload HR images (and their LR partners, or leave LR empty to make them with bicubic).")
        return None
    if "bench_uploads" not in st.session_state:
        st.session_state.bench_uploads = _UploadFolder()
    # a running benchmark may still read an earlier set: that one goes once it has finished
    folder = st.session_state.bench_uploads.current(hr_files, lr_files or [],
                                                    prune="bench_job" not in st.session_state)
    if _by_order(hr_files, lr_files or []):
        st.caption("The LR names do not match the HR names, so they are paired in upload order: " + ", ".join(
            f"{h.name} ↔ {low.name}" for h, low in zip(hr_files, lr_files)))
    names = [u.name for u in hr_files]
    label = "uploads: " + ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return str(folder / "hr"), (str(folder / "lr") if lr_files else None), label


def _dataset_form() -> tuple[dict, evaluation.Dataset] | None:
    source = st.radio("Dataset", SOURCES, horizontal=True, key="bench_source")
    cols = st.columns(3)
    scale = cols[0].selectbox("Scale", [2, 3, 4], index=2, key="bench_scale")
    lr_mode = cols[1].selectbox("LR images (when the dataset has none)", ["MATLAB bicubic", *core.PRESETS],
                                key="bench_lr_mode", help="or one of the degradation presets")
    seed = cols[2].number_input("Degradation seed", 0, 2**31 - 1, 0, key="bench_seed")
    spec: dict = {"source": "samples", "scale": scale, "lr_dir": None, "degradation": None, "seed": int(seed)}
    if lr_mode != "MATLAB bicubic":
        spec["degradation"] = lr_mode
    if source == SOURCES[1]:
        path = st.text_input("Folder path (a DIV2K root with its zips or folders, or a folder of HR images)",
                             key="bench_path", help="Or a folder in an object store, such as s3://bucket/DIV2K "
                             "(extracted, not zips), read through the cluster extra's pyarrow with the AWS_* "
                             "settings of the dashboard's environment; on a cluster, each worker reads its images.")
        with st.expander("Download DIV2K (needs internet)"):
            _div2k_download()
        if not path:
            return None
        spec["source"] = path
    elif source == SOURCES[2]:
        pair = _uploaded_pairs(scale)
        if pair is None:
            return None
        spec["source"], spec["lr_dir"], spec["name"] = pair
    elif source == SOURCES[3]:
        path = st.text_input("Folder path (real-world LR images, e.g. RealSRSet or RealLQ250: upscaled by the scale "
                             "and scored with no-reference metrics)", key="bench_lr_path")
        if not path:
            return None
        spec |= {"source": path, "lr_only": True, "degradation": None}
    try:
        return spec, _open(spec)
    except core.StudioError as exc:
        if spec.get("name"):  # uploads: say so, never the server's temporary folder
            st.error(_private(str(exc), Path(spec["source"]).parent))
        else:
            show_error(exc)
        return None


def _open(spec: dict) -> evaluation.Dataset:
    degradation = load_degradation(spec["degradation"], spec["scale"]) if spec.get("degradation") else None
    dataset = core.open_dataset(spec["source"], spec["scale"], lr_dir=spec.get("lr_dir"), degradation=degradation,
                                seed=spec.get("seed", 0), lr_only=spec.get("lr_only", False))
    if spec.get("name"):  # uploads are named after their files, not the temporary folder they sit in
        lr_source = "uploaded LR" if spec.get("lr_dir") else dataset.lr_source
        dataset = dataclasses.replace(dataset, name=spec["name"], lr_source=lr_source)
    return dataset


def _div2k_download() -> None:
    dest = st.text_input("Download into", str(core.default_results_dir().parent / "data" / "DIV2K"), key="div2k_dest")
    scales = st.multiselect("LR scales", [2, 3, 4], default=[4], key="div2k_scales")
    if st.button("Download DIV2K validation set", key="div2k_go"):
        def work(ctx: core.JobContext) -> str:
            evaluation.download_div2k(Path(dest), tuple(scales),
                                progress=lambda name, done, total: ctx.progress(done, total or 0, name))
            return dest

        start_job("div2k", "DIV2K download", work)
    follow_job("div2k", success=lambda snap: f"DIV2K ready in {snap.result}")


def _rows_frame(rows: list[dict], metrics: list[str]) -> pd.DataFrame:
    """Per-image rows (as in ``results.json``) with the metric headers of every table here."""
    return pd.DataFrame([{"image": r["image"], "method": r["method"],
                          **{metric_header(m): r["metrics"].get(m) for m in metrics},
                          "seconds": round(r["seconds"], 3), "reused": r.get("reused", False),
                          "error": r.get("error", "")}
                         for r in rows], columns=["image", "method", *map(metric_header, metrics),
                                                  "seconds", "reused", "error"])


def _evaluate(db_path: Path, ctx: core.JobContext, dataset: evaluation.Dataset, methods: list[str],
              metrics: list[str], settings: core.EvalSettings, ray_address: str | None) -> core.evaluation.EvalResult:
    db = core.ResultDB(db_path)
    hooks = core.EvalHooks(progress=ctx.progress, cancel=ctx.cancelled, on_row=lambda row, _: ctx.publish(row),
                           status=ctx.say)
    try:
        # here, or on Ray (imported only then: the single-machine page never imports it)
        executor = executor_for(None if ray_address is None else ClusterSettings(address=ray_address or None))
        return executor.evaluate(dataset, methods, metrics, settings, db=db, hooks=hooks)
    finally:
        db.close()


def _start(spec: dict, dataset: evaluation.Dataset, methods: list[str], metrics: list[str],
           settings: core.EvalSettings, ray_address: str | None = None) -> None:
    """Run the benchmark in the background: here, or on a Ray cluster where ``ray_address`` is given
    (``""``: a local Ray started for the run)."""
    # the run's own folder, unique even for runs started in the same second; hidden from the picker until it ends
    run_dir = core.new_folder(core.default_results_dir(), time.strftime("%Y%m%d-%H%M%S"))
    db_path = core.default_results_dir() / "results.sqlite"

    def work(ctx: core.JobContext) -> str:
        try:
            result = _evaluate(db_path, ctx, dataset, methods, metrics, settings, ray_address)
        except BaseException:
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # nothing was written: no empty folder left behind
            raise
        core.write_results(result, run_dir)
        core.write_file(run_dir / "run.json", json.dumps(spec | {"methods": methods, "metrics": metrics}))
        return str(run_dir)

    st.session_state.bench_job_metrics = metrics  # the live table's columns, whatever the widget says meanwhile
    st.session_state.bench_job_dir = run_dir.name
    start_job("bench", f"Benchmark on {dataset.name}", work)


def _metric_label(name: str) -> str:
    info = core.METRICS[name]
    return f"{metric_header(name)} ({info.kind}" + ("" if info.ready() else ", weights missing: Models & System") + ")"


def _ray_choice() -> str | None:
    """The "Run on a Ray cluster" option: ``None`` (run here), or the address (``""``: a local Ray)."""
    if not st.toggle("Run on a Ray cluster", key="bench_ray",
                     help="Workers read the images, run the models and score; this server writes the results as "
                          "they arrive (docs/cluster.md). The images must be readable by the workers at the "
                          "same path (a shared folder, or the same files baked into the image)."):
        return None
    if importlib.util.find_spec("ray") is None:
        st.warning("Ray is not installed here: `.venv/bin/pip install -r requirements-cluster.txt` (or the "
                   "`cluster` extra), then restart the dashboard. This run will use this machine.")
        return None
    return st.text_input("Cluster address", os.environ.get("RAY_ADDRESS", ""), key="bench_ray_address",
                         placeholder="empty: start a local Ray on this machine",
                         help="auto or host:6379; from RAY_ADDRESS where set.").strip()


def _finish(snap: core.JobSnapshot) -> None:
    """Show the run just made: the picker's own state is set too, or it would stay on the run it showed."""
    if snap.result:
        st.session_state.bench_run = st.session_state.bench_run_pick = Path(snap.result).name


def _finished(snap: core.JobSnapshot) -> str:
    return f"Finished: {Path(snap.result).name} is shown below." if snap.result else "Finished."


def _live(metrics: list[str]):
    def show(snap: core.JobSnapshot) -> None:
        if snap.partial:  # the same columns as the final per-image table
            st.dataframe(_rows_frame([asdict(r) for r in snap.partial], metrics), hide_index=True, key="bench_live")

    return show


def _show_run(run: Path) -> None:
    try:
        payload = core.read_results(run)
    except errors.DamagedFileError as exc:
        show_error(exc, run.name)
        return
    metrics = list(payload["metrics"])
    st.caption(f"{payload['dataset']} · x{payload['scale']} · LR: {payload['lr_source']} · "
               f"crop {payload['settings']['crop_border']} px · channel {payload['settings']['channel']} · "
               f"grey images {GREY_LABELS[payload['settings'].get('grey', 'as-is')]}"
               + (" · cancelled (partial)" if payload["cancelled"] else ""))
    means = pd.DataFrame([{"method": m, **{metric_header(k): v.get(k) for k in metrics},
                           "s/image": v.get("seconds"), "images": v.get("images")}
                          for m, v in payload["means"].items()])
    st.subheader("Per-method means")
    st.dataframe(means, hide_index=True, key="bench_means")
    titles = {m: payload["metrics"][m].get("title", m) for m in metrics}
    for note in evaluation.coverage_notes(payload.get("counts", {}), titles).values():
        st.caption(f"⚠ {note}")
    with st.expander("What these numbers mean"):
        st.markdown(METRICS_EXPLAINED)
    frame = _rows_frame(payload["rows"], metrics)
    chart_metric = st.selectbox("Chart", metrics, key="bench_chart_metric", format_func=metric_header)
    column = metric_header(chart_metric)
    left, right = st.columns(2)
    tall = charts.height(len(means)) + charts.AXES_HEIGHT  # one height for both, grown with the methods
    left.altair_chart(charts.means_chart(means, chart_metric, column), width="stretch", height=tall)
    right.altair_chart(charts.images_chart(frame, chart_metric, column, means["method"].tolist()), width="stretch",
                       height=tall)
    st.subheader("Per image (select a row to compare in the slider)")
    event = st.dataframe(frame, hide_index=True, on_select="rerun", selection_mode="single-row",
                         key="bench_rows")
    c1, c2 = st.columns(2)
    c1.download_button("Export CSV", (run / "results.csv").read_bytes(), file_name=f"{run.name}.csv",
                       mime="text/csv", key="bench_csv")
    c2.download_button("Export JSON", (run / "results.json").read_bytes(), file_name=f"{run.name}.json",
                       mime="application/json", key="bench_json")
    with st.expander("Paper table: means as Markdown, LaTeX or CSV, the best value per column in bold"):
        fmt = st.radio("Format", evaluation.TABLE_FORMATS, horizontal=True, key="bench_table_format",
                       format_func=lambda f: {"markdown": "Markdown", "latex": "LaTeX (booktabs)", "csv": "CSV"}[f])
        table = evaluation.results_table(payload, fmt)
        st.code(table, language={"markdown": "markdown", "latex": "latex", "csv": None}[fmt])
        st.download_button("Download table", table.encode("utf-8"), key="bench_table",
                           file_name=f"{run.name}.{ {'markdown': 'md', 'latex': 'tex', 'csv': 'table.csv'}[fmt]}",
                           mime={"markdown": "text/markdown", "latex": "application/x-tex", "csv": "text/csv"}[fmt])
    selected = event.selection.rows if event is not None else []
    if selected and (run / "run.json").is_file():
        _inspect(json.loads((run / "run.json").read_text()), frame.iloc[selected[0]]["image"], payload)


def _inspect(spec: dict, image_name: str, payload: dict) -> None:
    try:
        dataset = _open(spec)
        item = next(i for i in dataset.items if i.name == image_name)
        lr, hr = dataset.load(item)
    except (core.StudioError, StopIteration) as exc:
        show_error(exc if isinstance(exc, core.StudioError) else errors.DatasetError(f"{image_name} is gone"))
        return
    methods = [m for m in payload["methods"] if m != "hr"]
    cols = st.columns(2)
    a = cols[0].selectbox("Left", methods, key="bench_left")
    b = cols[1].selectbox("Right", methods, index=min(1, len(methods) - 1), key="bench_right")
    scale = payload["scale"]
    size = hr.shape[:2] if hr is not None else (lr.shape[0] * scale, lr.shape[1] * scale)
    outputs = [(method, _output(method, lr, size, scale)) for method in (a, b)]
    comparison([*outputs, ("HR", hr)] if hr is not None else outputs, key="bench_slider")


def _output(method: str, lr, size: tuple[int, int], scale: int):
    if method in evaluation.BASELINES:
        return cache.baseline(lr, cache.image_key(lr), size, evaluation.BASELINES[method])
    key = ("bench", cache.image_key(lr), method, scale)
    stored = cache.result_store().get(key)
    if stored is None:
        upscaler = load_upscaler(method, wait=True)
        if upscaler is None:
            return cache.baseline(lr, cache.image_key(lr), size, "matlab")
        with st.spinner(f"Running {method} on this image…"):
            stored = evaluation.run_method(method, lr, size, upscaler)
        cache.result_store().put(key, stored)
    return stored


def _made_elsewhere(dataset: evaluation.Dataset | None, taken: list[str]) -> list[str] | None:
    """Folders of outputs made by other tools, one ``NAME=FOLDER`` a line, matched to the dataset's images now (how,
    said under the box); ``None`` where one cannot be used (the reason shown)."""
    text = st.text_area("Outputs made elsewhere (optional): NAME=FOLDER, one a line", key="bench_outside",
                        placeholder="upscayl=/data/upscayl/DIV2K_valid", height=68,
                        help="Folders of this dataset's images upscaled by other tools (Upscayl, chaiNNer, a "
                             "paper's released results), on this server: each is a method, matched to the images "
                             "by name (0801.png, 0801_out.png...), else by order. Scored and stored like a model's "
                             "outputs, keyed by each file's content.")
    specs = [line.strip() for line in text.splitlines() if line.strip()]
    if not specs or dataset is None:
        return specs
    try:
        names, matched = evaluation.outside_outputs(dataset, specs)
        clash = [n for n in names if n in taken]
        if clash:
            raise errors.SettingsError(f"{', '.join(clash)} is already a method above: name the folder otherwise.")
    except core.StudioError as exc:
        show_error(exc)
        return None
    for name, outputs in matched.items():
        st.caption(outputs.note() or f"{name}: {len(outputs.files)} of {len(dataset)} images matched by name.")
    return specs


def render() -> None:
    st.title("Benchmark")
    form = _dataset_form()
    lr_only = form is not None and form[1].lr_only  # no ground truth: no hr method, no full-reference metric
    available = [i.name for i in core.list_models() if i.available]
    options = [*([] if lr_only else ["hr"]), *evaluation.BASELINES, *available]
    default = ["bicubic", st.session_state.get("model", core.DEFAULT_MODEL)]
    cols = st.columns(2)
    methods = cols[0].multiselect("Methods", options, default=[m for m in default if m in options],
                                  key="bench_methods_lr" if lr_only else "bench_methods",
                                  help="hr = the ground truth itself (NIQE only)")
    kind = "no-reference" if lr_only else None
    metrics = cols[1].multiselect("Metrics", core.METRICS.names(kind), default=core.METRICS.names(kind, ready=True),
                                  key="bench_metrics_lr" if lr_only else "bench_metrics", format_func=_metric_label,
                                  help="An LR-only set has no ground truth: no-reference metrics only."
                                  if lr_only else None)
    cols = st.columns(3)
    channel = cols[0].radio("PSNR / SSIM on", ["y", "rgb"], horizontal=True, key="bench_channel",
                            format_func=lambda c: {"y": "Y (BT.601)", "rgb": "RGB"}[c])
    grey = cols[1].radio("Grey images", GREY_MODES, horizontal=True, key="bench_grey",
                         format_func=lambda g: GREY_LABELS[g],
                         help="BasicSR and published tables read grey images as RGB, so their Y is "
                              "16 + 219/255 g; 'as is' scores the grey values themselves (1.32 dB less PSNR "
                              "for the same error).")
    crop = cols[2].number_input("Crop border (empty = scale)", 0, 64, value=None, key="bench_crop")
    made = _made_elsewhere(form[1] if form is not None else None, methods)
    ray_address = _ray_choice()
    running = follow_job("bench", _finish, live=_live(st.session_state.get("bench_job_metrics", metrics)),
                         success=_finished)
    if not running and form is not None:
        spec, dataset = form
        st.write(f"{dataset.name}: {len(dataset)} images, x{dataset.scale}, LR from {dataset.lr_source}.")
        usable = made is not None and bool(methods or made) and bool(metrics)
        if st.button("Run benchmark", type="primary", key="bench_run_button", disabled=not usable):
            settings = core.EvalSettings(crop_border=crop, channel=channel, grey=grey,
                                         tile=st.session_state.get("tile"),
                                         device=st.session_state.get("device", "auto"),
                                         precision=st.session_state.get("precision", "auto"))
            _start(spec, dataset, [*methods, *(made or [])], metrics, settings, ray_address)
    writing = st.session_state.get("bench_job_dir") if running else None  # the running job's folder: not yet
    runs = sorted((p for p in core.default_results_dir().glob("*/results.json") if p.parent.name != writing),
                  reverse=True)
    if runs:
        st.divider()
        names = [p.parent.name for p in runs]
        damaged = {name for name in names if not cache.run_readable(core.default_results_dir() / name)}
        current = st.session_state.get("bench_run")
        default = current if current in names else next((n for n in names if n not in damaged), names[0])
        run = st.selectbox("Results (earlier runs reload from the results folder)", names,
                           index=names.index(default), key="bench_run_pick",
                           format_func=lambda name: f"{name} (damaged)" if name in damaged else name)
        _show_run(core.default_results_dir() / run)
