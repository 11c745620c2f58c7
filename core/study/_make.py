"""A study made from a dataset and methods: each method's output of each image (models, baselines, folders of
outputs made elsewhere), scored with every ready metric, written blind into a new study folder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import SettingsError
from ..evaluation import HR_METHOD, Dataset, Pair, Upscalers, outside_outputs, run_method
from ..metrics import METRICS, score_images
from ..upscale import Upscaler
from ._store import Study, create_study

__all__ = ["make_study"]

Progress = Callable[[int, int, str], None]


def make_study(folder: Path, dataset: Dataset, methods: Sequence[str], load: Callable[[str], Upscaler], *,
               name: str = "", metrics: Sequence[str] | None = None, progress: Progress | None = None,
               trials_per_rater: int | None = None) -> Study:
    """A new study in ``folder``: ``methods`` (names, or ``name=folder`` outputs made elsewhere) on every image of
    ``dataset``, with ``metrics`` (default: every ready one the set allows) scored for their agreement.

    Raises:
        SettingsError: ``hr`` among the methods (the reference is a check, not a contestant), too few or many.
        StudioError: an image or an output that cannot be read or made.
    """
    names, outside = outside_outputs(dataset, methods)
    if HR_METHOD in names:
        raise SettingsError("The HR reference is not a method of a study: its check trials use it.")
    if metrics is None:
        metrics = [m.name for m in METRICS.values() if m.ready() and (not dataset.lr_only or not m.full_reference)]
    upscalers = Upscalers(load, skip=tuple(outside))
    outputs: dict[str, dict[str, np.ndarray]] = {}
    references: dict[str, np.ndarray] = {}
    scores: dict[tuple[str, str], dict[str, float | None]] = {}
    total = len(dataset) * len(names)
    for k, item in enumerate(dataset.items):
        pair = Pair.load(dataset, item)
        made: dict[str, np.ndarray] = {}
        for j, method in enumerate(names):
            if progress is not None:
                progress(k * len(names) + j, total, f"{item.name} · {method}")
            if method in outside:
                channels = (pair.hr if pair.hr is not None else pair.lr).shape[2]
                made[method] = outside[method].read(item.name, pair.size, channels)
            else:
                made[method] = run_method(method, pair.lr, pair.size, upscalers.get(method))
        outputs[item.name] = made
        if pair.hr is not None:
            references[item.name] = pair.hr
        wanted = [m for m in metrics if pair.hr is not None or not METRICS[m].full_reference]
        values = score_images(made, pair.hr, metrics=wanted, crop_border=dataset.scale) if wanted else {}
        scores |= {(item.name, method): dict(v) for method, v in values.items()}
    if progress is not None:
        progress(total, total, "writing the study")
    return create_study(folder, name or dataset.name, outputs, references=references, scores=scores,
                        trials_per_rater=trials_per_rater)
