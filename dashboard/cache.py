"""The one module that holds Streamlit caches.

* The upscaler is a shared resource, one per (model, device, precision).
* Results are cached on the image bytes' hash plus the frozen settings, because
  Streamlit only samples large arrays when hashing them.
"""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

import core


@st.cache_resource(show_spinner="Loading model…", max_entries=4)
def get_upscaler(model: str, device: str, precision: str) -> core.Upscaler:
    return core.Upscaler.load(model, device=device, precision=precision)


@st.cache_data(show_spinner=False, max_entries=8)
def decode(data: bytes) -> np.ndarray:
    return core.decode_image(data)


def image_key(image: np.ndarray) -> str:
    """A content hash of an image (shape, dtype and every byte)."""
    digest = hashlib.sha256(image.tobytes())
    digest.update(f"{image.shape}{image.dtype}".encode())
    return digest.hexdigest()


@st.cache_data(show_spinner=False, max_entries=16)
def bicubic(_image: np.ndarray, key: str, size: tuple[int, int], method: str) -> np.ndarray:
    return core.resize(_image, size, method)


@st.cache_resource(max_entries=1)
def result_store() -> dict[tuple[str, str, str, str, core.UpscaleSettings], core.UpscaleResult]:
    """Finished upscales keyed by (image hash, model, device, precision, settings).

    A plain dict in a resource, not ``st.cache_data``: the computation reports
    progress to the page, which a cached function must not do.
    """
    return {}
