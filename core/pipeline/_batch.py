"""The batch pipelines: upscale a list of inputs into an output plan with any executor (this machine, a Ray
cluster), and degrade a list of HR images into LR images with their parameters. Front ends describe the
job and print or show the events; they hold no image loop."""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .._files import write_file
from .._io import encode_png, from_unit, read_image
from .._ours import mark_json, mark_png
from .._resize import crop_to_scale
from .._uri import write_any
from ..degradation import DegradationConfig, config_to_dict, degrade
from ..errors import SettingsError, StudioError
from ..evaluation import EvalHooks
from ..upscale import UpscaleSettings
from ._executors import Executor
from ._outputs import OutputPlan, Source, drop_earlier_outputs, refuse_foreign, refuse_replacing_inputs, unique_names
from ._run import ModelRun

__all__ = ["BatchEvent", "BatchJob", "DegradeEvent", "degrade_batch", "run_batch"]


@dataclass(frozen=True)
class BatchJob:
    """A batch upscale: the inputs and where their outputs go, the model and the settings.

    Attributes:
        skip_existing: leave an output that is already there (and say so) instead of replacing it.
        shared_output: ``outputs.dest`` is a folder that every node of a cluster holds at the same path
            (NFS, EFS): each worker writes its own outputs there. Without it, outputs for a folder here travel
            to this process, which writes them; outputs for a URI are always written by the workers.
    """

    outputs: OutputPlan
    model: ModelRun
    settings: UpscaleSettings
    skip_existing: bool = False
    shared_output: bool = False


@dataclass(frozen=True)
class BatchEvent:
    """What became of one input: ``status`` is ``written``, ``skipped`` (its output was there) or ``failed``
    (with ``error``); ``replaced``: an earlier file was replaced; ``worker``: the pid of the cluster worker that
    made it (``None`` on this machine)."""

    source: Source
    target: Path | str
    status: str
    size: tuple[int, int] = (0, 0)
    seconds: float = 0.0
    replaced: bool = False
    worker: int | None = None
    error: str = ""


def run_batch(job: BatchJob, executor: Executor, hooks: EvalHooks | None = None) -> Iterator[BatchEvent]:
    """Upscale ``job`` with ``executor``; yields one event per input, skipped ones first, then the others as
    they finish (on a cluster, in any order). Every output is written atomically (an object only appears once
    uploaded). ``hooks.status`` hears how the run goes (the model, a cluster's plan and what it waits for),
    ``hooks.progress`` the tiles of the image in work (``(done, total, source)``, on this machine), and
    ``hooks.cancel`` stops the run between images.

    Raises:
        SettingsError: a URI or a shared folder with an executor that cannot use it.
        StudioError: the model cannot load, or the cluster cannot be reached.
    """
    hooks = hooks or EvalHooks()
    plan = job.outputs
    if job.shared_output and not executor.remote:
        raise SettingsError("--shared-output is for --ray: on this machine, this process writes every output.")
    if not executor.remote and isinstance(plan.dest, str):
        raise SettingsError(f"{plan.dest}: outputs at a URI are written by cluster workers; add --ray, or give a "
                            "folder.")
    if not executor.remote and any(isinstance(f, str) for f in plan.inputs):
        raise SettingsError("URIs are read by cluster workers; add --ray.")
    existing = plan.existing()  # whole outputs of ours: what --skip-existing leaves
    there = existing if isinstance(plan.dest, str) else {n for n in plan.names if (plan.dest / n).exists()}
    todo = [i for i, name in enumerate(plan.names) if not (job.skip_existing and name in existing)]
    for i in sorted(set(range(len(plan.names))) - set(todo)):
        yield BatchEvent(plan.inputs[i], plan.target(i), "skipped")
    if not todo:
        return
    # who writes: this process, for a folder here on a cluster; else whoever made the output
    workers_write = not executor.remote or isinstance(plan.dest, str) or job.shared_output
    targets = None
    if workers_write:
        targets = [str(plan.target(i)) if isinstance(plan.dest, str) or not job.shared_output
                   else str(Path(plan.target(i)).absolute()) for i in todo]
    outcomes = executor.upscale([plan.inputs[i] for i in todo], job.model, job.settings, hooks=hooks, targets=targets)
    for outcome in outcomes:
        index = todo[outcome.index]
        name, worker = plan.names[index], outcome.pid if executor.remote else None
        target: Path | str = plan.target(index)
        error = outcome.error or ("" if outcome.png is not None or outcome.written else "no output came back")
        if not error and not outcome.written and outcome.png is not None:  # a worker sent the PNG: written here
            try:
                write_any(str(target), outcome.png)
            except StudioError as exc:
                error = str(exc)
        if error:
            yield BatchEvent(plan.inputs[index], target, "failed", worker=worker, error=error)
            continue
        if outcome.written and executor.remote:
            target = outcome.written  # where the worker wrote it (a shared folder's absolute path)
        yield BatchEvent(plan.inputs[index], target, "written", outcome.size, outcome.seconds, name in there,
                         worker)


