"""One pipeline for this machine and a cluster: sources (files, folders, URIs), output plans (a folder here,
or at a URI), the batch upscale and degrade pipelines, and the executors that run them (:class:`LocalExecutor`
here; :class:`core.cluster.RayExecutor`, imported on request). Evaluation runs through the same executors,
over :mod:`core.evaluation`'s datasets and scoring."""

from __future__ import annotations

from .._ours import Ownership, ownership
from ._batch import BatchEvent, BatchJob, DegradeEvent, degrade_batch, run_batch
from ._executors import EXECUTORS, Executor, LocalExecutor, executor_for
from ._outputs import (
    OUT_SUFFIX,
    OutputPlan,
    check_suffix,
    drop_earlier_outputs,
    list_inputs,
    output_folder,
    plan_outputs,
    refuse_foreign,
    refuse_replacing_inputs,
    unique_names,
)
from ._run import ClusterSettings, ModelRun, UpscaleOutcome, upscale_one

__all__ = ["EXECUTORS", "OUT_SUFFIX", "BatchEvent", "Ownership", "ownership", "BatchJob", "ClusterSettings",
           "DegradeEvent", "Executor", "LocalExecutor", "ModelRun", "OutputPlan", "UpscaleOutcome", "check_suffix",
           "degrade_batch", "drop_earlier_outputs", "executor_for", "list_inputs", "output_folder", "plan_outputs",
           "refuse_foreign", "refuse_replacing_inputs", "run_batch", "unique_names", "upscale_one"]
