"""Joining Ray (or starting a private one) for a cluster run, failing fast and clearly where that cannot
work, and the actor pool that runs a batch of items there. Imported only by :mod:`core.cluster`: the
single-machine path never imports Ray."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import re
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import ray
import ray.data

from . import errors
from .errors import SettingsError, StudioError

__all__ = ["ATTEMPTS", "CONNECT_TIMEOUT_S", "OBJECT_STORE_ENV", "Pool", "connect", "connected", "object_store_env",
           "run_pool", "worker_error"]

CONNECT_TIMEOUT_S = 5.0  # for the head's port to answer; Ray itself retries for minutes
ITEMS_PER_TASK = 8  # items per Ray task at most
TASKS_PER_WORKER = 4  # tasks per worker at least, where there are enough items (load balance)
ATTEMPTS = 3  # a task whose worker dies (killed, out of memory) runs at most this often; then its items are lost
WAIT_REPORT_S = 5.0  # no result yet after this long: say what the run waits for (then every WAIT_REPEAT_S)
WAIT_REPEAT_S = 30.0
# the driver's object-store settings, which its workers need to read (and write) the same URIs: an S3-compatible
# endpoint (MinIO, R2, a local server), its region and credentials. Files (~/.aws) do not travel; nodes fall back
# to their own (an instance profile) for what is not set here.
OBJECT_STORE_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_EC2_METADATA_DISABLED")


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
                            "auto, or nothing for a private Ray on this machine.")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except socket.gaierror as exc:
        raise StudioError(f"Cannot find the Ray head {host!r} ({exc.strerror}): check the host name.") from exc
    except OSError as exc:
        raise StudioError(f"No Ray head answers at {address} ({exc.strerror or exc}): start one there with "
                          f"`ray start --head --port {port}`, or check the address.") from exc


def _refuse_client(address: str) -> None:
    """``ray://`` (Ray Client) is refused in one line: Ray Data's actor pools do not run through it (with grpcio
    installed, a run failed with "'Worker' object has no attribute 'core_worker'"), and without grpcio it cannot
    connect at all.

    Raises:
        SettingsError: always, with what to use instead.
    """
    host = address.removeprefix("ray://").rsplit(":", 1)[0] or "HEAD"
    raise SettingsError(f"{address} is a Ray Client address, which the studio's cluster runs cannot use (Ray Data "
                        f"needs a driver that joins the cluster). Give the head's GCS address instead ({host}:6379, "
                        "reachable from here), or run the command on a node of the cluster with --ray auto.")


def object_store_env() -> dict[str, str]:
    """The variables of :data:`OBJECT_STORE_ENV` that this process has set."""
    return {name: os.environ[name] for name in OBJECT_STORE_ENV if os.environ.get(name)}


def connect(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Join Ray at ``address``, or start a private one on this machine where it is empty (never a cluster
    that an earlier ``ray start`` left behind); returns whether this call started it (then the caller shuts
    it down). The workers of this connection get the driver's object-store settings (:data:`OBJECT_STORE_ENV`)
    through its runtime environment, so an ``s3://`` URI the driver reads is read the same way on every node.

    Raises:
        StudioError: nothing answers at the address, or Ray cannot connect (the message says what to set).
    """
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    env = object_store_env()
    if env:
        options["runtime_env"] = {"env_vars": env}
    # "auto" joins $RAY_ADDRESS where it is set: checked as if given, since Ray itself would retry a wrong one for
    # minutes (a hang past 120 s, issue 38.19)
    checked = os.environ.get("RAY_ADDRESS", "").strip() if address == "auto" else address
    if checked and checked.startswith("ray://"):
        _refuse_client(checked)
    elif checked and checked not in ("auto", "local"):
        try:
            _check_head(checked)
        except StudioError as exc:
            if address == "auto":
                raise type(exc)(f"RAY_ADDRESS={checked} (which --ray auto joins): {exc}") from None
            raise
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
        if found is not None and isinstance(kind, type) and issubclass(kind, StudioError):
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



@dataclass(frozen=True)
class Pool:
    """The actors a run asks Ray for.

    Attributes:
        workers: actors at most; ``None`` (GPU pools only): as many as the work can use.
        gpus: GPUs per actor. A GPU pool starts with the first actor that finds a GPU and grows, up to
            ``workers``, as GPU nodes join (an autoscaling cluster starts them for these requests).
        threads: CPU cores per CPU actor (its PyTorch thread count); a CPU pool is ``workers`` actors.
    """

    workers: int | None
    gpus: float = 0.0
    threads: int = 1

    @property
    def device_kind(self) -> str:
        return "cuda" if self.gpus else "cpu"

    def describe(self) -> str:
        if self.gpus:
            most = f"up to {self.workers}" if self.workers else "as many as the work can use"
            return f"GPU workers with {self.gpus:g} GPU each ({most}, started as GPUs come)"
        return f"{self.workers} CPU worker{'s' if self.workers != 1 else ''} x {self.threads} thread" + \
            ("s" if self.threads != 1 else "")

    def waiting(self) -> str:
        """What a run that has no result yet is waiting for, with what the cluster holds now."""
        total, free = ray.cluster_resources(), ray.available_resources()
        kind, need = ("GPU", self.gpus) if self.gpus else ("CPU", float(self.threads))
        if total.get(kind, 0) >= need:  # there is room for one: its actor is starting (loading its models)
            return "Starting the workers (each loads its models)…"
        have = f"{free.get(kind, 0):g} of {total.get(kind, 0):g} {kind}s free now"
        if self.gpus:
            return (f"Waiting for a worker with {need:g} GPU ({have}): an autoscaling cluster starts a GPU node for "
                    "it; otherwise add one (ray start --address HEAD:6379 --num-gpus 1).")
        return f"Waiting for a worker with {need:g} CPUs ({have}): a node with that many must join."


