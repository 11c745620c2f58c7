"""Models with the sidebar's device and precision, loaded in the background: the page never blocks on a load,
a job waits for it."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout

import streamlit as st

import core
from dashboard import cache
from dashboard.errors import show_error


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
