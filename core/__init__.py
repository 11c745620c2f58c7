"""Real-ESRGAN studio core: a pure library (no Streamlit, no FastAPI).

The facade below holds what the front ends use most; each concern has its own package with its
own public face: :mod:`core.models` (catalogue, weights, conversion), :mod:`core.engines` (what
runs a network), :mod:`core.upscale` (the upscaler in layers, tiling), :mod:`core.metrics` (the
metric registry), :mod:`core.degradation` (the Real-ESRGAN pipeline), :mod:`core.evaluation`
(datasets, scoring, the store, sweeps), :mod:`core.compare` (methods side by side, maps, the viewer),
:mod:`core.pipeline` (sources, output plans, the batch pipelines and their executors), :mod:`core.study`
(preference studies and their fit), :mod:`core.errors`, and :mod:`core.cluster` (the Ray executor, imported on
request). Dependencies point down only: the base (io, errors, settings, files, device, cancellation) <- models,
metrics, degradation <- engines <- upscale <- evaluation <- pipeline, compare, study <- cluster.

Image convention: see :mod:`core._io`.
"""

from __future__ import annotations

from . import compare as compare  # compare methods on one image, and the viewer (a package face)
from . import pipeline as pipeline  # the batch pipelines and their executors (a package face)
from . import study as study  # preference studies: trials, votes and their fit (a package face)
from ._device import PRECISIONS, DeviceChoice, Precision, available_devices, resolve_device, system_info
from ._files import new_folder, write_file
from ._io import (
    IMAGE_SUFFIXES,
    DecodedImage,
    ImageLimits,
    decode_image,
    decode_with_profile,
    encode_png,
    from_unit,
    image_info,
    read_image,
    read_with_profile,
    to_display,
    to_unit,
    write_png,
)
from ._jobs import JobContext, JobManager, JobSnapshot
from ._resize import crop_to_scale, imresize, resize, target_size
from ._samples import list_samples, load_sample
from ._settings import default_results_dir, default_weights_dir
from .degradation import PRESETS, DegradationConfig, degrade
from .engines import check_environment
from .errors import CancelledError, StudioError
from .evaluation import EvalHooks, EvalSettings, ResultDB, evaluate, open_dataset, read_results, write_results
from .metrics import METRICS, compute_metric, score_images
from .models import DEFAULT_MODEL, ModelInfo, list_models, load_model, model_info
from .upscale import ALPHA_MODES, MIN_TILE, Upscaler, UpscaleResult, UpscaleSettings, clear_shared, shared_upscaler


def _ray_executor(cluster: pipeline.ClusterSettings) -> pipeline.Executor:
    """The Ray executor, imported when a run asks for it (ImportError where Ray is not installed)."""
    from .cluster import RayExecutor

    return RayExecutor(cluster)


pipeline.EXECUTORS.add("ray", _ray_executor)

__all__ = [
    # image I/O, resizing, samples, files (the base)
    "IMAGE_SUFFIXES", "DecodedImage", "ImageLimits", "decode_image", "decode_with_profile", "encode_png", "from_unit",
    "image_info", "read_image", "read_with_profile", "to_display", "to_unit", "write_png", "crop_to_scale", "imresize",
    "resize", "target_size", "list_samples", "load_sample", "new_folder", "write_file",
    # settings, devices, jobs, errors
    "default_results_dir", "default_weights_dir", "check_environment", "PRECISIONS", "DeviceChoice", "Precision",
    "available_devices", "resolve_device", "system_info", "JobContext", "JobManager", "JobSnapshot", "CancelledError",
    "StudioError",
    # models and upscaling
    "DEFAULT_MODEL", "ModelInfo", "list_models", "load_model", "model_info", "ALPHA_MODES", "MIN_TILE", "Upscaler",
    "UpscaleResult", "UpscaleSettings", "clear_shared", "shared_upscaler",
    # metrics, degradations, evaluation
    "METRICS", "compute_metric", "score_images", "PRESETS", "DegradationConfig", "degrade", "EvalHooks",
    "EvalSettings", "ResultDB", "evaluate", "open_dataset", "read_results", "write_results",
]