def run_pool(items: list[dict], worker: type, arguments: dict, pool: Pool,
             status: Callable[[str], None] | None = None) -> Iterator[dict]:
    """Stream the rows ``worker`` (a Ray Data callable class) returns for ``items``.

    Items go in tasks of a few (up to :data:`ITEMS_PER_TASK`, fewer where that would leave a worker
    without about :data:`TASKS_PER_WORKER` tasks), so Ray's per-task cost is shared while a retry
    still redoes only a few items. A dead actor is restarted and its task retried, :data:`ATTEMPTS`
    times in all (Ray's default is forever: an item that gets its worker killed for memory would
    loop); a task that still fails is dropped, and the caller turns its missing items into errors.
    While no row has come back, ``status`` hears every so often what the run waits for (a GPU node).

    Raises:
        StudioError: the workers cannot start, or Ray fails (one line, not Ray's traceback).
    """
    if not items:
        return
    expected = pool.workers or len(items)  # a growing GPU pool: tasks of one item, spread as nodes join
    per_task = max(1, min(ITEMS_PER_TASK, len(items) // (expected * TASKS_PER_WORKER)))
    blocks = math.ceil(len(items) / per_task)
    most = min(pool.workers or blocks, blocks)
    if pool.gpus:  # one actor once a GPU is there, more as GPU nodes join
        compute = ray.data.ActorPoolStrategy(min_size=1, max_size=most)
        resources: dict[str, Any] = {"num_gpus": pool.gpus}
    else:
        # one task in flight per actor: a task queued on an actor that another task's item kills would lose one of
        # its attempts each time, and a healthy image could be dropped (issue 38.19)
        compute = ray.data.ActorPoolStrategy(size=most, max_tasks_in_flight_per_actor=1)
        resources = {"num_cpus": pool.threads}
    context = ray.data.DataContext.get_current()
    saved = context.max_errored_blocks, context.op_resource_reservation_enabled
    context.max_errored_blocks = -1  # a task that failed every attempt is dropped, not the whole run
    # Ray Data's reservations keep a pool at the GPUs there were when it started: a pool must grow as nodes join
    context.op_resource_reservation_enabled = not pool.gpus
    data_log = logging.getLogger("ray.data")
    level = data_log.level
    data_log.setLevel(logging.CRITICAL)  # Ray Data logs a failure with its whole stack: the caller says it in a line
    try:
        with warnings.catch_warnings():  # Ray's own way to bound retries (its deprecation is for Ray 2.64)
            warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
            dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
                worker, batch_size=per_task, compute=compute, fn_constructor_kwargs=arguments,
                # every task may kill its actor ATTEMPTS times: an actor restarts as often as that allows (with
                # fewer, two bad items left a pool with no actor and the run hung), while each task still runs
                # at most ATTEMPTS times
                max_restarts=ATTEMPTS * blocks, max_task_retries=ATTEMPTS - 1, **resources)
        yield from _reporting(dataset.iter_rows(), pool, status)
    except StudioError:
        raise
    except Exception as exc:  # whatever Ray raised, the user gets one clear line
        raise worker_error(exc) from None
    finally:
        context.max_errored_blocks, context.op_resource_reservation_enabled = saved
        data_log.setLevel(level)


def _reporting(rows: Iterable[dict], pool: Pool, status: Callable[[str], None] | None) -> Iterator[dict]:
    """``rows``, read on a thread of their own so that, until the first arrives, this (the caller's) thread
    can say what the run waits for."""
    box: queue.Queue = queue.Queue(maxsize=16)
    stop = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                box.put(entry, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for row in rows:
                if not put(("row", row)):
                    break
            else:
                put(("end", None))
        except BaseException as exc:  # handed to the caller's thread, which raises it
            put(("error", exc))
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()

    threading.Thread(target=pump, name="ray-rows", daemon=True).start()
    report_at, arrived = time.monotonic() + WAIT_REPORT_S, False
    try:
        while True:
            try:
                kind, value = box.get(timeout=0.2)
            except queue.Empty:
                if not arrived and status is not None and time.monotonic() >= report_at:
                    status(pool.waiting())
                    report_at = time.monotonic() + WAIT_REPEAT_S
                continue
            if kind == "end":
                return
            if kind == "error":
                raise value
            arrived = True
            yield value
    finally:
        stop.set()
