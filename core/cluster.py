"""Evaluation and batch upscaling on a Ray cluster, with the same results as one machine.

Imported only when a command asks for a cluster (``--ray``); the single-machine path never
imports Ray. The driver lists the work, drops what the result store already holds, and hands
the rest to Ray Data: ``map_batches`` over an actor pool, one actor per GPU where the cluster
has GPUs (else one per ``threads`` CPU cores), each holding its models, loaded once. Workers
read the images themselves and return rows (metrics, or encoded PNGs); the driver is the only
writer of the result store and of output files, and writes each row as it arrives.

Faults: a worker that dies is restarted by Ray and its task retried, so its rows arrive once;
an image whose worker dies on every one of :data:`ATTEMPTS` tries becomes an error row (Ray's
default would retry it forever). A driver that dies loses no finished row (each was stored on
arrival), and a re-run computes only the rest. A bad image becomes an error row, as on one
machine; a model that cannot load on the workers ends the run with the studio's one-line message.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import ray
import ray.data
import torch

from ._io import IMAGE_SUFFIXES, DecodedImage, ImageLimits, decode_with_profile, encode_png, read_with_profile
from ._ray import connect, connected, worker_error
from .errors import (
    ImageDecodeError,
    ImageTooLargeError,
    SettingsError,
    StudioError,
    UnknownNameError,
    WeightsMissingError,
)
from .evaluation import (
    BASELINES,
    HR_METHOD,
    Dataset,
    EvalHooks,
    EvalResult,
    EvalRow,
    EvalSettings,
    Pair,
    ResultDB,
    Scoring,
    Upscalers,
    check_dataset,
    compute_row,
    error_row,
    stored_row,
)
from .metrics import METRICS, check_ready
from .models import ModelInfo, model_info
from .upscale import Upscaler, UpscaleSettings

__all__ = ["ClusterSettings", "UpscaleOutcome", "connect", "evaluate_on_ray", "is_uri", "list_uri", "read_any",
           "upscale_on_ray"]

ITEMS_PER_TASK = 8  # images per Ray task at most
TASKS_PER_WORKER = 4  # tasks per worker at least, where there are enough images (load balance)
ATTEMPTS = 3  # a task whose worker dies (killed, out of memory) runs at most this often; then its rows are errors


@dataclass(frozen=True)
class ClusterSettings:
    """Where and how wide work runs on Ray.

    Attributes:
        address: ``None`` or ``""``: start a local Ray on this machine; ``"auto"``: the cluster
            this machine belongs to (``RAY_ADDRESS``); ``"ray://host:10001"``: Ray Client; or
            ``"host:6379"``.
        workers: actors in the pool; ``None``: one per GPU where the cluster has GPUs, else
            ``CPUs // threads``.
        threads: CPU threads per CPU actor (the PyTorch / ncnn thread count), fixed so results
            and speed do not depend on where an actor lands.
        gpus: give each actor a GPU; ``None``: where the cluster has GPUs and the device asked
            for is not ``cpu``.
    """

    address: str | None = None
    workers: int | None = None
    threads: int = 1
    gpus: bool | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise SettingsError("workers must be >= 1.")
        if self.threads < 1:
            raise SettingsError("threads must be >= 1.")


@dataclass(frozen=True)
class _Pool:
    workers: int
    gpus: bool
    threads: int

    @property
    def device_kind(self) -> str:
        return "cuda" if self.gpus else "cpu"


def _pool(cluster: ClusterSettings, device: str) -> _Pool:
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    use_gpus = (gpus > 0 and device != "cpu") if cluster.gpus is None else cluster.gpus
    if use_gpus and gpus == 0:
        raise SettingsError("GPU workers were asked for, but the cluster has no GPU.")
    workers = cluster.workers or (gpus if use_gpus else max(1, cpus // cluster.threads))
    return _Pool(workers, use_gpus, cluster.threads)


def _available(name: str, weights_dir: Path | None) -> ModelInfo:
    info = model_info(name, weights_dir)
    if not info.available:
        raise WeightsMissingError(f"{name}: {info.reason}")
    return info


def _worker_device(pool: _Pool, device: str) -> str:
    return "cuda" if pool.gpus else ("cpu" if device == "auto" else device)


def _run(items: list[dict], worker: type, arguments: dict, pool: _Pool) -> Iterator[dict]:
    """Stream the rows ``worker`` returns for ``items``.

    Items go in tasks of a few (up to :data:`ITEMS_PER_TASK`, fewer where that would leave a worker
    without about :data:`TASKS_PER_WORKER` tasks), so Ray's per-task cost is shared while a retry
    still redoes only a few items. A dead actor is restarted and its task retried, :data:`ATTEMPTS`
    times in all (Ray's default is forever: an image that gets its worker killed for memory would
    loop); a task that still fails is dropped, and the caller turns its missing items into error rows.
    A worker that cannot start (its model does not load there) ends the run with the studio's message.

    Raises:
        StudioError: the workers cannot start, or Ray fails (one line, not Ray's traceback).
    """
    if not items:
        return
    per_task = max(1, min(ITEMS_PER_TASK, len(items) // (pool.workers * TASKS_PER_WORKER)))
    resources = {"num_gpus": 1} if pool.gpus else {"num_cpus": pool.threads}
    blocks = math.ceil(len(items) / per_task)
    context = ray.data.DataContext.get_current()
    errored = context.max_errored_blocks
    context.max_errored_blocks = -1  # a task that failed every attempt is dropped, not the whole run
    data_log = logging.getLogger("ray.data")
    level = data_log.level
    data_log.setLevel(logging.CRITICAL)  # Ray Data logs a failure with its whole stack: the caller says it in a line
    try:
        with warnings.catch_warnings():  # Ray's own way to bound retries (its deprecation is for Ray 2.64)
            warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
            dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
                worker, batch_size=per_task, compute=ray.data.ActorPoolStrategy(size=min(pool.workers, blocks)),
                fn_constructor_kwargs=arguments, max_restarts=ATTEMPTS - 1, max_task_retries=ATTEMPTS - 1,
                **resources)
        yield from dataset.iter_rows()
    except StudioError:
        raise
    except Exception as exc:  # whatever Ray raised, the user gets one clear line
        raise worker_error(exc) from None
    finally:
        context.max_errored_blocks = errored
        data_log.setLevel(level)


def _lost(item: str, method: str | None = None) -> str:
    where = f"{item} · {method}" if method else item
    return (f"{where}: its worker died {ATTEMPTS} times (killed, or out of memory?); try a smaller tile, or "
            "fewer workers per node.")


def _set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


class _EvalWorker:
    """One actor: scores the pending methods of one image per call, models loaded once per actor."""

    def __init__(self, dataset: Dataset, context: Scoring, device: str, precision: str,
                 weights_dir: Path | None, threads: int | None) -> None:
        _set_threads(threads)
        self._dataset, self._context = dataset, context
        self._upscalers = Upscalers(lambda name: Upscaler.load(name, device=device, precision=precision,
                                                               weights_dir=weights_dir))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {"item": [], "row": [], "digest": [], "settings": [], "pid": []}
        for index, methods in zip(batch["item"], batch["methods"]):
            item = self._dataset.items[int(index)]
            try:
                pair, failure = Pair.load(self._dataset, item), None
            except StudioError as exc:
                pair, failure = None, exc
            for method in json.loads(methods):
                digest = settings = ""
                if pair is None:
                    row = error_row(item.name, method, failure)
                else:
                    try:
                        upscaler = self._upscalers.get(method)
                        row = compute_row(self._context, pair, method, upscaler, self._context.wanted(method))
                        digest, settings = pair.digest, self._context.key(method, upscaler, pair.grey)
                    except StudioError as exc:
                        row = error_row(item.name, method, exc)
                out["item"].append(int(index))
                out["row"].append(json.dumps(asdict(row)))  # floats round-trip exactly; inf as Infinity
                out["digest"].append(digest)
                out["settings"].append(settings)
                out["pid"].append(os.getpid())
        return out


def evaluate_on_ray(
    dataset: Dataset,
    methods: list[str],
    metrics: list[str],
    settings: EvalSettings | None = None,
    *,
    cluster: ClusterSettings | None = None,
    db: ResultDB | None = None,
    weights_dir: Path | None = None,
    hooks: EvalHooks | None = None,
) -> EvalResult:
    """:func:`core.evaluate` on a Ray cluster: the same rows, the same store, the same
    :class:`~core.evaluation.EvalHooks` (``on_row`` gets the pid of the worker that computed a row).
    """
    settings, hooks = settings or EvalSettings(), hooks or EvalHooks()
    cluster = cluster or ClusterSettings()
    weights_dir = weights_dir.absolute() if weights_dir is not None else None  # as the driver sees it
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UnknownNameError(f"Unknown metrics {unknown}; known: {', '.join(METRICS)}.")
    check_ready(metrics)
    check_dataset(dataset, methods, metrics)
    crop = dataset.scale if settings.crop_border is None else settings.crop_border
    context = Scoring(tuple(metrics), settings, crop, dataset.scale, None)
    models = [m for m in methods if m not in BASELINES and m != HR_METHOD]
    weights = {m: _available(m, weights_dir).fingerprint for m in models}
    result = EvalResult(dataset.name, dataset.scale, dataset.lr_source, list(methods), list(metrics), settings)
    with connected(cluster.address):
        pool = _pool(cluster, settings.device)
        rows, todo = _finished(dataset, methods, context, pool, weights, db)
        total, start = len(dataset) * len(methods), time.perf_counter()
        for row in rows.values():
            if hooks.on_row is not None:
                hooks.on_row(row, None)
        if hooks.progress is not None:
            hooks.progress(len(rows), total, f"{len(rows)} reused")
        arguments = {"dataset": dataset, "context": context, "device": _worker_device(pool, settings.device),
                     "precision": settings.precision, "weights_dir": weights_dir,
                     "threads": None if pool.gpus else pool.threads}
        keys = {entry["item"]: entry["key"] for entry in todo}
        for computed, out in enumerate(_run(todo, _EvalWorker, arguments, pool), start=1):
            row = EvalRow(**json.loads(out["row"]))
            index = int(out["item"])
            if db is not None and not row.error:
                work = context.work(row.method, pool.device_kind, weights.get(row.method))
                db.put(out["digest"], row.method, out["settings"], row, item=(keys[index], work))
            rows[(index, row.method)] = row
            if hooks.on_row is not None:
                hooks.on_row(row, int(out["pid"]))
            if hooks.progress is not None:
                rate = computed / max(time.perf_counter() - start, 1e-9)
                hooks.progress(len(rows), total, f"{row.image} · {row.method} · {rate:.2f} rows/s")
            if hooks.cancelled():
                result.cancelled = True
                break
        if not result.cancelled:  # what never came back: its worker died on every attempt
            for entry in todo:
                for method in json.loads(entry["methods"]):
                    name = dataset.items[entry["item"]].name
                    rows.setdefault((entry["item"], method), error_row(name, method, StudioError(_lost(name, method))))
    result.rows = [rows[(i, m)] for i in range(len(dataset)) for m in methods if (i, m) in rows]
    return result


def _finished(dataset: Dataset, methods: list[str], context: Scoring, pool: _Pool, weights: dict[str, str],
              db: ResultDB | None) -> tuple[dict[tuple[int, str], EvalRow], list[dict]]:
    """The rows the store already holds, and the work left: ``{"item", "methods", "key"}`` per image."""
    rows: dict[tuple[int, str], EvalRow] = {}
    todo = []
    for index, item in enumerate(dataset.items):
        key = dataset.item_key(item)
        pending = []
        for method in methods:
            found = db.find(key, method, context.work(method, pool.device_kind, weights.get(method))) if db else None
            stored = db.get(found[0], method, found[1]) if db is not None and found else None
            wanted = context.wanted(method)
            if stored is not None and all(m in stored[0] for m in wanted):
                rows[(index, method)] = stored_row(item.name, method, wanted, stored)
            else:
                pending.append(method)
        if pending:
            todo.append({"item": index, "methods": json.dumps(pending), "key": key})
    return rows, todo


@dataclass(frozen=True)
class UpscaleOutcome:
    """One input of a batch upscale: the PNG (``None`` where it failed, with ``error``)."""

    index: int
    png: bytes | None
    size: tuple[int, int]
    seconds: float
    error: str
    pid: int


class _UpscaleWorker:
    """One actor: upscales one input per call with its model, loaded once."""

    def __init__(self, model: str, settings: UpscaleSettings, device: str, precision: str,
                 weights_dir: Path | None, threads: int | None) -> None:
        _set_threads(threads)
        self._upscaler = Upscaler.load(model, device=device, precision=precision, weights_dir=weights_dir)
        self._settings = settings

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {"index": [], "png": [], "width": [], "height": [], "seconds": [], "error": [],
                                "pid": []}
        for index, path in zip(batch["index"], batch["path"]):
            png, width, height, seconds, error = b"", 0, 0, 0.0, ""
            try:
                image = read_any(str(path), self._settings.limits)
                result = self._upscaler.upscale(image.pixels, self._settings)
                png, seconds = encode_png(result.image, icc_profile=image.icc_profile), result.seconds
                height, width = result.image.shape[:2]
            except StudioError as exc:
                error = str(exc)
            except OSError as exc:
                error = f"{exc.strerror or exc}: {exc.filename or path}"
            for name, value in (("index", int(index)), ("png", png), ("width", width), ("height", height),
                                ("seconds", seconds), ("error", error), ("pid", os.getpid())):
                out[name].append(value)
        return out


def is_uri(name: str | Path) -> bool:
    return "://" in str(name)


def list_uri(uri: str) -> list[str]:
    """The image files a URI names (``s3://bucket/prefix/``, ``gs://…``, ``file:///…``): the file itself,
    or the images in that folder (not recursive), sorted; read through pyarrow's file systems."""
    import pyarrow.fs

    try:
        fs, root = pyarrow.fs.FileSystem.from_uri(uri)
        info = fs.get_file_info(root)
        if info.type == pyarrow.fs.FileType.NotFound:
            raise StudioError(f"{uri}: no such file or folder.")
        if info.type == pyarrow.fs.FileType.File:
            return [uri]
        entries = fs.get_file_info(pyarrow.fs.FileSelector(root))
    except (OSError, pyarrow.ArrowException) as exc:
        raise StudioError(f"Cannot list {uri}: {exc}") from exc
    base = uri.rstrip("/")
    return sorted(f"{base}/{e.base_name}" for e in entries
                  if e.type == pyarrow.fs.FileType.File and Path(e.base_name).suffix.lower() in IMAGE_SUFFIXES)


def read_any(name: str, limits: ImageLimits) -> DecodedImage:
    """Decode a local image file or one at a URI (through pyarrow's file systems), refusing it over
    ``limits.max_file_bytes`` before it is read; with its ICC profile."""
    if not is_uri(name):
        return read_with_profile(name, limits)
    import pyarrow.fs

    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(name)
        size = fs.get_file_info(path).size
        if size is not None and size > limits.max_file_bytes:
            raise ImageTooLargeError(f"{name}: {size} bytes; the limit is {limits.max_file_bytes}.")
        with fs.open_input_stream(path) as stream:
            data = stream.read()
    except (OSError, pyarrow.ArrowException) as exc:
        raise ImageDecodeError(f"Cannot read {name}: {exc}") from exc
    return decode_with_profile(data, limits)


def upscale_on_ray(
    inputs: list[str | Path],  # local paths (on every worker) or URIs (see read_any)
    model: str,
    settings: UpscaleSettings | None = None,
    *,
    cluster: ClusterSettings | None = None,
    device: str = "auto",
    precision: str = "auto",
    weights_dir: Path | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Iterator[UpscaleOutcome]:
    """Upscale ``inputs`` on a Ray cluster; yields each outcome as it arrives (any order; ``index``
    is the input's position). The caller writes the files, so one process owns the outputs."""
    settings = settings or UpscaleSettings(limits=ImageLimits())
    cluster = cluster or ClusterSettings()
    weights_dir = weights_dir.absolute() if weights_dir is not None else None  # as the driver sees it
    _available(model, weights_dir)  # a missing model fails here, before any cluster work
    with connected(cluster.address):
        pool = _pool(cluster, device)
        arguments = {"model": model, "settings": settings, "device": _worker_device(pool, device),
                     "precision": precision, "weights_dir": weights_dir,
                     "threads": None if pool.gpus else pool.threads}
        # paths as the driver sees them: a worker started in another folder reads the same file
        items = [{"index": i, "path": path if is_uri(path) else str(Path(path).absolute())}
                 for i, path in enumerate(inputs)]
        returned = set()
        for out in _run(items, _UpscaleWorker, arguments, pool):
            returned.add(int(out["index"]))
            yield UpscaleOutcome(int(out["index"]), out["png"] or None, (int(out["width"]), int(out["height"])),
                                 float(out["seconds"]), out["error"], int(out["pid"]))
            if cancel is not None and cancel():
                return
        for item in items:  # what never came back: its worker died on every attempt
            if item["index"] not in returned:
                yield UpscaleOutcome(item["index"], None, (0, 0), 0.0, _lost(str(item["path"])), -1)
