"""A bounded queue in front of the device: a few requests run, a few wait, the rest get 503."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class BusyError(Exception):
    """No slot and no room to wait: the client should retry later."""


class GaveUpError(Exception):
    """The caller stopped waiting (its client disconnected)."""


class WorkGate:
    """At most ``max_running`` holders at once and ``max_waiting`` waiters; thread-safe."""

    def __init__(self, max_running: int, max_waiting: int) -> None:
        self._slots = threading.Semaphore(max_running)
        self._lock = threading.Lock()
        self._max_total = max_running + max_waiting
        self.running = 0
        self.waiting = 0

    @property
    def depth(self) -> int:
        with self._lock:
            return self.running + self.waiting

    @contextmanager
    def slot(self, timeout: float, cancelled: Callable[[], bool] | None = None) -> Iterator[float]:
        """Hold a slot; yields the seconds spent waiting.

        Raises :class:`BusyError` when full or after ``timeout`` s of waiting, and
        :class:`GaveUpError` when ``cancelled()`` turns true while waiting (polled 4 times a second).
        """
        with self._lock:
            if self.running + self.waiting >= self._max_total:
                raise BusyError("The server is busy: too many requests are queued.")
            self.waiting += 1
        start = time.monotonic()
        deadline = start + timeout
        acquired = gave_up = False
        try:
            while True:
                left = deadline - time.monotonic()
                acquired = self._slots.acquire(timeout=max(0.0, min(left, 0.25)))
                if acquired or left <= 0:
                    break
                if cancelled is not None and cancelled():
                    gave_up = True
                    break
        finally:
            with self._lock:
                self.waiting -= 1
                if acquired:
                    self.running += 1
        if gave_up:
            raise GaveUpError("The client went away while waiting.")
        if not acquired:
            raise BusyError("The server is busy: the request waited too long for the device.")
        try:
            yield time.monotonic() - start
        finally:
            with self._lock:
                self.running -= 1
            self._slots.release()
