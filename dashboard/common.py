"""Shared UI pieces: the job registry, error messages with a way forward, image pickers, job panels."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np
import streamlit as st

import core
from dashboard import cache

UPLOAD_TYPES = sorted(suffix.lstrip(".") for suffix in core.IMAGE_SUFFIXES)  # what the core decodes


@st.cache_resource
def jobs() -> core.JobManager:
    """One job registry per server: jobs survive page switches and reruns."""
    return core.JobManager()


def way_forward(exc: BaseException) -> str:
    """A user message for a core error: what happened and what to do."""
    text = str(exc)
    if isinstance(exc, core.errors.ImageTooLargeError):
        return f"{text} Tip: use the region option to upscale part of the image."
    if isinstance(exc, core.errors.WeightsMissingError):
        return (f"{text} Meanwhile, compare with bicubic or pick another model in the sidebar; "
                "the Models & System page explains how to add weights.")
    if isinstance(exc, core.errors.OutOfMemoryError):
        return f"{text} Set a smaller tile size in the sidebar, or choose the CPU as device."
    if isinstance(exc, core.errors.DeviceUnavailableError):
        return f"{text} Choose 'auto' in the sidebar."
    return text


def show_error(exc: BaseException, context: str = "") -> None:
    prefix = f"{context}: " if context else ""
    if isinstance(exc, core.CancelledError):
        st.info(f"{prefix}{exc}")
    else:
        st.error(prefix + way_forward(exc))


def model_key(name: str) -> cache.ModelKey:
    """``(model, device, precision)`` with the sidebar's device and precision."""
    return name, st.session_state.get("device", "auto"), st.session_state.get("precision", "auto")


def load_upscaler(name: str, *, wait: bool = False) -> core.Upscaler | None:
    """The shared upscaler of ``name`` with the sidebar's device and precision.

    Loads in the background: ``None`` while it loads (unless ``wait``; :func:`model_status`
    shows the load) or when it failed (the error is shown, and the next run tries again).
    """
    key = model_key(name)
    future = cache.model_loads().start(key)
    if not future.done() and not wait:
        return None
    try:
        if not future.done():
            with st.spinner(f"Loading {name}…"):
                return future.result()
        return future.result()
    except core.StudioError as exc:
        cache.model_loads().forget(key, future)
        show_error(exc, f"Cannot load {name}")
        return None


def models_for_job(names: list[str] | tuple[str, ...]) -> Callable[[core.JobContext], dict[str, core.Upscaler]]:
    """Start loading ``names`` (the sidebar's device and precision) now, in the background; the returned
    function, called inside a job, waits for them with progress ("loading NAME…") and the job's cancel.
    The page never blocks on a load: a job is what waits."""
    loads = cache.model_loads()
    futures = {name: (key, loads.start(key)) for name in names if (key := model_key(name))}

    def wait(ctx: core.JobContext) -> dict[str, core.Upscaler]:
        ready = {}
        for name, (key, future) in futures.items():
            if not future.done():
                ctx.progress(0, 0, f"loading {name}…")
            while True:
                try:
                    ready[name] = future.result(timeout=0.25)
                    break
                except FutureTimeout:
                    if ctx.cancelled():
                        raise core.CancelledError(f"Stopped waiting for {name} to load.") from None
                except core.StudioError:
                    loads.forget(key, future)  # the next run tries again
                    raise
        return ready

    return wait


def model_loading(name: str) -> bool:
    """Whether ``name`` (sidebar device and precision) is loading now."""
    return not cache.model_loads().start(model_key(name)).done()


def model_status(name: str) -> None:
    """While ``name`` loads: a status line, polled twice a second; the app reruns once it is ready."""
    loads, key = cache.model_loads(), model_key(name)
    if loads.start(key).done():
        return

    @st.fragment(run_every=0.5)
    def status() -> None:
        if loads.start(key).done():
            st.rerun()
        st.info(f"Loading **{name}** on {key[1]}… {loads.seconds(key):.0f} s. The pages work meanwhile; "
                "a model's first load also converts its weights, and on the CPU measures which engine runs it "
                "fastest here (up to a minute; two later loads, an hour or more apart, measure again for "
                "about 10 s).", icon=":material/hourglass_top:")

    status()


_KEPT = "_kept_widget_values"


def kept(key: str, default: object, options: list | None = None) -> str:
    """``key`` for a widget whose value survives page switches and modes that hide it.

    Streamlit forgets a widget's value when the widget is not drawn in a run (another page,
    another mode). :func:`remember_widgets` copies kept values aside at the start of every
    run, and this puts the copy back before the widget is drawn. Widgets using it take their
    default from here, never from ``value=`` / ``index=``.
    """
    store = st.session_state.setdefault(_KEPT, {})
    if key not in st.session_state:
        value = store.get(key, default)
        st.session_state[key] = value if options is None or value in options else default
    store.setdefault(key, st.session_state[key])
    return key


def kept_values() -> dict[str, object]:
    """Every kept widget's value, by key (the store :func:`kept` and :func:`remember_widgets` keep)."""
    return st.session_state.setdefault(_KEPT, {})


