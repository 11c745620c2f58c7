"""Scores in the page's background job: the cheap metrics first, the learned ones after, each card saying
"computing" until its number is ready, and Cancel keeping what is finished.

One scoring job per set of outputs, shared by every session (two tabs, or a reload, follow the same job);
the finished comparison, whole or cut short by a cancel or a failure, is kept in a bounded store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

import core
from dashboard import cache
from dashboard.jobs import follow_job, jobs
from dashboard.texts import metric_header

if TYPE_CHECKING:
    from core._jobs import Job

CARDS_PER_ROW = 3  # method cards on one row: six methods make two rows, and no card is narrower than a third
# the cards' numbers in a smaller type than st.metric's, and labels that wrap: with six methods the default
# type cut every number to "32.…" and every long label to "LPIPS (…"
_CARD_STYLE = """<style>
[class*="st-key-score_card_"] [data-testid="stMetricValue"] { font-size: 1.45rem; }
[class*="st-key-score_card_"] [data-testid="stMetricValue"] > div { overflow: visible; text-overflow: clip; }
[class*="st-key-score_card_"] [data-testid="stMetricLabel"] p { white-space: normal; overflow-wrap: anywhere; }
[class*="st-key-score_card_"] [data-testid="stMetricLabel"] div { overflow: visible; text-overflow: clip; }
</style>"""


class ScoreJobs:
    """The scoring job of each set of outputs (by key), shared by every session and thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, str] = {}

    def running(self, key: str) -> Job | None:
        with self._lock:
            job = jobs().get(self._jobs.get(key))
        return job if job is not None and job.status == "running" else None

    def start(self, key: str, work: Callable[[core.JobContext], object]) -> Job:
        with self._lock:
            job = jobs().start("Scoring", work)
            self._jobs = {k: v for k, v in self._jobs.items() if jobs().get(v) is not None} | {key: job.id}
            return job


@st.cache_resource
def score_jobs() -> ScoreJobs:
    return ScoreJobs()


@st.cache_resource
def comparisons() -> cache.ResultStore:
    """Finished scorings (a comparison, possibly cut short: see :meth:`core.compare.Comparison.missing`)."""
    return cache.ResultStore(max_entries=8)


def _start(key: str, image: np.ndarray, outputs: dict[str, np.ndarray], reference: np.ndarray | None,
           metrics: tuple[str, ...], start: core.compare.Comparison | None = None) -> None:
    def work(ctx: core.JobContext) -> core.compare.Comparison:
        return core.compare.score_outputs(image, outputs, reference, metrics, progress=ctx.progress,
                                          cancel=ctx.cancelled, publish=ctx.publish, start=start)

    previous = jobs().get(st.session_state.get("score_job"))
    if previous is not None and st.session_state.get("score_for") != key:
        previous.cancel()  # this page moved on to other outputs
    job = score_jobs().running(key) or score_jobs().start(key, work)
    st.session_state.score_job, st.session_state.score_for = job.id, key


def scoring(key: str, image: np.ndarray, outputs: dict[str, np.ndarray],
            reference: np.ndarray | None) -> core.compare.Comparison:
    """The comparison of ``outputs`` as far as it is scored: finished, or the latest step of its job (started
    here, or followed where another session runs it). Call :func:`show_scores` after drawing what needs it."""
    finished = comparisons().get(key)
    if finished is not None:
        return finished
    metrics = tuple(m.name for m in core.METRICS.values() if m.ready() and (reference is not None
                                                                             or not m.full_reference))
    job = jobs().get(st.session_state.get("score_job")) if st.session_state.get("score_for") == key else None
    if job is None:
        _start(key, image, outputs, reference, metrics)
        job = jobs().get(st.session_state.score_job)
    snap = job.snapshot() if job is not None else None
    if snap is not None and snap.partial:
        return snap.partial[-1]
    return core.compare.Comparison(image, reference, outputs=dict(outputs), metrics=metrics)


