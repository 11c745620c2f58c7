"""Cancellation inside one model call, below the engines.

The tiling loop checks its cancel flag between tiles. A tile on the CPU can take seconds, so the
engines also check inside a call (between blocks of the network). The loop installs the flag for
the current thread with :func:`cancellable`; an engine calls :func:`check_cancelled`, which knows
nothing about tiles or engines.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

from .errors import CancelledError

__all__ = ["Cancel", "cancellable", "check_cancelled"]

Cancel = Callable[[], bool]

_CANCEL: contextvars.ContextVar[Cancel | None] = contextvars.ContextVar("studio_cancel", default=None)


def check_cancelled() -> None:
    """Raise :class:`CancelledError` if the work in progress on this thread (inside
    :func:`cancellable`) was cancelled; a no-op outside it."""
    cancel = _CANCEL.get()
    if cancel is not None and cancel():
        raise CancelledError("Cancelled by the user; no output was written.")


@contextlib.contextmanager
def cancellable(cancel: Cancel | None) -> Iterator[None]:
    """While inside, :func:`check_cancelled` on this thread raises once ``cancel()`` returns True."""
    token = _CANCEL.set(cancel)
    try:
        yield
    finally:
        _CANCEL.reset(token)
