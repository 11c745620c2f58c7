"""Joining Ray (or starting a private one) for a cluster run, failing fast and clearly where that cannot
work. Imported only by :mod:`core.cluster`: the single-machine path never imports Ray."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

import ray
import ray.data

from . import errors
from .errors import SettingsError, StudioError

__all__ = ["CONNECT_TIMEOUT_S", "connect", "connected", "worker_error"]

CONNECT_TIMEOUT_S = 5.0  # for the head's port to answer; Ray itself retries for minutes


def _check_head(address: str) -> None:
    """Fail in seconds where nothing listens at ``host:port`` (Ray would print a warning every few seconds
    for minutes), with what to do.

    Raises:
        SettingsError: not a ``host:port`` address.
        StudioError: the host is unknown, or nothing answers on the port.
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SettingsError(f"{address!r} is not a Ray address: use host:port (e.g. 10.0.0.5:6379), "
                            "ray://host:10001, auto, or nothing for a private Ray on this machine.")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except socket.gaierror as exc:
        raise StudioError(f"Cannot find the Ray head {host!r} ({exc.strerror}): check the host name.") from exc
    except OSError as exc:
        raise StudioError(f"No Ray head answers at {address} ({exc.strerror or exc}): start one there with "
                          f"`ray start --head --port {port}`, or check the address.") from exc


def _check_client(address: str) -> None:
    """``ray://`` (Ray Client) needs grpcio, which ``ray[data]`` does not bring."""
    if importlib.util.find_spec("grpc") is None:
        raise StudioError(f"{address} is a Ray Client address, which needs Ray's client extra: "
                          ".venv/bin/pip install 'ray[client]==2.60.0'. Or run the command on a node of the "
                          "cluster with --ray auto, or give the head's host:6379.")
    _check_head(address.removeprefix("ray://"))


def connect(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Join Ray at ``address``, or start a private one on this machine where it is empty (never a cluster
    that an earlier ``ray start`` left behind); returns whether this call started it (then the caller shuts
    it down).

    Raises:
        StudioError: nothing answers at the address, or Ray cannot connect (the message says what to set).
    """
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if address and address.startswith("ray://"):
        _check_client(address)
    elif address and address != "auto":
        _check_head(address)
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(address="local", num_cpus=num_cpus, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local Ray"
        hint = ("" if os.environ.get("RAY_AUTH_MODE") else
                " If the cluster was started with RAY_AUTH_MODE=token, set RAY_AUTH_MODE=token here too, with "
                "its token in RAY_AUTH_TOKEN (or ~/.ray/auth_token).")
        raise StudioError(f"Could not connect to {where}: {exc}.{hint}") from exc
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the caller shows progress, with throughput
    context.print_on_execution_start = False
    return True


_users = 0  # runs in progress in this process (dashboard sessions share one connection)
_owned = False  # whether those runs' connection was made here (then the last one closes it)
_users_lock = threading.Lock()


@contextlib.contextmanager
def connected(address: str | None) -> Iterator[None]:
    """Ray, connected for the length of one run; the last run of this process to end shuts down what
    the first one started (a Ray that was connected before is left as it was)."""
    global _users, _owned
    with _users_lock:
        if _users == 0:
            _owned = connect(address)
        _users += 1
    try:
        yield
    finally:
        with _users_lock:
            _users -= 1
            if _users == 0 and _owned:
                ray.shutdown()
                _owned = False


def worker_error(exc: BaseException) -> StudioError:
    """What a failure on the Ray workers means to a user: the studio's own error where one caused it (a model
    that cannot load there, a device they lack), said in one line, never Ray's traceback of hundreds of lines."""
    seen, stack = set(), [exc]
    while stack:
        error = stack.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        cause = getattr(error, "cause", None)  # a RayTaskError keeps the worker's exception here
        if isinstance(cause, StudioError) and not isinstance(cause, ray.exceptions.RayError):
            return _again(cause)
        if isinstance(error, StudioError) and not isinstance(error, ray.exceptions.RayError):
            return _again(error)
        stack += [e for e in (cause, error.__cause__, error.__context__) if isinstance(e, BaseException)]
    # an actor whose constructor raised comes back as text only: its traceback ends "module.Kind: message"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        found = re.match(r"^core\.errors\.(\w+): (.+)$", line)
        kind = getattr(errors, found[1], None) if found else None
        if isinstance(kind, type) and issubclass(kind, StudioError):
            return _again(kind(found[2]))
    last = next((line for line in reversed(lines) if re.match(r"^[\w.]+(Error|Exception): ", line)),
                lines[0] if lines else type(exc).__name__)
    return StudioError(f"The Ray workers failed: {last[:300]}")


def _again(error: StudioError) -> StudioError:
    """``error``'s kind and message, said to have happened on a worker."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    try:
        return type(error)(f"On a Ray worker: {message}")
    except TypeError:  # a kind with other arguments
        return StudioError(f"On a Ray worker: {message}")

