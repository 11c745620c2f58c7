"""Widget values that survive page switches and modes that hide them (Streamlit forgets a widget not drawn in
a run)."""

from __future__ import annotations

import streamlit as st

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
