"""Picking an image: a bundled sample or an upload, kept for the session, with its colour profile."""

from __future__ import annotations

import numpy as np
import streamlit as st

import core
from dashboard import cache
from dashboard.errors import show_error
from dashboard.widgets import kept, saved_upload_key

UPLOAD_TYPES = sorted(suffix.lstrip(".") for suffix in core.IMAGE_SUFFIXES)  # what the core decodes


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
