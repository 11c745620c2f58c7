"""Evaluation and batch upscaling on a Ray cluster, with the same results as one machine.

Imported only when a command asks for a cluster (``--ray``); the single-machine path never
imports Ray. The driver lists the work, drops what the result store already holds, decides how every
worker runs each model (one engine, one tile size: the same numbers on unlike nodes), and hands the
rest to Ray Data: ``map_batches`` over an actor pool (:class:`core._ray.Pool`), each actor holding its
models, loaded once. GPU workers ask Ray for their GPU, so an autoscaling cluster starts GPU nodes for
them, and the pool grows as they join. Workers read the images themselves and return rows (metrics,
or encoded PNGs); the driver is the only writer of the result store and of output files, and writes
each row as it arrives.

Faults: a worker that dies is restarted by Ray and its task retried, so its rows arrive once;
an image whose worker dies on every one of :data:`ATTEMPTS` tries becomes an error row (Ray's
default would retry it forever). A driver that dies loses no finished row (each was stored on
arrival), and a re-run computes only the rest. A bad image becomes an error row, as on one
machine; a model that cannot load on the workers ends the run with the studio's one-line message.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

from ._io import ImageLimits
from ._ray import ATTEMPTS, Pool, connect, connected, run_pool
from ._settings import default_weights_dir
from ._uri import is_uri
from .engines import AUTO, default_engine
from .errors import (
    DeviceUnavailableError,
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
    outside_outputs,
    stored_row,
)
from .metrics import METRICS, check_ready
from .models import ModelInfo, model_info
from .pipeline import ClusterSettings, ModelRun, UpscaleOutcome, upscale_one
from .upscale import Upscaler, UpscaleSettings, default_tile

__all__ = ["ClusterSettings", "ModelRun", "Plan", "RayExecutor", "UpscaleOutcome", "connect", "evaluate_on_ray",
           "upscale_on_ray"]


def _pool(cluster: ClusterSettings, device: str) -> Pool:
    """The workers this run asks for (see :class:`ClusterSettings`).

    Raises:
        SettingsError: GPU workers with a non-CUDA device, or on a private Ray of a machine without a GPU.
    """
    resources = ray.cluster_resources()
    gpus, cpus = resources.get("GPU", 0.0), int(resources.get("CPU", 1))
    per = cluster.gpus_per_worker
    if per is None:
        per = 1.0 if device.startswith("cuda") or (device == "auto" and gpus > 0) else 0.0
    if not per:
        return Pool(cluster.workers or max(1, cpus // cluster.threads), 0.0, cluster.threads)
    if device != "auto" and not device.startswith("cuda"):
        raise SettingsError(f"GPU workers ({per:g} GPU each) cannot run on --device {device}: use cuda or auto, "
                            "or --gpus-per-worker 0 for CPU workers.")
    if not cluster.address and gpus < per:
        raise SettingsError(f"GPU workers were asked for, but this machine has {gpus:g} GPU that Ray can use, and "
                            "no other node can join a private Ray: give a cluster's address, or use --device cpu.")
    return Pool(cluster.workers, per, cluster.threads)


@dataclass(frozen=True)
class Plan:
    """How every worker runs the models, decided by the driver for the whole run and kept in its results."""

    engine: str
    tile: int
    device: str
    workers: str

    @classmethod
    def of(cls, cluster: ClusterSettings, pool: Pool, tile: int | None, device: str) -> Plan:
        engine = cluster.engine or default_engine()
        return cls("torch" if engine == AUTO else engine,
                   default_tile(pool.device_kind) if tile is None else tile, _worker_device(pool, device),
                   pool.describe())

    def line(self) -> str:
        tile = f"tile {self.tile}" if self.tile else "no tiling"
        return f"Ray: {self.workers}; every worker runs engine {self.engine}, {tile}, device {self.device}"


def _available(name: str, weights_dir: Path | None) -> ModelInfo:
    info = model_info(name, weights_dir)
    if not info.available:
        raise WeightsMissingError(f"{name}: {info.reason}")
    return info


def _worker_device(pool: Pool, device: str) -> str:
    """GPU workers resolve ``auto`` where they run (CUDA, where Ray's GPU is one); CPU workers use the CPU."""
    return device if pool.gpus else ("cpu" if device == "auto" else device)


def _lost(item: str, method: str | None = None) -> str:
    where = f"{item} · {method}" if method else item
    return (f"{where}: its worker died {ATTEMPTS} times (killed, or out of memory?); try a smaller tile, or "
            "fewer workers per node.")


def _folder_here(weights_dir: Path) -> Path | None:
    """The driver's weights folder where this node has it, else ``None`` (the node's own default): either way the
    weights are then checked against the driver's by content (:func:`_load_checked`)."""
    return weights_dir if weights_dir.is_dir() else None


def _load_checked(name: str, expected: str | None, *, device: str, precision: str, weights_dir: Path,
                  engine: str) -> Upscaler:
    """``name`` loaded on a worker, refused unless its weights are the driver's (the same SHA-256): a node holding
    another file of that name would otherwise score other weights under the driver's name."""
    upscaler = Upscaler.load(name, device=device, precision=precision, weights_dir=_folder_here(weights_dir),
                             engine=engine)
    found = upscaler.info.fingerprint
    if expected is not None and found != expected:
        raise WeightsMissingError(
            f"{name}: this worker ({socket.gethostname()}) has other weights than the driver ({_digest(found)} from "
            f"{upscaler.info.source}, where the driver has {_digest(expected)}). Give every node the same file, "
            "in the weights folder the driver uses (STUDIO_WEIGHTS_DIR), or a shared one.")
    return upscaler


def _worker_fault(exc: RuntimeError, device: str) -> StudioError:
    """A torch failure on a worker as one line naming the node: a GPU node whose CUDA does not work (a driver the
    torch build cannot use, a GPU in a bad state) used to kill the task, so every row of its images, bicubic
    included, ended as "its worker died 3 times" after all the retries."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    host = socket.gethostname()
    if "cuda" in text.lower() or "cudnn" in text.lower() or "nvidia" in text.lower():
        return DeviceUnavailableError(f"CUDA does not work on the worker {host} ({device}): {text}. Check the node's "
                                      "driver (nvidia-smi) against the torch build, or run CPU workers "
                                      "(--gpus-per-worker 0).")
    return StudioError(f"The worker {host} ({device}) failed: {type(exc).__name__}: {text}")


def _digest(fingerprint: str) -> str:
    kind, _, value = fingerprint.rpartition(":")
    return f"sha256 {value[:12]}" if kind else fingerprint


def _set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


class _EvalWorker:
    """One actor: scores the pending methods of one image per call, models loaded once per actor."""

    def __init__(self, dataset: Dataset, context: Scoring, plan: Plan, precision: str,
                 weights_dir: Path, weights: dict[str, str], threads: int | None) -> None:
        _set_threads(threads)
        self._dataset, self._context = dataset, context
        self._scoring = replace(context, settings=replace(context.settings, tile=plan.tile))  # the run's tile
        self._device = plan.device
        self._upscalers = Upscalers(lambda name: _load_checked(name, weights.get(name), device=plan.device,
                                                               precision=precision, weights_dir=weights_dir,
                                                               engine=plan.engine), skip=tuple(context.outside))

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
                    assert failure is not None
                    row = error_row(item.name, method, failure)
                else:
                    try:
                        upscaler = self._upscalers.get(method)
                        row = compute_row(self._scoring, pair, method, upscaler, self._context.wanted(method))
                        digest, settings = pair.digest, self._context.key(method, upscaler, pair.grey, pair.name)
                    except StudioError as exc:
                        row = error_row(item.name, method, exc)
                    except RuntimeError as exc:  # this method's model on this node; the other methods go on
                        row = error_row(item.name, method, _worker_fault(exc, self._device))
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
    :class:`~core.evaluation.EvalHooks` (``on_row`` gets the pid of the worker that computed a row;
    ``status`` hears the run's plan, and what it waits for while no worker has started). The result's
    ``plan`` says how the workers ran the models.
    """
    settings, hooks = settings or EvalSettings(), hooks or EvalHooks()
    cluster = cluster or ClusterSettings()
    weights_dir = (weights_dir or default_weights_dir()).absolute()  # as the driver sees it
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UnknownNameError(f"Unknown metrics {unknown}; known: {', '.join(METRICS)}.")
    check_ready(metrics)
    methods, outside = outside_outputs(dataset, methods, hooks)  # paths as the driver sees them
    check_dataset(dataset, methods, metrics)
    crop = dataset.scale if settings.crop_border is None else settings.crop_border
    context = Scoring(tuple(metrics), settings, crop, dataset.scale, None, outside)
    models = [m for m in methods if m not in BASELINES and m != HR_METHOD and m not in outside]
    weights = {m: _available(m, weights_dir).fingerprint for m in models}
    result = EvalResult(dataset.name, dataset.scale, dataset.lr_source, list(methods), list(metrics), settings)
    with connected(cluster.address):
        pool = _pool(cluster, settings.device)
        plan = Plan.of(cluster, pool, settings.tile, settings.device)
        result.plan = asdict(plan)
        rows, todo = _finished(dataset, methods, context, pool, weights, db)
        if hooks.status is not None and todo:
            hooks.status(plan.line())
        total, start = len(dataset) * len(methods), time.perf_counter()
        for row in rows.values():
            if hooks.on_row is not None:
                hooks.on_row(row, None)
        if hooks.progress is not None:
            hooks.progress(len(rows), total, f"{len(rows)} reused")
        arguments = {"dataset": dataset, "context": context, "plan": plan, "precision": settings.precision,
                     "weights_dir": weights_dir, "weights": weights, "threads": None if pool.gpus else pool.threads}
        keys = {entry["item"]: entry["key"] for entry in todo}
        for computed, out in enumerate(run_pool(todo, _EvalWorker, arguments, pool, hooks.status), start=1):
            row = EvalRow(**json.loads(out["row"]))
            index = int(out["item"])
            if db is not None and not row.error:
                work = _work(context, pool, weights, row.method, row.image)
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


def _work(context: Scoring, pool: Pool, weights: dict[str, str], method: str, item: str) -> str:
    """What ``method``'s result of the image ``item`` depends on besides the image (see :meth:`Scoring.work`): a
    model's weights, or an outside output file's digest."""
    return context.work(method, pool.device_kind, weights.get(method) or context.made_by(method, None, item) or None)


def _finished(dataset: Dataset, methods: list[str], context: Scoring, pool: Pool, weights: dict[str, str],
              db: ResultDB | None) -> tuple[dict[tuple[int, str], EvalRow], list[dict]]:
    """The rows the store already holds, and the work left: ``{"item", "methods", "key"}`` per image."""
    rows: dict[tuple[int, str], EvalRow] = {}
    todo = []
    for index, item in enumerate(dataset.items):
        key = dataset.item_key(item)
        pending = []
        for method in methods:
            found = db.find(key, method, _work(context, pool, weights, method, item.name)) if db else None
            stored = db.get(found[0], method, found[1]) if db is not None and found else None
            wanted = context.wanted(method)
            if stored is not None and all(m in stored[0] for m in wanted):
                weights_used = json.loads(found[1]).get("weights", "") if found else ""
                rows[(index, method)] = stored_row(item.name, method, wanted, stored, weights_used)
            else:
                pending.append(method)
        if pending:
            todo.append({"item": index, "methods": json.dumps(pending), "key": key})
    return rows, todo


class _UpscaleWorker:
    """One actor: upscales one input per call with its model, loaded once."""

    def __init__(self, model: str, settings: UpscaleSettings, plan: Plan, precision: str,
                 weights_dir: Path, weights: str, threads: int | None) -> None:
        _set_threads(threads)
        self._device = plan.device
        try:
            self._upscaler = _load_checked(model, weights, device=plan.device, precision=precision,
                                           weights_dir=weights_dir, engine=plan.engine)
        except RuntimeError as exc:
            raise _worker_fault(exc, plan.device) from None
        self._settings = replace(settings, tile=plan.tile)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {"index": [], "png": [], "width": [], "height": [], "seconds": [], "error": [],
                                "pid": [], "written": []}
        for index, path, target in zip(batch["index"], batch["path"], batch["target"]):
            try:
                outcome = upscale_one(self._upscaler, int(index), str(path), self._settings, str(target))
            except RuntimeError as exc:  # this image on this node (see _worker_fault), not a dead worker
                outcome = UpscaleOutcome(int(index), None, (0, 0), 0.0, str(_worker_fault(exc, self._device)),
                                         os.getpid())
            for name, value in (("index", outcome.index), ("png", outcome.png or b""), ("width", outcome.size[0]),
                                ("height", outcome.size[1]), ("seconds", outcome.seconds), ("error", outcome.error),
                                ("pid", outcome.pid), ("written", outcome.written)):
                out[name].append(value)
        return out


def upscale_on_ray(
    inputs: list[str | Path],  # local paths (on every worker) or URIs (see core._uri.read_any)
    model: str | ModelRun,
    settings: UpscaleSettings | None = None,
    *,
    cluster: ClusterSettings | None = None,
    hooks: EvalHooks | None = None,
    targets: list[str] | None = None,
) -> Iterator[UpscaleOutcome]:
    """Upscale ``inputs`` on a Ray cluster; yields each outcome as it arrives (any order; ``index``
    is the input's position). ``hooks.status`` hears the run's plan (:class:`Plan`), and what it waits for
    while no worker has started; ``hooks.cancel`` stops it between outcomes.

    Where the outputs go: without ``targets``, each outcome brings its PNG and the caller writes it (one
    process owns the outputs). With ``targets`` (one per input: URIs such as ``s3://bucket/out/a.png``,
    or paths every node shares), each worker writes its output there itself (:func:`core._uri.write_any`:
    never half-written) and the outcome says where, so no image passes through the driver."""
    settings = settings or UpscaleSettings(limits=ImageLimits())
    cluster, hooks = cluster or ClusterSettings(), hooks or EvalHooks()
    run = model if isinstance(model, ModelRun) else ModelRun(model)
    weights_dir = (run.weights_dir or default_weights_dir()).absolute()  # as the driver sees it
    weights = _available(run.name, weights_dir).fingerprint  # a missing model fails here, before any cluster work
    with connected(cluster.address):
        pool = _pool(cluster, run.device)
        plan = Plan.of(cluster, pool, settings.tile, run.device)
        if hooks.status is not None and inputs:
            hooks.status(plan.line())
        arguments = {"model": run.name, "settings": settings, "plan": plan, "precision": run.precision,
                     "weights_dir": weights_dir, "weights": weights, "threads": None if pool.gpus else pool.threads}
        # paths as the driver sees them: a worker started in another folder reads the same file
        if targets is not None and len(targets) != len(inputs):
            raise SettingsError(f"{len(targets)} targets for {len(inputs)} inputs.")
        items: list[dict[str, Any]] = [{"index": i, "path": path if is_uri(path) else str(Path(path).absolute()),
                  "target": "" if targets is None else targets[i]} for i, path in enumerate(inputs)]
        returned = set()
        for out in run_pool(items, _UpscaleWorker, arguments, pool, hooks.status):
            returned.add(int(out["index"]))
            yield UpscaleOutcome(int(out["index"]), out["png"] or None, (int(out["width"]), int(out["height"])),
                                 float(out["seconds"]), out["error"], int(out["pid"]), out["written"])
            if hooks.cancelled():
                return
        for item in items:  # what never came back: its worker died on every attempt
            if item["index"] not in returned:
                yield UpscaleOutcome(int(item["index"]), None, (0, 0), 0.0, _lost(str(item["path"])), -1)


class RayExecutor:
    """The pipeline's executor on a Ray cluster (:class:`core.pipeline.Executor`): :func:`upscale_on_ray` and
    :func:`evaluate_on_ray` with one :class:`ClusterSettings`."""

    name, remote = "ray", True

    def __init__(self, cluster: ClusterSettings) -> None:
        self.cluster = cluster

    def upscale(self, inputs: Sequence[str | Path], model: ModelRun, settings: UpscaleSettings, *,
                hooks: EvalHooks, targets: Sequence[str] | None = None) -> Iterator[UpscaleOutcome]:
        return upscale_on_ray(list(inputs), model, settings, cluster=self.cluster, hooks=hooks,
                              targets=None if targets is None else list(targets))

    def evaluate(self, dataset: Dataset, methods: list[str], metrics: list[str], settings: EvalSettings, *,
                 db: ResultDB | None, hooks: EvalHooks, weights_dir: Path | None = None) -> EvalResult:
        return evaluate_on_ray(dataset, methods, metrics, settings, cluster=self.cluster, db=db,
                               weights_dir=weights_dir, hooks=hooks)
