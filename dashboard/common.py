"""Shared UI pieces: the job registry, error messages with a way forward, image pickers, job panels."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import streamlit as st

import core
from dashboard import cache

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"]


@st.cache_resource
def jobs() -> core.JobManager:
    """One job registry per server: jobs survive page switches and reruns."""
    return core.JobManager()


def way_forward(exc: BaseException) -> str:
    """A user message for a core error: what happened and what to do."""
    text = str(exc)
    if isinstance(exc, core.ImageTooLargeError):
        return f"{text} Tip: use the region option to upscale part of the image."
    if isinstance(exc, core.WeightsMissingError):
        return (f"{text} Meanwhile, compare with bicubic or pick another model in the sidebar; "
                "the Models & System page explains how to add weights.")
    if isinstance(exc, core.OutOfMemoryError):
        return f"{text} Set a smaller tile size in the sidebar, or choose the CPU as device."
    if isinstance(exc, core.DeviceUnavailableError):
        return f"{text} Choose 'auto' in the sidebar."
    return text


def show_error(exc: BaseException, context: str = "") -> None:
    prefix = f"{context}: " if context else ""
    if isinstance(exc, core.CancelledError):
        st.info(f"{prefix}{exc}")
    else:
        st.error(prefix + way_forward(exc))


def load_upscaler(name: str) -> core.Upscaler | None:
    """The shared upscaler of ``name`` with the sidebar's device and precision, or an error shown."""
    try:
        return cache.get_upscaler(name, st.session_state.get("device", "auto"),
                                  st.session_state.get("precision", "auto"))
    except core.StudioError as exc:
        show_error(exc, f"Cannot load {name}")
        return None


def pick_image(key: str, label: str = "Image", default_sample: str = "chelsea") -> tuple[np.ndarray, str] | None:
    """Sample or upload; returns ``(image, stem)`` or ``None`` (with a message shown)."""
    choice = st.radio(label, ["Bundled sample", "Upload"], horizontal=True, key=f"{key}_source")
    if choice == "Upload":
        upload = st.file_uploader("Upload an image", type=UPLOAD_TYPES, key=f"{key}_upload",
                                  help="PNG, JPEG, WebP, BMP or TIFF; 16-bit and alpha are kept.")
        if upload is None:
            st.info("Upload a PNG, JPEG, WebP, BMP or TIFF image (16-bit and alpha are kept).")
            return None
        try:
            return cache.decode(upload.getvalue()), upload.name.rsplit(".", 1)[0]
        except core.StudioError as exc:
            show_error(exc, upload.name)
            return None
    samples = core.list_samples()
    index = samples.index(default_sample) if default_sample in samples else 0
    name = st.selectbox("Sample", samples, index=index, key=f"{key}_sample")
    return cache.sample(name), name


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
        eta = f" · ETA {snap.eta:.0f} s" if snap.eta is not None else ""
        st.progress(snap.fraction, text=f"{snap.label}: {snap.done}/{snap.total or '?'} · "
                                        f"{snap.elapsed:.1f} s elapsed{eta} · {snap.message}")
        if st.button("Cancel", key=f"{key}_cancel"):
            job.cancel()
            st.toast("Cancelling after the current step…")
        if live is not None:
            live(snap)

    panel()


def metric_header(name: str) -> str:
    info = core.METRICS[name]
    return f"{info.title} {info.arrow}"
