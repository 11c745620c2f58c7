"""Executors: what runs a pipeline's work. :class:`LocalExecutor` runs it in this process; the Ray executor
(:class:`core.cluster.RayExecutor`) spreads it over a cluster's workers. Both run the same per-image steps
(:func:`~core.pipeline.upscale_one`, and :mod:`core.evaluation`'s scoring) and give the same rows and bytes.

:data:`EXECUTORS` names them. An executor that needs an optional dependency is registered by the module that
holds it, imported only when a run asks for it: the single-machine path never imports Ray.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from ..errors import SettingsError
from ..evaluation import Dataset, EvalHooks, EvalResult, EvalSettings, ResultDB, evaluate
from ..upscale import Upscaler, UpscaleSettings
from ._run import ClusterSettings, ModelRun, UpscaleOutcome, upscale_one

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "executor_for"]


class Executor(Protocol):
    """Runs a pipeline's work. ``remote``: on other processes or machines, whose workers read URIs, and whose
    outputs travel back to this process unless the workers are given where to write them."""

    name: str
    remote: bool

    def upscale(self, inputs: Sequence[Path | str], model: ModelRun, settings: UpscaleSettings, *,
                hooks: EvalHooks, targets: Sequence[str] | None = None) -> Iterator[UpscaleOutcome]:
        """Upscale each input; yields one outcome per input (any order; ``index`` is its position). With
        ``targets`` (one per input), the output is written there and the outcome says where."""
        ...

    def evaluate(self, dataset: Dataset, methods: list[str], metrics: list[str], settings: EvalSettings, *,
                 db: ResultDB | None, hooks: EvalHooks, weights_dir: Path | None = None) -> EvalResult:
        """:func:`core.evaluation.evaluate`'s rows and result, computed by this executor."""
        ...


class LocalExecutor:
    """This process, one image at a time, with the engine measured fastest here (or ``engine``); a model not
    on disk is downloaded only with ``allow_download`` (``download_progress`` hears its bytes)."""

    name, remote = "local", False

    def __init__(self, engine: str | None = None, *, allow_download: bool = False,
                 download_progress: Callable[[int, int | None], None] | None = None) -> None:
        self.engine, self.allow_download, self.download_progress = engine, allow_download, download_progress

    def _load(self, name: str, device: str, precision: str, weights_dir: Path | None) -> Upscaler:
        return Upscaler.load(name, device=device, precision=precision, weights_dir=weights_dir,
                             allow_download=self.allow_download, download_progress=self.download_progress,
                             engine=self.engine)

    def upscale(self, inputs: Sequence[Path | str], model: ModelRun, settings: UpscaleSettings, *,
                hooks: EvalHooks, targets: Sequence[str] | None = None) -> Iterator[UpscaleOutcome]:
        upscaler = self._load(model.name, model.device, model.precision, model.weights_dir)
        if hooks.status is not None:
            hooks.status(upscaler.describe())
        report = hooks.progress
        for index, source in enumerate(inputs):
            if hooks.cancelled():
                return
            progress = (lambda done, total, label=str(source): report(done, total, label)) if report else None
            yield upscale_one(upscaler, index, str(source), settings, targets[index] if targets else "", progress,
                              hooks.cancel)

    def evaluate(self, dataset: Dataset, methods: list[str], metrics: list[str], settings: EvalSettings, *,
                 db: ResultDB | None, hooks: EvalHooks, weights_dir: Path | None = None) -> EvalResult:
        return evaluate(dataset, methods, metrics, settings, db=db, hooks=hooks,
                        upscaler_factory=lambda name: self._load(name, settings.device, settings.precision,
                                                                 weights_dir))


# name -> the executor class, or "module:Class" for one imported on request
EXECUTORS: dict[str, type | str] = {"local": LocalExecutor, "ray": "core.cluster:RayExecutor"}


def executor_for(cluster: ClusterSettings | None, engine: str | None = None, *, allow_download: bool = False,
                 download_progress: Callable[[int, int | None], None] | None = None) -> Executor:
    """The executor a run asks for: this process (``cluster`` is ``None``), or a Ray cluster.

    Raises:
        SettingsError: Ray is wanted but not installed (with how to install it).
    """
    if cluster is None:
        return LocalExecutor(engine, allow_download=allow_download, download_progress=download_progress)
    module, _, name = str(EXECUTORS["ray"]).partition(":")
    try:
        ray_executor = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise SettingsError(f"--ray needs Ray ({exc.name} is not installed): .venv/bin/pip install -r "
                            "requirements-cluster.txt, or pip install 'realesrgan-studio[cluster]'.") from exc
    return ray_executor(cluster)
