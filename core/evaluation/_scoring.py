"""Evaluate methods (classical baselines and models) on a dataset, resumably: each row is taken
from the store (:mod:`core.evaluation._store`) where it is there, else computed and stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import cast

import numpy as np
import torch

from .._resize import resize
from ..errors import DatasetError, StudioError, UnknownNameError
from ..metrics import METRICS, MetricOptions, check_ready, score_images
from ..upscale import Upscaler, UpscaleSettings
from ._datasets import Dataset, DatasetItem
from ._outside import OutsideOutputs, dataset_stems, match_outputs, split_methods
from ._store import EvalHooks, EvalResult, EvalRow, EvalSettings, ResultDB

__all__ = ["BASELINES", "HR_METHOD", "check_dataset", "evaluate", "outside_outputs", "run_method",
           # the steps both executors run (this module's loop and core.cluster's Ray workers)
           "Pair", "Scoring", "Upscalers", "compute_row", "error_row", "stored_row"]

# method name -> resize method of core.resize
BASELINES: dict[str, str] = {"bicubic": "matlab", "bicubic-opencv": "bicubic", "lanczos": "lanczos"}
HR_METHOD = "hr"  # the ground truth itself: no-reference metrics only (e.g. NIQE of HR)


def _image_hash(lr: np.ndarray, hr: np.ndarray | None, scale: int) -> str:
    digest = hashlib.sha256()
    if hr is None:  # an LR-only item: what it is upscaled to depends on the scale
        digest.update(f"lr-only x{scale}".encode())
    for array in (lr,) if hr is None else (lr, hr):
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def run_method(method: str, lr: np.ndarray, size: tuple[int, int], upscaler: Upscaler | None = None, *,
               tile: int | None = None, cancel: Callable[[], bool] | None = None) -> np.ndarray:
    """``lr`` brought to ``size = (height, width)`` by ``method``: a baseline of :data:`BASELINES`
    (``upscaler`` unused), or the model of ``upscaler``, at the scale ``size`` asks for (resized
    with bicubic where a rounding of that scale leaves the model's output a pixel off).

    Raises:
        ValueError: a model method without its upscaler.
    """
    if method in BASELINES:
        return resize(lr, size, BASELINES[method])
    if upscaler is None:
        raise ValueError(f"{method} is not a baseline ({', '.join(BASELINES)}): give its upscaler.")
    settings = UpscaleSettings(outscale=size[0] / lr.shape[0], tile=tile)
    output = upscaler.upscale(lr, settings, cancel=cancel).image
    return output if output.shape[:2] == tuple(size) else resize(output, size, "bicubic")


Progress = Callable[[int, int, str], None]
UpscalerFactory = Callable[[str], Upscaler]


def evaluate(
    dataset: Dataset,
    methods: Sequence[str],
    metrics: Sequence[str] = ("psnr", "ssim", "niqe"),
    settings: EvalSettings | None = None,
    *,
    db: ResultDB | None = None,
    upscaler_factory: UpscalerFactory | None = None,
    hooks: EvalHooks | None = None,
) -> EvalResult:
    """Score ``methods`` on every image of ``dataset``.

    Args:
        methods: ``bicubic`` (MATLAB), ``bicubic-opencv``, ``lanczos``, ``hr`` (the ground
            truth, for no-reference metrics), model names, or ``name=folder`` (outputs made elsewhere, matched
            to the images by name: see :mod:`core.evaluation._outside`; the rows name the method ``name``).
        metrics: names from :data:`core.METRICS`.
        db: where finished results are stored and looked up (none: nothing is reused).
        upscaler_factory: builds the upscaler of a model name (default: ``Upscaler.load``).
        hooks: progress, cancel and each finished row (to show results as they come); see
            :class:`EvalHooks`.

    A failing image is recorded as a row with ``error`` set; the others go on. ``hooks.status`` hears how an
    outside method's files were matched where not all by name.
    """
    settings, hooks = settings or EvalSettings(), hooks or EvalHooks()
    methods, outside = outside_outputs(dataset, methods, hooks)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UnknownNameError(f"Unknown metrics {unknown}; known: {', '.join(METRICS)}.")
    check_ready(list(metrics))  # a metric whose weights are missing fails now, not on every row
    check_dataset(dataset, methods, metrics)
    factory = upscaler_factory or (
        lambda name: Upscaler.load(name, device=settings.device, precision=settings.precision)
    )
    crop = dataset.scale if settings.crop_border is None else settings.crop_border
    context = Scoring(tuple(metrics), settings, crop, dataset.scale, db, outside)
    result = EvalResult(dataset.name, dataset.scale, dataset.lr_source, list(methods), list(metrics), settings)
    upscalers = Upscalers(factory, skip=tuple(outside))
    total = len(dataset) * len(methods)
    step = 0
    for item in dataset.items:
        try:
            pair = Pair.load(dataset, item)
        except StudioError as exc:
            for method in methods:
                result.rows.append(error_row(item.name, method, exc))
            step += len(methods)
            continue
        for method in methods:
            if hooks.cancelled():
                result.cancelled = True
                return result
            try:
                row = _score(context, pair, method, upscalers.get(method))
            except StudioError as exc:
                row = error_row(item.name, method, exc)
            result.rows.append(row)
            if hooks.on_row is not None:
                hooks.on_row(row, None if row.reused else os.getpid())
            step += 1
            if hooks.progress is not None:
                hooks.progress(step, total, f"{item.name} · {method}")
    return result


def outside_outputs(dataset: Dataset, methods: Sequence[str],
                    hooks: EvalHooks | None = None) -> tuple[list[str], dict[str, OutsideOutputs]]:
    """The method names of ``methods`` and, for each ``name=folder`` among them, its files matched to the
    dataset's images; ``hooks.status`` hears each match that is not all by name.

    Raises:
        SettingsError: an unusable ``name=folder``.
        DatasetError: a folder none of whose images can be matched.
    """
    names, wanted = split_methods(methods)
    stems = dataset_stems(dataset.items)
    outside = {name: match_outputs(method, stems) for name, method in wanted.items()}
    for matched in outside.values():
        if matched.note() and hooks is not None and hooks.status is not None:
            hooks.status(matched.note())
    return names, outside


def check_dataset(dataset: Dataset, methods: Sequence[str], metrics: Sequence[str]) -> None:
    """Refuse, before any work, what a dataset without ground truth cannot give.

    Raises:
        DatasetError: full-reference metrics, or the ``hr`` method, asked of an LR-only set.
    """
    if not dataset.lr_only:
        return
    needs_hr = [m for m in metrics if METRICS[m].full_reference]
    if needs_hr or HR_METHOD in methods:
        what = ", ".join([*needs_hr, *([HR_METHOD] if HR_METHOD in methods else [])])
        raise DatasetError(f"{dataset.name} has LR images only (no ground truth), so {what} cannot be scored; "
                           f"choose no-reference metrics ({', '.join(METRICS.names('no-reference'))}).")


def error_row(image: str, method: str, exc: StudioError) -> EvalRow:
    return EvalRow(image, method, {}, 0.0, "", "", "", error=str(exc))


class Upscalers:
    """The upscaler of each model method, built on first use; ``None`` for baselines, ``hr`` and the methods of
    ``skip`` (outputs made elsewhere)."""

    def __init__(self, factory: UpscalerFactory, skip: tuple[str, ...] = ()) -> None:
        self._factory = factory
        self._skip = skip
        self._loaded: dict[str, Upscaler] = {}

    def get(self, method: str) -> Upscaler | None:
        if method in BASELINES or method == HR_METHOD or method in self._skip:
            return None
        if method not in self._loaded:
            self._loaded[method] = self._factory(method)
        return self._loaded[method]


@dataclass(frozen=True)
class Scoring:
    """The frozen context of one evaluation: what is scored, how, where results are kept, and the outputs made
    elsewhere (``outside``: method name -> its files)."""

    metrics: tuple[str, ...]
    settings: EvalSettings
    crop: int
    scale: int
    db: ResultDB | None
    outside: Mapping[str, OutsideOutputs] = field(default_factory=dict)

    def made_by(self, method: str, upscaler: Upscaler | None, item: str) -> str:
        """What made ``method``'s output of the image ``item``, by content: the model's weights' fingerprint, or
        ``sha256:<digest>`` of an outside output file; empty for baselines and the ground truth."""
        if upscaler is not None:
            return upscaler.info.fingerprint
        digest = self.outside[method].digest(item) if method in self.outside else ""
        return f"sha256:{digest}" if digest else ""

    def key(self, method: str, upscaler: Upscaler | None, grey_image: bool, item: str = "") -> str:
        """The settings part of a stored result's key (an outside output's: its file's digest)."""
        settings = self.settings
        key: dict[str, object] = {"scale": self.scale, "crop": self.crop, "channel": settings.channel,
                                  "niqe_crop": settings.niqe_crop_border, "method": method}
        if grey_image:  # the grey convention changes only grey images' scores (colour results stay reusable)
            key["grey"] = settings.grey
        if upscaler is not None:
            key |= {"precision": upscaler.choice.precision, "weights": upscaler.info.fingerprint}
        elif method in self.outside:
            key["outputs"] = self.made_by(method, None, item)
        return json.dumps(key, sort_keys=True)

    def work(self, method: str, device: str | None, weights: str | None) -> str:
        """What a result of ``method`` depends on besides the image, known before anything runs: the
        settings, the device kind a model runs on (``cpu``, ``cuda``) and its weights' fingerprint."""
        key = asdict(self.settings) | {"scale": self.scale, "crop": self.crop, "method": method}
        if method in self.outside:  # ``weights``: its output file's digest
            key["outputs"] = weights
        elif method not in BASELINES and method != HR_METHOD:
            key |= {"device_kind": device, "weights": weights}
        key.pop("device")  # the requested device is replaced by the kind it resolved to
        return json.dumps(key, sort_keys=True)

    @property
    def metric_device(self) -> str:
        """The torch device learned metrics run on: the evaluation's CUDA device where it has one, else the CPU."""
        requested = self.settings.device
        if requested == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return requested if requested.startswith("cuda") else "cpu"

    def wanted(self, method: str) -> list[str]:
        """The metrics of ``method``'s row: no full-reference metric of the ground truth itself."""
        return [m for m in self.metrics if not (method == HR_METHOD and METRICS[m].full_reference)]


@dataclass(frozen=True)
class Pair:
    """One image pair of a dataset (``hr`` is ``None`` in an LR-only set), the size outputs are made at, and the
    hash of its content (a stored result's key)."""

    name: str
    lr: np.ndarray
    hr: np.ndarray | None
    digest: str
    item_key: str
    size: tuple[int, int]

    @classmethod
    def load(cls, dataset: Dataset, item: DatasetItem) -> Pair:
        lr, hr = dataset.load(item)
        size = hr.shape[:2] if hr is not None else (lr.shape[0] * dataset.scale, lr.shape[1] * dataset.scale)
        return cls(item.name, lr, hr, _image_hash(lr, hr, dataset.scale), dataset.item_key(item), tuple(size))

    @property
    def grey(self) -> bool:
        image = self.hr if self.hr is not None else self.lr
        return image.ndim == 2 or image.shape[2] == 1


def _score(context: Scoring, pair: Pair, method: str, upscaler: Upscaler | None) -> EvalRow:
    """``method``'s row of ``pair``: from the store where it holds every wanted metric, else computed and stored."""
    key = context.key(method, upscaler, pair.grey, pair.name)
    wanted = context.wanted(method)
    db = context.db
    stored = db.get(pair.digest, method, key) if db is not None else None
    if db is None:
        return compute_row(context, pair, method, upscaler, wanted)
    device = upscaler.choice.device.split(":")[0] if upscaler is not None else None
    weights = context.made_by(method, upscaler, pair.name) or None
    work = context.work(method, device, weights)
    if stored is not None and all(m in stored[0] for m in wanted):
        db.link(pair.item_key, method, work, pair.digest, key)
        return stored_row(pair.name, method, wanted, stored, weights or "")
    row = compute_row(context, pair, method, upscaler, wanted)
    db.put(pair.digest, method, key, row, item=(pair.item_key, work))
    return row


def stored_row(image: str, method: str, wanted: list[str], stored: tuple[dict, dict], weights: str = "") -> EvalRow:
    """A row read back from the store; ``weights`` is the fingerprint its key holds (it was computed with them)."""
    values, meta = stored
    return EvalRow(image, method, {m: values[m] for m in wanted}, meta["seconds"], meta["device"],
                   meta["precision"], meta["source"], reused=True, weights=weights)


def compute_row(context: Scoring, pair: Pair, method: str, upscaler: Upscaler | None, wanted: list[str]) -> EvalRow:
    settings = context.settings
    start = time.perf_counter()
    if method == HR_METHOD:
        output, device, precision, source = pair.hr, "", "", "ground truth"
    elif method in context.outside:
        made = context.outside[method]
        channels = (pair.hr if pair.hr is not None else pair.lr).shape[2]
        output, device, precision = made.read(pair.name, pair.size, channels), "", ""
        source = f"outputs in {made.root}"
    else:
        output = run_method(method, pair.lr, pair.size, upscaler, tile=settings.tile)
        if upscaler is None:
            device, precision, source = "cpu", "fp32", BASELINES[method]
        else:
            device, precision, source = upscaler.choice.device, upscaler.choice.precision, upscaler.info.source
    seconds = time.perf_counter() - start
    try:  # the one scoring path (each metric's own crop policy: the scale, NIQE's setting, or none)
        values = score_images({method: cast(np.ndarray, output)}, pair.hr, metrics=wanted, crop_border=context.crop,
                              niqe_crop_border=settings.niqe_crop_border, unscorable="raise",
                              options=MetricOptions(0, settings.channel, settings.grey, context.metric_device))[method]
    except ValueError as exc:  # this image cannot be scored so (too small to crop, ...): its row says why
        raise StudioError(str(exc)) from exc
    weights = context.made_by(method, upscaler, pair.name)
    return EvalRow(pair.name, method, values, seconds, device, precision, source, weights=weights)


