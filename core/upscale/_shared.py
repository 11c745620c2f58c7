"""The process-wide loaded upscalers, shared by the dashboard and the API.

One process holds one copy of a model per (device, precision), however many sessions and
requests use it. Loads run on a small pool of their own, one per model at a time: a model's
first load (tens of seconds) never holds up requests for models already loaded, and callers
wait for it with their own time limit and cancel flag while it goes on for the next caller.
The cache is bounded: at most ``STUDIO_MAX_MODELS`` models (default 4), and before a new load
the least recently used ones go while the host has less than ``MIN_FREE_BYTES`` available.
An upscaler still in use when it leaves the cache lives on until its callers finish.

A model's first load on a machine does not wait for its engines to be measured (tens of seconds,
OpenVINO compiling included): it starts on the engine measured before, or on the reference, which
needs no compile, and a background thread measures once the model has been idle for
:data:`MEASURE_WHEN_IDLE_S` (a measurement beside a user's first request would slow it down 3x on
two cores), and pauses whenever a request comes meanwhile; when it is done, the measured engine
replaces the first one for the next callers (the one in use finishes its work).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from .._cancel import giving_way
from .._device import host_memory, resolve_device
from .._settings import max_models
from ..engines import EngineOptions
from ..errors import CancelledError
from ._upscaler import Upscaler

__all__ = ["MIN_FREE_BYTES", "clear_shared", "shared_keys", "shared_upscaler", "wait_for_measurements"]

MIN_FREE_BYTES = 1 << 30  # host memory a new load leaves free, evicting the least recently used models
_POLL_S = 0.25

Key = tuple[str, str, str, str]

_ready: OrderedDict[Key, Upscaler] = OrderedDict()
_loading: dict[Key, Future] = {}
_lock = threading.Lock()
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="studio-model-load")
_measuring: dict[Key, threading.Thread] = {}
MEASURE_WHEN_IDLE_S = 10.0  # the background measurement starts once the model has served nothing for this long
log = logging.getLogger(__name__)


def _key(name: str, device: str, precision: str, weights_dir: Path | None) -> Key:
    """One key per copy in memory: on the CPU ``auto`` precision is fp32, so both share one copy."""
    resolved = resolve_device(device).device if device == "auto" else device
    if resolved == "cpu" and precision == "auto":
        precision = "fp32"
    return name, resolved, precision, str(weights_dir or "")


def _load(key: Key) -> Upscaler:
    name, device, precision, weights_dir = key
    try:
        upscaler = Upscaler.load(name, device=device, precision=precision, weights_dir=Path(weights_dir) if weights_dir
                                 else None, engine=EngineOptions(measure_later=True))
    finally:
        with _lock:
            _loading.pop(key, None)
    with _lock:
        _ready[key] = upscaler
        _ready.move_to_end(key)
        _evict(keep=key)
        if upscaler.measurement_due and key not in _measuring:
            log.info("%s runs on %s until its engines are measured (in the background)", name, upscaler.engine)
            _measuring[key] = threading.Thread(target=_measure, args=(key, upscaler), daemon=True,
                                               name=f"studio-engine-measure-{name}")
            _measuring[key].start()
    return upscaler


def _measure(key: Key, first: Upscaler) -> None:
    """Measure the CPU engines of ``key``'s model (``engine="auto"``) once ``first`` (the upscaler serving
    meanwhile) has been idle a while, then serve it with the measured engine."""
    name, device, precision, weights_dir = key

    def quiet(idle: Callable[[], float]) -> None:  # wait until ``first`` has served nothing for ``idle()`` seconds
        while first.idle_seconds() < idle():
            time.sleep(min(0.5, idle() / 4))

    quiet(lambda: MEASURE_WHEN_IDLE_S)
    with _lock:
        if _ready.get(key) is not first:  # evicted or cleared meanwhile: nothing to improve
            _measuring.pop(key, None)
            return
    try:
        with giving_way(lambda: quiet(lambda: 1.0)):  # each timed call waits while a user's request runs
            measured = Upscaler.load(name, device=device, precision=precision,
                                     weights_dir=Path(weights_dir) if weights_dir else None)
    except Exception as exc:  # the first engine serves on; the next first load measures again
        log.warning("could not measure the engines of %s (%s); it stays on its first engine", name, exc)
        return
    finally:
        with _lock:
            _measuring.pop(key, None)
    with _lock:
        if key in _ready:  # not evicted meanwhile
            _ready[key] = measured
            log.info("%s now runs on %s (measured)", name, measured.engine)


def wait_for_measurements(timeout: float | None = None) -> bool:
    """Wait for the background engine measurements under way; ``False`` if some still run after ``timeout``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with _lock:
            threads = list(_measuring.values())
        if not threads:
            return True
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if deadline is not None and time.monotonic() >= deadline:
            with _lock:
                return not _measuring


def _evict(keep: Key | None = None) -> None:
    """Drop least recently used models over the count limit, or while the host is short of memory (lock held)."""
    limit = max_models()
    while len(_ready) > limit or (len(_ready) > (keep is not None) and _short_of_memory()):
        oldest = next(iter(_ready))
        if oldest == keep:
            break
        del _ready[oldest]


def _short_of_memory() -> bool:
    memory = host_memory()
    return memory is not None and memory[0] < MIN_FREE_BYTES


def shared_upscaler(name: str, device: str = "auto", precision: str = "auto", weights_dir: Path | None = None, *,
                    timeout: float | None = None, cancel: Callable[[], bool] | None = None) -> Upscaler:
    """The process-wide upscaler of ``(name, device, precision)``, loaded once.

    Args:
        timeout: seconds to wait for a load in progress (``None``: as long as it takes). The load
            goes on after a time-out; the next call gets its result.
        cancel: polled 4 times a second while waiting; when true, :class:`CancelledError`.

    Raises:
        TimeoutError: the model is still loading after ``timeout`` seconds.
        CancelledError: ``cancel()`` turned true while waiting.
        StudioError: the load failed (the next call tries again).
    """
    key = _key(name, device, precision, weights_dir)
    with _lock:
        upscaler = _ready.get(key)
        if upscaler is not None:
            _ready.move_to_end(key)
            return upscaler
        future = _loading.get(key)
        if future is None:
            _evict()  # room first: the new model needs its memory now
            future = _loading[key] = _pool.submit(_load, key)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = _POLL_S if cancel is not None else None
        if deadline is not None:
            left = max(0.0, deadline - time.monotonic())
            step = left if step is None else min(step, left)
        try:
            return future.result(timeout=step)
        except TimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{name} is still loading (a first load takes up to a minute).") from None
            if cancel is not None and cancel():
                raise CancelledError(f"Stopped waiting for {name} to load.") from None


def shared_keys() -> list[Key]:
    """The ``(model, device, precision, weights folder)`` of every loaded model, least recently used first."""
    with _lock:
        return list(_ready)


def clear_shared() -> int:
    """Forget every shared upscaler; their memory is freed once no caller holds them, and the
    CUDA allocator's cached blocks of the ones already unreferenced are given back now."""
    with _lock:
        count = len(_ready)
        _ready.clear()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return count
