"""What the dashboard tests share: the AppTest scripts that run the frame and a page, and the helpers that
rerun a script until its background work is done (a page's polling fragment does that in a browser).

Pages run real core code (real models on small crops) through the real page functions; background jobs run in
threads of the test process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import core

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def run_page(page: str, state: dict | None = None) -> None:
    """AppTest script: the frame (sidebar unless ``state`` replaces it) and one page."""
    import streamlit as st

    from dashboard import frame
    from pages import PAGES

    if state is None:
        frame.setup()
    else:
        frame.setup(with_sidebar=False)
        for key, value in state.items():
            st.session_state.setdefault(key, value)
    PAGES[page][0]()


def settle(at: AppTest, timeout: float = 120.0) -> AppTest:
    """Rerun until no model is loading in the background (as the sidebar's status fragment does)."""
    from dashboard import cache

    deadline = time.monotonic() + timeout
    while cache.model_loads().pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    at.run()
    assert not at.exception, at.exception
    return at


def open_page(page: str, state: dict | None = None) -> AppTest:
    at = AppTest.from_function(run_page, args=(page, state), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return settle(at)


def wait(at: AppTest, done, timeout: float = 120.0) -> AppTest:
    """Rerun until ``done(at)`` (a background job finished and its result is shown)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        if done(at):
            return at
        time.sleep(0.3)
    raise AssertionError(f"timed out; errors: {[e.value for e in at.error]}")


def scored(at: AppTest) -> bool:
    """The upscale ended and its scoring job too (scores come in the background: no progress bar is left)."""
    return bool(at.success) and bool(at.dataframe) and not at.get("progress")


def slow_loads(monkeypatch: pytest.MonkeyPatch):
    """Every model load waits for the returned gate, as a first load does: callers with a time limit
    get ``TimeoutError`` meanwhile (the core's contract)."""
    import threading

    gate, real = threading.Event(), core.shared_upscaler

    def slow(*key: str, timeout: float | None = None, cancel=None) -> core.Upscaler:
        if not gate.wait(60 if timeout is None else timeout):
            raise TimeoutError("still loading")
        return real(*key)

    monkeypatch.setattr(core, "shared_upscaler", slow)
    return gate


def run_pages() -> None:
    """AppTest script: the frame and whichever page ``_test_page`` names (navigation, as Streamlit does it)."""
    import streamlit as st

    from dashboard import frame
    from pages import PAGES

    frame.setup(with_sidebar=False)
    PAGES[st.session_state.get("_test_page", "degradation")][0]()


def run_switchable() -> None:
    """AppTest script: the frame and the page named by ``st.session_state.page`` (a page switch in one session)."""
    import streamlit as st

    from dashboard import frame
    from pages import PAGES

    frame.setup()
    PAGES[st.session_state.setdefault("page", "upscale")][0]()
