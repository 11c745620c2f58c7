"""The job registry and a page's job: start it in the background, follow it (progress, ETA, Cancel), show its
outcome once."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

import core


@st.cache_resource
def jobs() -> core.JobManager:
    """One job registry per server: jobs survive page switches and reruns."""
    return core.JobManager()


def job_panel(job_id: str, on_finish: Callable[[core.JobSnapshot], None], *, key: str,
              live: Callable[[core.JobSnapshot], None] | None = None) -> None:
    """Live progress (done / total, elapsed, ETA) and a cancel button, polled twice a second.

    ``live`` renders partial results on every poll. When the job ends, ``on_finish`` gets
    its snapshot and the whole page reruns.
    """

    @st.fragment(run_every=0.5)
    def panel() -> None:
        job = jobs().get(job_id)
        if job is None:
            st.warning("This job is no longer known (the server restarted); start it again.")
            return
        snap = job.snapshot()
        if snap.finished:
            on_finish(snap)
            st.rerun()
        if snap.eta is None:
            eta = ""
        elif snap.estimated:
            eta = f" · about {snap.eta:.0f} s left (estimated from this model's measured speed)"
        else:
            eta = f" · ETA {snap.eta:.0f} s"
        st.progress(snap.fraction, text=f"{snap.label}: {int(snap.done)}/{snap.total or '?'} · "
                                        f"{snap.elapsed:.1f} s elapsed{eta} · {snap.message}")
        if st.button("Cancel", key=f"{key}_cancel"):
            job.cancel()
            st.toast("Cancelling…")
        if live is not None:
            live(snap)

    panel()


def start_job(key: str, label: str, work: Callable[[core.JobContext], object], *, rerun: bool = True) -> None:
    """Run ``work`` in the background as this page's job ``key``; :func:`follow_job` shows it from then on."""
    st.session_state[f"{key}_job"] = jobs().start(label, work).id
    if rerun:
        st.rerun()


def follow_job(key: str, on_finish: Callable[[core.JobSnapshot], None] | None = None, *,
               live: Callable[[core.JobSnapshot], None] | None = None,
               success: Callable[[core.JobSnapshot], str] | None = None, quiet_cancel: bool = False) -> bool:
    """The page's job ``key``: its progress and a Cancel button while it runs (returns ``True``), then its outcome.

    When the job ends, ``on_finish`` gets its snapshot once (to keep what it made: whole,
    partial or nothing) and the page reruns. The outcome is then shown once: the text of
    ``success(snapshot)`` for a finished job, a note for a cancelled one, the error for a
    failed one; the page's settings stay as they were, so the user can run it again. ``quiet_cancel``: no note
    for a cancel (the page says what the cancel left out).
    """
    job_id = st.session_state.get(f"{key}_job")
    if job_id:
        def finish(snap: core.JobSnapshot) -> None:
            st.session_state.pop(f"{key}_job", None)
            if on_finish is not None:
                on_finish(snap)
            if snap.status == "done" or (quiet_cancel and snap.status == "cancelled"):
                outcome = ("success", success(snap)) if success is not None and snap.status == "done" else None
            else:
                outcome = ("info" if snap.status == "cancelled" else "error",
                           f"{snap.error or snap.status} Your settings are unchanged; run again when ready.")
            if outcome is not None:
                st.session_state[f"{key}_outcome"] = outcome

        job_panel(job_id, finish, key=key, live=live)
        return True
    outcome = st.session_state.pop(f"{key}_outcome", None)
    if outcome is not None:
        kind, text = outcome
        {"success": st.success, "info": st.info, "error": st.error}[kind](text)
    return False
