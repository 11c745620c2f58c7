"""Error messages with a way forward: what happened and what to do, never a traceback."""

from __future__ import annotations

import streamlit as st

import core


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