def saved_upload_key(key: str) -> str:
    """The session-state key under which :func:`pick_image` keeps the upload ``(name, bytes)`` of ``key``."""
    return f"_{key}_saved_upload"


def forget_kept(key: str) -> None:
    """Drop a kept widget's value: its next :func:`kept` call starts from the default again."""
    st.session_state.pop(key, None)
    st.session_state.setdefault(_KEPT, {}).pop(key, None)


def remember_widgets() -> None:
    """Copy the kept widgets' current values aside (call first in every run, before any page)."""
    store = st.session_state.setdefault(_KEPT, {})
    for key in store:
        if key in st.session_state:
            store[key] = st.session_state[key]


def pick_image(key: str, label: str = "Image", default_sample: str = "chelsea") -> tuple[np.ndarray, str] | None:
    """Sample or upload; returns ``(image, stem)`` or ``None`` (with a message shown).

    An upload is kept for the session: after a page switch (which empties the uploader)
    the page goes on with it until another is uploaded or it is dismissed.
    """
    choice = st.radio(label, ["Bundled sample", "Upload"], horizontal=True,
                      key=kept(f"{key}_source", "Bundled sample"))
    if choice == "Upload":
        upload = st.file_uploader("Upload an image", type=UPLOAD_TYPES, key=f"{key}_upload",
                                  help="PNG, JPEG, WebP, BMP, TIFF or GIF (first frame); 16-bit and alpha are kept.")
        saved = saved_upload_key(key)
        if upload is not None:
            st.session_state[saved] = (upload.name, upload.getvalue())
        elif saved in st.session_state:
            name = st.session_state[saved][0]
            note, forget = st.columns([4, 1])
            note.caption(f"Using your upload **{name}** (kept while you use other pages); upload another to "
                         "replace it.")
            if forget.button("Dismiss it", key=f"{key}_forget"):
                del st.session_state[saved]
                st.rerun()
        if saved not in st.session_state:
            st.info("Upload a PNG, JPEG, WebP, BMP, TIFF or GIF image (16-bit and alpha are kept).")
            return None
        name, data = st.session_state[saved]
        try:
            return cache.decode(data).pixels, name.rsplit(".", 1)[0]
        except core.StudioError as exc:
            show_error(exc, name)
            return None
    samples = core.list_samples()
    default = default_sample if default_sample in samples else samples[0]
    name = st.selectbox("Sample", samples, key=kept(f"{key}_sample", default, samples))
    return cache.sample(name), name


def picked_profile(key: str) -> bytes | None:
    """The ICC colour profile of the upload :func:`pick_image` returns for ``key`` (None for a sample or
    a file without one): downloads carry it, so a Display P3 or Adobe RGB photo keeps its colours."""
    saved = st.session_state.get(saved_upload_key(key))
    if st.session_state.get(f"{key}_source") != "Upload" or saved is None:
        return None
    try:
        return cache.decode(saved[1]).icc_profile
    except core.StudioError:
        return None


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


def metric_header(name: str) -> str:
    info = core.METRICS[name]
    return f"{info.title} {info.arrow}"


METRICS_EXPLAINED = """
* **PSNR** (dB, higher is better) and **SSIM** (0-1, higher is better) compare the result with a
  reference pixel by pixel. They need a reference: an HR image of the same scene, or your image
  itself after "downscale my image first".
* **NIQE** (lower is better) needs no reference: it measures how far the image's local statistics
  are from those of natural photos.
* **Why a GAN model can score a lower PSNR than bicubic but a better NIQE**: bicubic (and models
  trained for PSNR) produce the average of all plausible sharp images, a smooth result that is
  never far from the truth pixel by pixel. Real-ESRGAN is trained with perceptual and adversarial
  losses to draw *one* plausible sharp image: its textures look natural (better NIQE) but are not
  the reference's exact pixels, and every misplaced detail costs PSNR. Trust your eyes in the
  slider; use PSNR / SSIM for fidelity, NIQE for naturalness.
* **LPIPS** and **DISTS** (lower is better, 0 for identical images) compare the result with the
  reference through the features of an ImageNet network (AlexNet or VGG-16) with weights their
  authors learned from human judgements. They forgive a texture drawn slightly differently, so
  they side with the eye more often than PSNR does, and papers on real-world super-resolution
  report them next to PSNR / SSIM. They need network weights: the Models & System page lists and
  downloads them (or `realesrgan-studio metrics --download lpips-alex,dists`); until then they
  are not offered.
* **Learned no-reference metrics** (higher is better) are networks that score one image alone.
  **MUSIQ** is a transformer trained on KonIQ-10k's human ratings of photos (a predicted mean
  opinion score, about 0-100); **CLIP-IQA** (0-1) asks CLIP whether the image looks more like a
  good or a bad photo. They need their authors' published weights (the Models & System page, or
  `realesrgan-studio metrics --download musiq,clipiqa`). They often disagree with each other and
  with NIQE, they were trained on photos rather than on upscaler artefacts, and a model can learn
  to please one: read several, and never one alone. MANIQA, TOPIQ and LIQE come with the optional
  pyiqa extra (`pip install -e '.[pyiqa]'`, non-commercial licence).
"""