@dataclass(frozen=True)
class DegradeEvent:
    """One HR image degraded: its LR file (``None`` where it failed, with ``error``), and the seed drawn."""

    source: Source
    target: Path | None
    seed: int
    error: str = ""


def _is_degrade_output(stem: str) -> bool:
    return stem.endswith("_lr") or re.search(r"_stage\d\d_[a-z0-9-]+$", stem) is not None


def degrade_batch(files: Sequence[Path], outdir: Path, config: DegradationConfig, seed: int = 0, *,
                  save_stages: bool = False, named: Sequence[str] = ()) -> Iterator[DegradeEvent]:
    """Degrade each HR image (seed ``seed + its position``) into ``outdir``: ``STEM_lr.png``, ``STEM_params.json``
    (seed, configuration and the parameters drawn), and with ``save_stages`` every applied stage as
    ``STEM_stageNN_NAME.png``. Earlier outputs in ``outdir`` are not taken for inputs (unless ``named``).

    Raises:
        SettingsError: an output would replace an input, or a file the studio did not write; nothing is written.
    """
    files = [f for f in drop_earlier_outputs(files, outdir, _is_degrade_output, named) if isinstance(f, Path)]
    names = unique_names(files, "")
    targets = [outdir / name.replace(".png", suffix) for name in names for suffix in ("_lr.png", "_params.json")]
    if save_stages:  # which stages apply is drawn per image: every stage file of these names must be ours
        targets += [p for name in names for p in outdir.glob(f"{glob.escape(name[:-4])}_stage[0-9][0-9]_*.png")]
    refuse_replacing_inputs(files, targets)
    refuse_foreign(targets)
    for index, (path, name) in enumerate(zip(files, names)):
        image_seed, stem = seed + index, name.removesuffix(".png")
        try:
            hr = read_image(path)
            result = degrade(crop_to_scale(hr, config.scale), config, image_seed, keep_stages=save_stages)
        except (StudioError, ValueError) as exc:
            yield DegradeEvent(path, None, image_seed, str(exc))
            continue
        target = write_file(outdir / f"{stem}_lr.png", mark_png(encode_png(result.lr)))
        params = {"seed": image_seed, "config": config_to_dict(config), "params": asdict(result.params)}
        write_file(outdir / f"{stem}_params.json", json.dumps(mark_json(params), indent=2))
        for number, stage in enumerate(result.stages):
            if stage.applied:
                label = re.sub(r"[^a-z0-9]+", "-", stage.name.lower()).strip("-")
                stage_png = mark_png(encode_png(from_unit(stage.image)))
                write_file(outdir / f"{stem}_stage{number:02d}_{label}.png", stage_png)
        yield DegradeEvent(path, target, image_seed)
