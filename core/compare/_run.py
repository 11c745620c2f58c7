"""Up to six methods on one image, on one output grid, each with its scores and its maps."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .._resize import target_size
from ..errors import CancelledError, SettingsError
from ..evaluation import BASELINES, HR_METHOD, OutsideOutputs, match_outputs, run_method, split_methods
from ..metrics import METRICS, Heat, lr_consistency, score_images, ssim_map
from ..upscale import Upscaler

__all__ = ["LR_PSNR", "MAX_METHODS", "CompareJob", "Comparison", "compare_methods", "score_outputs"]

MAX_METHODS = 6  # panes on one page, the HR reference included
LR_PSNR = "lr-psnr"  # the LR-consistency score's key among the scores (not a registry metric: it needs the input)

Progress = Callable[[float, int, str], None]


@dataclass(frozen=True)
class CompareJob:
    """What to compare: ``methods`` (models, :data:`~core.evaluation.BASELINES`, ``"hr"``, or ``name=path``:
    an image made elsewhere, or a folder holding one named after ``image_name``) on ``image``.

    The output grid is the reference's size where there is one, else ``outscale`` times the input
    (default: the first model's scale; else the first image made elsewhere's size; else 4). ``metrics``
    default to every registered metric whose weights are here. Without an input (``image`` is ``None``), every
    method is an image made elsewhere (imgsli's use: images of one scene compared, with or without a
    reference), and there is no LR-PSNR.
    """

    image: np.ndarray | None
    methods: tuple[str, ...]
    reference: np.ndarray | None = None
    outscale: float | None = None
    metrics: tuple[str, ...] | None = None
    tile: int | None = None
    image_name: str = "input"  # the input's name (a file's stem), which an image in a folder of outputs is named after


@dataclass
class Comparison:
    """Every method's output on one grid, with its scores, maps and seconds, in the job's order."""

    image: np.ndarray | None  # the input (None: images made elsewhere compared without one)
    reference: np.ndarray | None
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    maps: dict[str, dict[str, Heat]] = field(default_factory=dict)  # method -> {"ssim": ..., "lr": ...}
    seconds: dict[str, float] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    cancelled: bool = False  # scoring stopped before every score was computed (see missing())

    def copy(self) -> Comparison:
        """A copy whose score and map tables are its own (the images are shared: nothing mutates them)."""
        return Comparison(self.image, self.reference, dict(self.outputs),
                          {m: dict(s) for m, s in self.scores.items()}, {m: dict(v) for m, v in self.maps.items()},
                          dict(self.seconds), self.metrics, self.cancelled)

    def missing(self, method: str) -> tuple[str, ...]:
        """The metrics of ``metrics`` not yet computed for ``method`` (being computed, or cancelled); a metric
        that cannot score the pair (NIQE under 96x96) is computed, as ``None``."""
        scores = self.scores.get(method, {})
        return tuple(m for m in self.metrics if m not in scores
                     and (self.reference is not None or not METRICS[m].full_reference))


def _methods(job: CompareJob) -> tuple[tuple[str, ...], dict[str, OutsideOutputs]]:
    """The methods' names (each once, in order; the reference's ``hr`` added), and the outside ones' files."""
    names, wanted = split_methods(job.methods)
    outside = {name: match_outputs(method, {job.image_name: [job.image_name]}) for name, method in wanted.items()}
    methods = tuple(names)
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
    made_here = [m for m in methods if m not in outside and m != HR_METHOD]
    if job.image is None and made_here:
        verb = "needs" if len(made_here) == 1 else "need"
        raise SettingsError(f"{', '.join(made_here)} {verb} an input image to upscale; without one, compare images "
                            "made elsewhere only (NAME=PATH).")
    return methods, outside


def _grid(job: CompareJob, methods: tuple[str, ...], load: Callable[[str], Upscaler],
          outside: dict[str, OutsideOutputs]) -> tuple[int, int]:
    if job.image is None:  # images made elsewhere only: the reference's grid, else the first image's
        if job.reference is not None:
            return job.reference.shape[:2]
        first = next(iter(outside.values()))
        return first.size(job.image_name) or (0, 0)  # (0, 0): reading it says why it cannot be read
    height, width = job.image.shape[:2]
    if job.reference is not None:
        ref_h, ref_w = job.reference.shape[:2]
        if abs(ref_h / height - ref_w / width) > 0.05 * ref_h / height:
            raise SettingsError(f"The reference ({ref_w}x{ref_h}) is not the input ({width}x{height}) at one scale: "
                                "is it the same scene?")
        return ref_h, ref_w
    scale = job.outscale
    models = [m for m in methods if m not in BASELINES and m != HR_METHOD and m not in outside]
    if scale is None and not models and outside:  # the first image made elsewhere sets the grid
        first = next(iter(outside.values()))
        found = first.size(job.image_name)
        if found is not None:
            out_h, out_w = found
            if abs(out_h / height - out_w / width) > 0.05 * out_h / height:
                raise SettingsError(f"{first.method}'s output ({out_w}x{out_h}) is not the input ({width}x"
                                    f"{height}) at one scale: is it the same scene?")
            return out_h, out_w
    if scale is None:
        scale = load(models[0]).scale if models else 4
    if not 0.25 <= scale <= 16:
        raise SettingsError(f"The output scale must be between 0.25 and 16, got {scale:g}.")
    return target_size(height, width, scale)