def show_scores(key: str, shown: core.compare.Comparison, rows: Callable[[core.compare.Comparison], list[dict]],
                table: Callable[[list[dict]], None]) -> core.compare.Comparison | None:
    """The metric cards and ``table(rows)`` of the comparison ``key``: live while its job runs (progress, Cancel,
    "computing…" where a number is not ready), then final. Returns the finished comparison (``None`` while
    scoring). ``shown``: what the page drew this run (:func:`scoring`); once the job has every map, the page
    reruns so the viewer shows them."""
    def finish(snap: core.JobSnapshot) -> None:
        result = snap.result if snap.result is not None else (snap.partial[-1] if snap.partial else shown.copy())
        result.cancelled = result.cancelled or snap.status != "done"
        comparisons().put(key, result)  # whole, or what finished before a cancel or a failure: never run again

    def live(snap: core.JobSnapshot) -> None:
        partial = snap.partial[-1] if snap.partial else shown
        if len(partial.maps) == len(partial.outputs) > len(shown.maps):
            st.rerun()  # every map is ready: the viewer shows them while the learned metrics go on
        _cards(rows(partial), partial, running=True)
        table(rows(partial))

    if st.session_state.get("score_for") == key and follow_job("score", finish, live=live, quiet_cancel=True):
        return None
    finished = comparisons().get(key)
    if finished is None:
        return None
    _cards(rows(finished), finished, running=False)
    table(rows(finished))
    missing = [m for m in finished.outputs if finished.missing(m)]
    if missing and st.button("Compute the missing scores", key="score_rest",
                             help="Scores the metrics the cancel (or a failure) left out; the others are kept."):
        _start(key, finished.image, finished.outputs, finished.reference, finished.metrics, start=finished)
        comparisons().discard(key)
        st.rerun()
    return finished


def _cards(rows: list[dict], compared: core.compare.Comparison, *, running: bool) -> None:
    """One card per method (at most :data:`CARDS_PER_ROW` on a row) with every metric; later methods show the
    change from the first; a metric not computed yet says so."""
    shown = [m for m in core.METRICS if m in compared.metrics]
    if not shown:
        return
    first = rows[0]
    across = min(CARDS_PER_ROW, len(rows))
    inside = min(len(shown), {1: 6, 2: 3}.get(across, 2))  # metrics on one line of a card
    st.html(_CARD_STYLE)
    for start in range(0, len(rows), across):
        for index, (card, row) in enumerate(zip(st.columns(across), rows[start : start + across]), start):
            box = card.container(border=True, key=f"score_card_{index}")
            box.markdown(f"**{row['method']}**" + ("" if row is first else f"  \nchange vs {first['method']}"))
            pending = compared.missing(row["method"]) if row["method"] in compared.outputs else ()
            for line in range(0, len(shown), inside):
                for column, name in zip(box.columns(inside), shown[line : line + inside]):
                    info, header = core.METRICS[name], metric_header(name)
                    value, before = row.get(header), first.get(header)
                    places = _places(info)
                    delta = (f"{value - before:+.{places}f}"
                             if row is not first and value is not None and before is not None else None)
                    text = "…" if name in pending else "—" if value is None else f"{value:.{places}f}"
                    column.metric(header, text, delta=delta, help=info.description,
                                  delta_color="normal" if info.higher_is_better else "inverse")
            if pending:
                titles = ", ".join(core.METRICS[m].title for m in pending)
                box.caption(f":material/progress_activity: computing {titles}…" if running
                            else f"Not computed (stopped before they were): {titles}.")


def _places(info: core.metrics.MetricInfo) -> int:
    """Decimals shown: two for dB (as papers print PSNR); four for the other full-reference scores and those at
    most 1 (SSIM, LPIPS, DISTS, CLIP-IQA: methods differ in the third decimal); else three (NIQE, MUSIQ)."""
    return 2 if info.unit == "dB" else 4 if info.full_reference or info.value_range[1] <= 1 else 3
