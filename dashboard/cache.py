"""The one module that holds Streamlit caches.

* The upscaler is a shared resource, one per (model, device, precision).
* Results are cached on the image bytes' hash plus the frozen settings, because
  Streamlit only samples large arrays when hashing them.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

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


ResultKey = tuple[str, str, str, str, core.UpscaleSettings]


class ResultStore:
    """Finished upscales keyed by (image hash, model, device, precision, settings).

    Not ``st.cache_data``: the computation reports progress to the page, which a cached
    function must not do. Bounded (least recently used entries go first) and thread-safe.
    """

    def __init__(self, max_entries: int = 16) -> None:
        self._items: OrderedDict[ResultKey, core.UpscaleResult] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, key: ResultKey) -> core.UpscaleResult | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: ResultKey, result: core.UpscaleResult) -> None:
        with self._lock:
            self._items[key] = result
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def __contains__(self, key: ResultKey) -> bool:
        with self._lock:
            return key in self._items


@st.cache_resource
def result_store() -> ResultStore:
    return ResultStore()
