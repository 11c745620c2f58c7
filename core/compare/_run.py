"""Up to six methods on one image, on one output grid, each with its scores and its maps."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .._resize import target_size
from ..errors import CancelledError, SettingsError
from ..evaluation import BASELINES, HR_METHOD, run_method
from ..metrics import METRICS, Heat, lr_consistency, score_images, ssim_map
from ..upscale import Upscaler

__all__ = ["LR_PSNR", "MAX_METHODS", "CompareJob", "Comparison", "compare_methods", "score_outputs"]

MAX_METHODS = 6  # panes on one page, the HR reference included
LR_PSNR = "lr-psnr"  # the LR-consistency score's key among the scores (not a registry metric: it needs the input)

Progress = Callable[[float, int, str], None]


@dataclass(frozen=True)
class CompareJob:
    """What to compare: ``methods`` (models, :data:`~core.evaluation.BASELINES`, ``"hr"``) on ``image``.

    The output grid is the reference's size where there is one, else ``outscale`` times the input
    (default: the first model's scale, or 4 with baselines only). ``metrics`` default to every
    registered metric whose weights are here.
    """

    image: np.ndarray
    methods: tuple[str, ...]
    reference: np.ndarray | None = None
    outscale: float | None = None
    metrics: tuple[str, ...] | None = None
    tile: int | None = None


@dataclass
class Comparison:
    """Every method's output on one grid, with its scores, maps and seconds, in the job's order."""

    image: np.ndarray
    reference: np.ndarray | None
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    maps: dict[str, dict[str, Heat]] = field(default_factory=dict)  # method -> {"ssim": ..., "lr": ...}
    seconds: dict[str, float] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()


def _methods(job: CompareJob) -> tuple[str, ...]:
    methods = tuple(dict.fromkeys(job.methods))  # each once, in order
    if job.reference is not None and HR_METHOD not in methods:
        methods = (*methods, HR_METHOD)
    if not methods or (methods == (HR_METHOD,)):
        raise SettingsError("Name at least one method to compare: a model, or one of "
                            f"{', '.join(BASELINES)}.")
    if len(methods) > MAX_METHODS:
        raise SettingsError(f"At most {MAX_METHODS} methods on one comparison (the HR reference counts as one); "
                            f"got {len(methods)}: {', '.join(methods)}.")
    if HR_METHOD in methods and job.reference is None:
        raise SettingsError(f"'{HR_METHOD}' is the HR reference: give one (--reference) to show it.")
    return methods


def _grid(job: CompareJob, methods: tuple[str, ...], load: Callable[[str], Upscaler]) -> tuple[int, int]:
    height, width = job.image.shape[:2]
    if job.reference is not None:
        ref_h, ref_w = job.reference.shape[:2]
        if abs(ref_h / height - ref_w / width) > 0.05 * ref_h / height:
            raise SettingsError(f"The reference ({ref_w}x{ref_h}) is not the input ({width}x{height}) at one scale: "
                                "is it the same scene?")
        return ref_h, ref_w
    scale = job.outscale
    if scale is None:
        models = [m for m in methods if m not in BASELINES and m != HR_METHOD]
        scale = load(models[0]).scale if models else 4
    if not 0.25 <= scale <= 16:
        raise SettingsError(f"The output scale must be between 0.25 and 16, got {scale:g}.")
    return target_size(height, width, scale)


def score_outputs(image: np.ndarray, outputs: dict[str, np.ndarray], reference: np.ndarray | None = None,
                  metrics: tuple[str, ...] | None = None) -> Comparison:
    """Scores and maps of ``outputs`` (method -> output, all of one size) of the input ``image``:
    ``metrics`` (default: every registered one whose weights are here; full-reference ones only with a
    ``reference``, with the scale cropped on each side), LR-PSNR, and the maps."""
    if metrics is None:
        metrics = tuple(m.name for m in METRICS.values()
                        if m.ready() and (reference is not None or not m.full_reference))
    result = Comparison(image, reference, metrics=tuple(metrics))
    first = next(iter(outputs.values()))
    border = round(first.shape[0] / image.shape[0]) if reference is not None else 0
    for method, output in outputs.items():
        result.outputs[method] = output
        # the scoring every front end shares; a pair it cannot score (NIQE under 96x96) is shown as "—"
        result.scores[method] = score_images({method: output}, reference, metrics=result.metrics,
                                             crop_border=border)[method]
        views = {"lr": lr_consistency(output, image)}
        result.scores[method][LR_PSNR] = views["lr"].summary
        if reference is not None and reference.shape == output.shape:
            views["ssim"] = ssim_map(output, reference, crop_border=border)  # its mean is the SSIM shown
        result.maps[method] = views
    return result


def compare_methods(job: CompareJob, load: Callable[[str], Upscaler], *, progress: Progress | None = None,
                    cancel: Callable[[], bool] | None = None) -> Comparison:
    """Run every method of ``job`` (models through ``load(name)``), then score and map each output.

    Raises:
        SettingsError: no method, more than :data:`MAX_METHODS`, ``"hr"`` without a reference, a scale out of range.
        CancelledError: ``cancel()`` became true.
    """
    methods = _methods(job)
    size = _grid(job, methods, load)
    outputs, seconds = {}, {}
    for done, method in enumerate(methods):
        if cancel is not None and cancel():
            raise CancelledError("Cancelled; no comparison was written.")
        if progress:
            progress(done, len(methods), f"{method} ({done + 1}/{len(methods)})")
        start = time.perf_counter()
        if method == HR_METHOD:
            outputs[method] = job.reference
        else:
            upscaler = None if method in BASELINES else load(method)
            outputs[method] = run_method(method, job.image, size, upscaler, tile=job.tile, cancel=cancel)
        seconds[method] = time.perf_counter() - start
    if progress:
        progress(len(methods), len(methods), "scoring")
    result = score_outputs(job.image, outputs, job.reference, job.metrics)
    result.seconds = seconds
    return result