def score_outputs(image: np.ndarray | None, outputs: dict[str, np.ndarray], reference: np.ndarray | None = None,
                  metrics: tuple[str, ...] | None = None, *, progress: Progress | None = None,
                  cancel: Callable[[], bool] | None = None, publish: Callable[[Comparison], None] | None = None,
                  start: Comparison | None = None) -> Comparison:
    """Scores and maps of ``outputs`` (method -> output, all of one size) of the input ``image``:
    ``metrics`` (default: every registered one whose weights are here; full-reference ones only with a
    ``reference``, with the scale cropped on each side), LR-PSNR, and the maps.

    In three passes, the cheap first: the hand-made metrics of every output, then LR-PSNR and the maps, then
    each learned metric (a network: seconds per image on a CPU) of every output. ``progress(done, total,
    message)`` follows the steps; ``publish`` gets a consistent copy of the comparison after each step (for a
    UI that shows numbers as they come); where ``cancel()`` becomes true, what is finished is returned (a
    score not computed is missing from its method's scores, see :meth:`Comparison.missing`). ``start``: a
    comparison of the same outputs from an earlier call, whose scores and maps are kept, not computed again.
    """
    if metrics is None:
        metrics = tuple(m.name for m in METRICS.values()
                        if m.ready() and (reference is not None or not m.full_reference))
    result = Comparison(image, reference, outputs=dict(outputs), metrics=tuple(metrics))
    if start is not None:
        result.scores = {m: dict(start.scores.get(m, {})) for m in outputs}
        result.maps = {m: dict(start.maps[m]) for m in outputs if m in start.maps}
    first = next(iter(outputs.values()))
    border = round(first.shape[0] / image.shape[0]) if reference is not None and image is not None else 0
    cheap = tuple(m for m in result.metrics if not METRICS[m].learned)
    learned = tuple(m for m in result.metrics if METRICS[m].learned)
    steps = [*(("cheap", m, cheap) for m in outputs), *(("maps", m, ()) for m in outputs),
             *(("learned", m, (name,)) for name in learned for m in outputs)]
    for done, (stage, method, names) in enumerate(steps):
        if cancel is not None and cancel():
            result.cancelled = True
            break
        scores = result.scores.setdefault(method, {})
        if progress is not None:
            what = {"cheap": "hand-made metrics", "maps": "LR-PSNR and maps"}.get(stage) or METRICS[names[0]].title
            progress(done, len(steps), f"{what} of {method}")
        if stage == "maps":
            if method not in result.maps:
                views: dict[str, Heat] = {}
                if image is not None:  # LR consistency needs the input
                    views["lr"] = lr_consistency(outputs[method], image)
                    scores[LR_PSNR] = views["lr"].summary
                if reference is not None and reference.shape == outputs[method].shape:
                    views["ssim"] = ssim_map(outputs[method], reference, crop_border=border)  # its mean: the SSIM
                result.maps[method] = views
        elif wanted := tuple(n for n in names if n not in scores):
            # the scoring every front end shares; a pair it cannot score (NIQE under 96x96) is shown as "—"
            scores |= score_images({method: outputs[method]}, reference, metrics=wanted, crop_border=border)[method]
        if publish is not None:
            publish(result.copy())
    order = [*result.metrics, LR_PSNR]  # each method's scores in the registry's order, as tables list them
    result.scores = {m: {n: s[n] for n in order if n in s} for m, s in result.scores.items()}
    if progress is not None and not result.cancelled:
        progress(len(steps), len(steps), "scored")
    return result


def compare_methods(job: CompareJob, load: Callable[[str], Upscaler], *, progress: Progress | None = None,
                    cancel: Callable[[], bool] | None = None) -> Comparison:
    """Run every method of ``job`` (models through ``load(name)``), then score and map each output.

    Raises:
        SettingsError: no method, more than :data:`MAX_METHODS`, ``"hr"`` without a reference, a scale out of range.
        CancelledError: ``cancel()`` became true.
    """
    methods, outside = _methods(job)
    size = _grid(job, methods, load, outside)
    shaped = job.reference if job.reference is not None else job.image
    channels = shaped.shape[2] if shaped is not None else None
    outputs: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for done, method in enumerate(methods):
        if cancel is not None and cancel():
            raise CancelledError("Cancelled; no comparison was written.")
        if progress:
            progress(done, len(methods), f"{method} ({done + 1}/{len(methods)})")
        start = time.perf_counter()
        if method == HR_METHOD:
            assert job.reference is not None  # _methods: "hr" only with a reference
            outputs[method] = job.reference
        elif method in outside:
            outputs[method] = outside[method].read(job.image_name, size, channels)
            channels = outputs[method].shape[2]  # without an input or a reference: the first image's
        else:
            upscaler = None if method in BASELINES else load(method)
            assert job.image is not None  # _methods: models and baselines only with an input
            outputs[method] = run_method(method, job.image, size, upscaler, tile=job.tile, cancel=cancel)
        seconds[method] = time.perf_counter() - start
    if progress:
        progress(len(methods), len(methods), "scoring")
    result = score_outputs(job.image, outputs, job.reference, job.metrics, cancel=cancel)
    if result.cancelled:
        raise CancelledError("Cancelled; no comparison was written.")
    result.seconds = seconds
    return result
