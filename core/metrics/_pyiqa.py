"""pyiqa's learned metrics in the registry, for users who install the optional extra and accept its licence.

``pip install -e '.[pyiqa]'`` installs pyiqa (PolyForm Noncommercial 1.0.0: non-commercial use only) and
its dependencies (timm, transformers, ...). Where pyiqa and those are installed, the metrics below are registered
as ``pyiqa-NAME`` (``pyiqa-maniqa``, ``pyiqa-topiq-nr``, ...) beside the studio's own, with pyiqa's licence in
their weights' record, so every front end shows it. Nothing imports pyiqa before one of them is computed (its
import takes seconds). pyiqa fetches and checks its own weights into ``$TORCH_HOME/hub/pyiqa`` when a metric
is first created (``metrics --download pyiqa-maniqa``, or the Models & System page), after which the metric
counts as ready; offline, pyiqa's failure is turned into a message that names that folder.

pyiqa is never a dependency of the studio: without the extra these names are simply not registered. The
studio's own MUSIQ, CLIP-IQA, LPIPS and DISTS follow their authors' code; pyiqa's versions of them may differ
(pyiqa's MUSIQ resizes with bicubic instead of TensorFlow's Gaussian kernel), which is why ``pyiqa-musiq`` is
offered beside ``musiq`` for comparison with numbers computed with pyiqa.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from .._settings import default_weights_dir
from ..errors import WeightsMissingError
from ._pixel import check_pair
from ._registry import FULL_REFERENCE, NO_REFERENCE, Kind, MetricInfo, MetricOptions, MetricRegistry, WeightsFile
from ._torchvision import to_tensor

__all__ = ["PYIQA_LICENCE", "PYIQA_METRICS", "PyiqaMetric", "pyiqa_available", "register_pyiqa"]

PYIQA_LICENCE = ("PolyForm-Noncommercial-1.0.0 (pyiqa, Chaofeng Chen et al.): non-commercial use only; the networks "
                 "keep their authors' terms")
PYIQA_VERSION = "0.1.16"
_NEEDS = ("pyiqa", "timm", "transformers")  # pyiqa's package imports these at once


@dataclass(frozen=True)
class PyiqaMetric:
    """One pyiqa metric as the registry shows it (pyiqa's own name, and what its documentation says of it)."""

    pyiqa_name: str
    title: str
    kind: Kind
    higher_is_better: bool
    value_range: tuple[float, float]
    description: str

    @property
    def name(self) -> str:
        return "pyiqa-" + self.pyiqa_name.replace("_", "-")


PYIQA_METRICS = (
    PyiqaMetric("maniqa", "MANIQA (pyiqa)", NO_REFERENCE, True, (0.0, 1.0),
                "Multi-dimension attention network on ViT-B/8 features, KonIQ-10k (Yang et al. 2022)."),
    PyiqaMetric("maniqa-pipal", "MANIQA-PIPAL (pyiqa)", NO_REFERENCE, True, (0.0, 1.0),
                "MANIQA trained on PIPAL, the NTIRE 2022 perceptual IQA challenge winner (Yang et al. 2022)."),
    PyiqaMetric("topiq_nr", "TOPIQ-NR (pyiqa)", NO_REFERENCE, True, (0.0, 1.0),
                "Top-down semantic attention on ResNet-50 features, KonIQ-10k (Chen et al. 2024)."),
    PyiqaMetric("topiq_fr", "TOPIQ-FR (pyiqa)", FULL_REFERENCE, True, (0.0, 1.0),
                "TOPIQ comparing with a reference, KADID-10k (Chen et al. 2024)."),
    PyiqaMetric("liqe", "LIQE (pyiqa)", NO_REFERENCE, True, (1.0, 5.0),
                "Language-image quality evaluator on CLIP, KonIQ-10k (Zhang et al. 2023)."),
    PyiqaMetric("musiq", "MUSIQ (pyiqa's port)", NO_REFERENCE, True, (0.0, 100.0),
                "pyiqa's PyTorch MUSIQ (KonIQ): a bicubic resize where the authors use a Gaussian one."),
)


def pyiqa_available() -> bool:
    """Whether pyiqa and the packages its import needs are installed (nothing is imported)."""
    return all(importlib.util.find_spec(name) is not None for name in _NEEDS)


_loaded: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def _marker(metric: PyiqaMetric) -> Path:
    """An empty file saying pyiqa once loaded ``metric`` here, so its weights are in pyiqa's cache."""
    return default_weights_dir() / "metrics" / "pyiqa-loaded" / metric.pyiqa_name


def _ready(metric: PyiqaMetric) -> bool:
    return any(name == metric.pyiqa_name for name, _ in _loaded) or _marker(metric).is_file()


def _network(metric: PyiqaMetric, device: str) -> Any:
    """pyiqa's metric, created once per process and device.

    Raises:
        WeightsMissingError: pyiqa could not get its weights (offline, or its hub unreachable).
    """
    with _lock:
        if (metric.pyiqa_name, device) not in _loaded:
            pyiqa = importlib.import_module("pyiqa")
            try:
                network = pyiqa.create_metric(metric.pyiqa_name, device=device)
            except (OSError, RuntimeError, ValueError, ConnectionError) as exc:
                raise WeightsMissingError(
                    f"pyiqa could not load {metric.pyiqa_name} ({type(exc).__name__}: {exc}). pyiqa fetches its "
                    f"weights from its own hub into {torch.hub.get_dir()}/pyiqa, and timm's backbones into the "
                    "Hugging Face cache: connect once, or copy the files there.") from exc
            _loaded[metric.pyiqa_name, device] = network
            _marker(metric).parent.mkdir(parents=True, exist_ok=True)
            _marker(metric).touch()  # empty: nothing to be written by halves
        return _loaded[metric.pyiqa_name, device]


def _compute(metric: PyiqaMetric, image: np.ndarray, reference: np.ndarray | None, options: MetricOptions) -> float:
    if metric.kind == FULL_REFERENCE:
        if reference is None:
            raise ValueError(f"{metric.title} is a full-reference metric: give a reference image.")
        check_pair(image, reference)
    network = _network(metric, options.device)
    args = [to_tensor(image).to(options.device)]
    if metric.kind == FULL_REFERENCE:
        args.append(to_tensor(cast(np.ndarray, reference)).to(options.device))  # checked above
    with torch.inference_mode():
        return float(torch.as_tensor(network(*args)).reshape(-1)[0])


def _download(metric: PyiqaMetric, _progress: object = None) -> None:
    _network(metric, "cpu")  # pyiqa fetches what the metric needs when it is created


def register_pyiqa(registry: MetricRegistry) -> None:
    """Add :data:`PYIQA_METRICS` to ``registry`` (the caller checks :func:`pyiqa_available`)."""
    weights = (WeightsFile(f"fetched by pyiqa {PYIQA_VERSION} into $TORCH_HOME/hub/pyiqa",
                           "https://github.com/chaofengc/IQA-PyTorch", "", PYIQA_LICENCE, None),)
    for metric in PYIQA_METRICS:
        registry.add(MetricInfo(
            metric.name, metric.title, metric.kind, metric.higher_is_better, "", metric.description,
            metric.value_range, "RGB", "none", f"pyiqa {PYIQA_VERSION} create_metric('{metric.pyiqa_name}') itself",
            partial(_compute, metric), devices=("cpu", "cuda"), weights=weights, ready=partial(_ready, metric),
            download=partial(_download, metric)))
