"""Cancellation inside one model call, below the engines.

The tiling loop checks its cancel flag between tiles. A tile on the CPU can take seconds, so the
engines also check inside a call (between blocks of the network). The loop installs the flag for
the current thread with :func:`cancellable`; an engine calls :func:`check_cancelled`, which knows
nothing about tiles or engines. The same checkpoints count the steps of a call (:func:`stepping`), so a
progress bar moves inside a tile that takes seconds, not only between tiles. Work in the background
(measuring the engines) gives way to a user's request with :func:`giving_way`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

from .errors import CancelledError

__all__ = ["Cancel", "cancellable", "check_cancelled", "give_way", "giving_way", "stepping"]

Cancel = Callable[[], bool]

_CANCEL: contextvars.ContextVar[Cancel | None] = contextvars.ContextVar("studio_cancel", default=None)
_STEP: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("studio_step", default=None)
_GIVE_WAY: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("studio_give_way", default=None)


def check_cancelled(*, step: bool = True) -> None:
    """Raise :class:`CancelledError` if the work in progress on this thread (inside
    :func:`cancellable`) was cancelled; a no-op outside it. ``step``: this checkpoint is one of a fixed
    number per call (a layer), counted by :func:`stepping`; ``False`` for a check polled by time."""
    cancel = _CANCEL.get()
    if cancel is not None and cancel():
        raise CancelledError("Cancelled by the user; no output was written.")
    if step and (on_step := _STEP.get()) is not None:
        on_step()


@contextlib.contextmanager
def stepping(on_step: Callable[[], None] | None) -> Iterator[None]:
    """While inside, each counted checkpoint (:func:`check_cancelled`) on this thread calls ``on_step()``."""
    token = _STEP.set(on_step)
    try:
        yield
    finally:
        _STEP.reset(token)


@contextlib.contextmanager
def cancellable(cancel: Cancel | None) -> Iterator[None]:
    """While inside, :func:`check_cancelled` on this thread raises once ``cancel()`` returns True."""
    token = _CANCEL.set(cancel)
    try:
        yield
    finally:
        _CANCEL.reset(token)


@contextlib.contextmanager
def giving_way(wait: Callable[[], None]) -> Iterator[None]:
    """While inside, work on this thread calls ``wait()`` at its :func:`give_way` points (an engine measurement:
    before each engine it builds and each call it times): background work waits while users are served."""
    token = _GIVE_WAY.set(wait)
    try:
        yield
    finally:
        _GIVE_WAY.reset(token)


def give_way() -> None:
    """Wait as :func:`giving_way` says; a no-op outside it."""
    if (wait := _GIVE_WAY.get()) is not None:
        wait()
