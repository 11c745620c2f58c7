"""Models & System: what is available and from where, how to add more, and the machine."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import core
from dashboard import cache
from dashboard.jobs import follow_job, start_job


def _tables(infos: list[core.ModelInfo]) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """The models that run here (one row each), and ``(name, how to get it)`` for the others."""
    rows, missing = [], []
    for info in infos:
        if not info.available:
            missing.append((info.name, info.reason))
            continue
        try:
            summary = cache.model_summary(info.name, info.fingerprint)
        except core.StudioError as exc:
            missing.append((info.name, str(exc)))
            continue
        rows.append({"model": info.name, "architecture": info.architecture,
                     "scale": f"x{info.scale}" if info.scale else "?",
                     "parameters": f"{summary['parameters'] / 1e6:.2f} M", "fp16": "yes" if summary["fp16"] else "no",
                     "CPU engine": core.engines.cpu_engine_label(info),
                     "source": info.source + (f" · official file: [{info.spec.url.rsplit('/', 1)[-1]}]({info.spec.url})"
                                              if info.spec else ""),
                     "licence": info.spec.licence if info.spec else "see the file's origin"})
    return pd.DataFrame(rows), missing


def _engine_measurements(infos: list[core.ModelInfo]) -> None:
    """What each model's first load here measured: every CPU engine's time on the probe, and the choice."""
    choices = {info.name: choice for info in infos if info.available and (choice := core.engines.auto_engine(info))}
    if not choices:
        return

    rows = [{"model": name, "engine": c.engine, "measured": c.progress(),
             **{e: c.cell(e, details=False) for e in core.engines.ENGINES.names()},
             "probe": f"{c.side} px, {c.threads} threads", "why": c.reason} for name, c in choices.items()]
    with st.expander(f"CPU engine measurements on this machine ({len(rows)})"):
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="engine_table")
        st.caption(f"A model's first load on this CPU times each engine that can run it on the same image and keeps "
                   f"the fastest whose output equals PyTorch's (within 5 %, the one needing less memory). A shared "
                   f"host's speed varies over time, so later loads, an hour or more apart, measure again until "
                   f"{core.engines.MEASUREMENTS} measurements are pooled (each engine's time is then their mean). "
                   "Start over with `realesrgan-studio engines --again`.")


def _downloads(infos: list[core.ModelInfo]) -> None:
    missing = [i for i in infos if not i.available and i.downloadable]
    if not missing:
        return
    st.subheader("Download official weights")
    st.caption("Needs internet access to GitHub releases; the file is checked and written atomically.")
    name = st.selectbox("Model", [i.name for i in missing], key="dl_model")
    if follow_job("dl", success=lambda snap: f"{snap.result} is ready."):
        return
    if st.button("Download", key="dl_go"):
        def work(ctx: core.JobContext) -> str:
            core.load_model(name, allow_download=True,
                            progress=lambda done, total: ctx.progress(done, total or 0, "bytes"))
            return name

        start_job("dl", f"Downloading {name}", work)


def _metric_weights() -> None:
    """Metrics with network weights: which are here, their sources and licences, and a download."""
    learned = [m for m in core.METRICS.values() if m.weights]
    if not learned:
        return
    st.subheader("Metric weights")
    st.dataframe(pd.DataFrame([{"metric": m.name, "here": "yes" if m.ready() else "no",
                                "files": ", ".join(w.name for w in m.weights),
                                "licences": "; ".join(dict.fromkeys(w.licence for w in m.weights)),
                                "reference": m.reference} for m in learned]),
                 hide_index=True, key="metric_weights_table")
    _metric_files_by_hand(learned)
    missing = [m.name for m in learned if not m.ready()]
    if follow_job("metric_dl", success=lambda snap: f"{snap.result}: weights ready."):
        return
    if not missing:
        return
    name = st.selectbox("Metric", missing, key="metric_dl_name")
    st.caption("Needs internet access; each file's checksum is checked and it is written atomically. ImageNet "
               "backbones go to torchvision's cache ($TORCH_HOME), so other tools find them too.")
    if st.button("Download metric weights", key="metric_dl_go"):
        def work(ctx: core.JobContext) -> str:
            core.metrics.download_metric(name, progress=lambda done, total: ctx.progress(done, total or 0, "bytes"))
            return name

        start_job("metric_dl", f"Downloading the weights of {name}", work)


def _metric_files_by_hand(learned: list[core.metrics.MetricInfo]) -> None:
    """Where each metric file goes when fetched by hand (a machine without internet, a file from a colleague)."""
    rows = {}
    for metric in learned:
        for file in metric.weights:
            folder = core.metrics.weights_folder(file)
            if folder is None:
                continue
            row = rows.setdefault(file.name, {"file": file.name, "put it in": str(folder), "for": [],
                                              "from": file.url, "sha256": file.sha256})
            row["for"].append(metric.name)
    if not rows:
        return
    with st.expander("Fetched a metric file by hand? Where each one goes"):
        st.caption("Copy each file, under the name given, into the folder beside it; the metric is offered once "
                   "all its files are there. ImageNet backbones go to torchvision's cache ($TORCH_HOME), so other "
                   "tools find them too. A file is checked before it is used (its tensors' names and shapes; a "
                   "download also checks the sha256 given here), and refused with its path and what to do.")
        st.table(pd.DataFrame([r | {"for": ", ".join(r["for"])} for r in rows.values()]).set_index("file"))


def render() -> None:
    st.title("Models & System")
    infos = core.list_models()
    table, missing = _tables(infos)
    if len(table):
        # static tables: nothing is cut. What runs here first; where each file comes from below it, so neither
        # is wider than a phone's screen needs to scroll far for (the one table was 882 px wide at 390 px)
        st.table(table.drop(columns=["source", "licence"]).set_index("model"))
        with st.expander("Where each model's weights come from, and their licences"):
            st.table(table[["model", "source", "licence"]].set_index("model"))
    _engine_measurements(infos)
    if missing:
        st.subheader(f"Not available here ({len(missing)})")
        st.markdown("\n".join(f"- **{name}**: {how}" for name, how in missing))
    st.markdown(
        f"""**Add a model:** drop a `.pth`, `.pt`, `.ckpt` or `.safetensors` file into
`{core.default_weights_dir()}`. Any architecture spandrel recognises (ESRGAN, Real-ESRGAN Compact,
SwinIR, HAT, DAT, SPAN, …) appears here under its file name, with its detected architecture and
scale; files spandrel cannot read are listed with the reason. Official files dropped in under their
usual names (e.g. `RealESRGAN_x2plus.pth`) replace the converted or missing ones."""
    )
    _downloads(infos)
    _metric_weights()
    st.subheader("System")
    info = core.system_info()
    st.dataframe(pd.DataFrame({"": list(info), "value": [str(v) for v in info.values()]}), hide_index=True,
                 key="system_table")
    if st.button("Clear the model cache", key="clear_models",
                 help="Frees memory held by loaded models; they load again on next use."):
        cache.model_loads().clear()
        cache.model_summary.clear()
        core.clear_shared()
        st.success("Model cache cleared.")
