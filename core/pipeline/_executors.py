"""Executors: what runs a pipeline's work. :class:`LocalExecutor` runs it in this process; the Ray executor
(:class:`core.cluster.RayExecutor`) spreads it over a cluster's workers. Both run the same per-image steps
(:func:`~core.pipeline.upscale_one`, and :mod:`core.evaluation`'s scoring) and give the same rows and bytes.

Executors that spread the work over other machines are registered in :data:`EXECUTORS` by name, as engines
are, each as a factory of a :class:`~core.pipeline.ClusterSettings`. The Ray executor is registered by the
facade (:mod:`core`) with a factory that imports :mod:`core.cluster` when a run asks for it: the
single-machine path never imports Ray, and no module below the cluster names it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from ..errors import SettingsError, UnknownNameError
from ..evaluation import Dataset, EvalHooks, EvalResult, EvalSettings, ResultDB, evaluate
from ..upscale import Upscaler, UpscaleSettings
from ._run import ClusterSettings, ModelRun, UpscaleOutcome, upscale_one

__all__ = ["EXECUTORS", "Executor", "ExecutorFactory", "ExecutorRegistry", "LocalExecutor", "executor_for"]


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


ExecutorFactory = Callable[[ClusterSettings], Executor]


class ExecutorRegistry:
    """Executors that run on a cluster, by name: a factory each, called with the run's cluster settings."""

    def __init__(self) -> None:
        self._factories: dict[str, ExecutorFactory] = {}

    @contextmanager
    def scoped(self) -> Iterator[ExecutorRegistry]:
        """Within the block, executors added are gone again afterwards."""
        saved = dict(self._factories)
        try:
            yield self
        finally:
            self._factories = saved

    def add(self, name: str, factory: ExecutorFactory) -> None:
        if name in self._factories or name == LocalExecutor.name:
            raise ValueError(f"An executor named {name!r} is already registered.")
        self._factories[name] = factory

    def names(self) -> tuple[str, ...]:
        return tuple(self._factories)

    def get(self, name: str) -> ExecutorFactory:
        """The factory of the executor called ``name``.

        Raises:
            UnknownNameError: no such executor (the message lists them).
        """
        if name not in self._factories:
            known = ", ".join((LocalExecutor.name, *self._factories))
            raise UnknownNameError(f"Unknown executor {name!r}; known: {known}.")
        return self._factories[name]


EXECUTORS = ExecutorRegistry()


def executor_for(cluster: ClusterSettings | None, engine: str | None = None, *, allow_download: bool = False,
                 download_progress: Callable[[int, int | None], None] | None = None) -> Executor:
    """The executor a run asks for: this process (``cluster`` is ``None``), or a Ray cluster.

    Raises:
        SettingsError: Ray is wanted but not installed (with how to install it).
    """
    if cluster is None:
        return LocalExecutor(engine, allow_download=allow_download, download_progress=download_progress)
    try:
        return EXECUTORS.get("ray")(cluster)
    except ImportError as exc:
        raise SettingsError(f"--ray needs Ray ({exc.name} is not installed): .venv/bin/pip install -r "
                            "requirements-cluster.txt, or pip install 'realesrgan-studio[cluster]'.") from exc
