"""The one module that holds Streamlit caches.

* The upscaler is a shared resource, one per (model, device, precision), loaded in the
  background (:class:`ModelLoads`) so that pages render while it loads.
* Results are keyed on the image bytes' hash plus a frozen settings dataclass, because
  Streamlit only samples large arrays when hashing them.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

import core

ModelKey = tuple[str, str, str]  # (model, device, precision) as asked in the sidebar


class ModelLoads:
    """Models loading in the background, shared by every session and thread-safe.

    Loading takes seconds on a CPU (longer when a model's weights are converted on first use);
    pages render meanwhile and show the load's status. The upscalers come from
    :func:`core.shared_upscaler`, so the API, when served in the same process, shares them, and
    its bound holds: a finished load is not kept here, so a model the core lets go (least recently
    used) is freed, and loads again when a page asks for it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loads: dict[ModelKey, tuple[Future[core.Upscaler], float]] = {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="model-wait")

    def start(self, key: ModelKey) -> Future[core.Upscaler]:
        """The load of ``key``: done at once where the core holds the model, else started (or running)."""
        with self._lock:
            load = self._loads.get(key)
            if load is not None and not (load[0].done() and load[0].exception() is None):
                return load[0]  # loading, or failed (shown, then forgotten)
            self._loads.pop(key, None)  # loaded: from here the core's bounded cache holds it
        try:
            ready: Future[core.Upscaler] = Future()
            ready.set_result(core.shared_upscaler(*key, timeout=0))
            return ready
        except TimeoutError:  # loading in the core (a first load, or again after it was let go)
            pass
        except core.StudioError as exc:
            ready = Future()
            ready.set_exception(exc)
            return ready
        with self._lock:
            if key not in self._loads:
                self._loads[key] = (self._pool.submit(core.shared_upscaler, *key), time.monotonic())
            return self._loads[key][0]

    def seconds(self, key: ModelKey) -> float:
        """Seconds since the load of ``key`` started (0 if none)."""
        with self._lock:
            load = self._loads.get(key)
        return time.monotonic() - load[1] if load else 0.0

    def forget(self, key: ModelKey, future: Future[core.Upscaler]) -> None:
        """Drop a failed load, so the next run tries again (weights may have been added)."""
        with self._lock:
            if self._loads.get(key, (None,))[0] is future:
                del self._loads[key]

    def pending(self) -> bool:
        with self._lock:
            return any(not future.done() for future, _ in self._loads.values())

    def clear(self) -> None:
        """Forget finished loads (running ones finish and stay shared by the core)."""
        with self._lock:
            self._loads = {key: load for key, load in self._loads.items() if not load[0].done()}


@st.cache_resource
def model_loads() -> ModelLoads:
    return ModelLoads()


@st.cache_data(show_spinner=False, max_entries=8)
def decode(data: bytes) -> core.DecodedImage:
    """An upload's pixels and ICC profile."""
    return core.decode_with_profile(data)


@st.cache_data(show_spinner=False, max_entries=12)
def decode_output(data: bytes) -> np.ndarray:
    """An uploaded output made elsewhere: as large as any output the studio makes itself."""
    return core.decode_image(data, core.ImageLimits(max_input_pixels=core.ImageLimits().max_output_pixels))


@st.cache_data(show_spinner=False, max_entries=16)
def sample(name: str) -> np.ndarray:
    return core.load_sample(name)


def image_key(image: np.ndarray) -> str:
    """A content hash of an image (shape, dtype and every byte)."""
    digest = hashlib.sha256(image.tobytes())
    digest.update(f"{image.shape}{image.dtype}".encode())
    return digest.hexdigest()


@st.cache_data(show_spinner=False, max_entries=32)
def baseline(_image: np.ndarray, key: str, size: tuple[int, int], method: str) -> np.ndarray:
    return core.resize(_image, size, method)


@st.cache_data(show_spinner="Computing metrics…", max_entries=32)
def scores(_images: dict[str, np.ndarray], _reference: np.ndarray | None, key: str,
           crop_border: int) -> dict[str, dict[str, float | None]]:
    return core.score_images(_images, _reference, crop_border=crop_border)


@st.cache_data(show_spinner=False, max_entries=32)
def model_summary(name: str, fingerprint: str) -> dict[str, Any]:
    """Parameter count and precision support of a model (loads it once on the CPU)."""
    loaded = core.load_model(name)
    descriptor = loaded.descriptor
    return {
        "parameters": sum(p.numel() for p in descriptor.model.parameters()),
        "fp16": descriptor.supports_half,
        "bf16": descriptor.supports_bfloat16,
        "detected": f"{descriptor.architecture.name} x{descriptor.scale}",
    }


def run_readable(run: Path) -> bool:
    """Whether a run folder's ``results.json`` reads back (checked again only when the file changes)."""
    try:
        info = (run / "results.json").stat()
    except OSError:
        return False
    return _readable(str(run), info.st_mtime_ns, info.st_size)  # the file's version is part of the key


@st.cache_data(show_spinner=False, max_entries=256)
def _readable(run: str, mtime_ns: int, size: int) -> bool:
    try:
        core.read_results(Path(run))
    except core.errors.DamagedFileError:
        return False
    return True


class ResultStore:
    """Finished results keyed by a hashable key (image hash, model, device, precision, settings).

    Not ``st.cache_data``: the computation runs in a background job that reports progress,
    which a cached function must not do. Bounded (least recently used first) and thread-safe.
    """

    def __init__(self, max_entries: int = 32) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, key: Any) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def discard(self, key: Any) -> None:
        with self._lock:
            self._items.pop(key, None)

    def __contains__(self, key: Any) -> bool:
        with self._lock:
            return key in self._items


@st.cache_resource
def result_store() -> ResultStore:
    return ResultStore()
