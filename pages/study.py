"""Study: make a blind preference study, share its rater link, watch raters and votes arrive, read the results."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import streamlit as st

import core
from core import evaluation
from core.study import Study, make_study, study_results, study_table
from dashboard.errors import show_error
from dashboard.jobs import follow_job, start_job


def _root() -> Path:
    return core.default_results_dir() / "studies"


def _create() -> None:
    with st.expander("Create a study", expanded=not any(_root().glob("*/study.sqlite"))):
        available = [i.name for i in core.list_models() if i.available]
        methods = st.multiselect("Methods (2 to 6)", [*evaluation.BASELINES, *available], max_selections=6,
                                 default=["bicubic", *available[:1]], key="study_methods")
        outside = st.text_area("Outputs made elsewhere (optional): NAME=FOLDER, one a line", key="study_outside",
                               height=68, help="Folders of the samples' outputs from other tools, matched by name.")
        images = st.number_input("Images (the bundled samples)", 1, len(core.list_samples()), 3, key="study_images")
        specs = [*methods, *(line.strip() for line in outside.splitlines() if line.strip())]
        if st.button("Create the study", type="primary", key="study_create", disabled=not 2 <= len(specs) <= 6):
            dataset = core.open_dataset("samples", 4)
            dataset = type(dataset)(dataset.name, 4, dataset.items[: int(images)], dataset.lr_source)
            folder = _root() / time.strftime("%Y%m%d-%H%M%S")

            def work(ctx: core.JobContext) -> str:
                study = make_study(folder, dataset, specs, core.Upscaler.load, progress=ctx.progress)
                return study.folder.name

            start_job("study", "Making the study", work)


def _finish(snap: core.JobSnapshot) -> None:
    if snap.status == "done":
        st.session_state.study_pick = snap.result


def _show(study: Study) -> None:
    raters = study.raters()
    st.caption(f"{len(study.images)} images × {len(study.methods)} methods ({', '.join(study.methods)}) · "
               f"{study.meta('trials_per_rater')} trials per rater · {len(raters)} raters · "
               f"{sum(raters.values())} answers")
    st.markdown("**Rater link** (serve it with `python -m api.serve`, then share its address with this path):")
    st.code(f"/v1/studies/{study.folder.name}/rate?key={study.meta('rater_key')}", language=None)
    st.markdown("**Owner's results** (keep this one to yourself):")
    st.code(f"/v1/studies/{study.folder.name}/results?key={study.meta('owner_key')}", language=None)
    st.button("Refresh", key="study_refresh")
    if not study.votes(careless=True):
        st.info("No votes yet: the results appear here as raters answer.")
        return
    careless = st.toggle("Keep the votes of raters who failed their checks", key="study_careless")
    results = study_results(study, careless=careless, resamples=500)
    if results.careless:
        st.caption(f"Left out: {len(results.careless)} rater(s) who failed most of their check trials.")
    st.subheader("Ranking")
    st.dataframe(pd.DataFrame(results.fit.table()).rename(columns={
        "score": "BT score", "low": "95 % low", "high": "95 % high", "p_best": "P(best)", "win_rate": "win rate"}),
        hide_index=True, key="study_ranking")
    st.caption(f"{results.fit.votes} votes; Bradley-Terry scores with bootstrap 95 % intervals. Raters agree with "
               f"each other on {results.raters.rate:.0%} of the pairs two of them answered.")
    if results.metrics:
        st.subheader("Which metric agrees with your raters")
        st.dataframe(pd.DataFrame([{"metric": core.METRICS[m].title, "2AFC agreement": a.rate, "95 % low": a.low,
                                    "95 % high": a.high, "votes": a.compared} for m, a in results.metrics.items()]),
                     hide_index=True, key="study_metrics")
    fmt = st.radio("Table", ["markdown", "latex", "csv"], horizontal=True, key="study_format")
    st.code(study_table(results, fmt), language=None)


def render() -> None:
    st.title("Study")
    st.caption("Ask people, blind: each rater sees two outputs of one image, names hidden, and picks the better "
               "one or \"can't tell\"; the pair asked next is the one the votes so far are least sure of.")
    _create()
    if follow_job("study", _finish, success=lambda snap: f"Study {snap.result} is ready: share its rater link."):
        return
    names = sorted((p.parent.name for p in _root().glob("*/study.sqlite")), reverse=True)
    if not names:
        return
    current = st.session_state.get("study_pick")
    pick = st.selectbox("Study", names, index=names.index(current) if current in names else 0, key="study_pick")
    try:
        _show(Study.open(_root() / pick))
    except core.StudioError as exc:
        show_error(exc)
