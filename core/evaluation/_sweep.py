"""Sensitivity sweeps: vary one degradation parameter, score each method against the HR.

Each point degrades the HR with a first-order chain in which only the swept parameter
acts (blur sigma, Gaussian noise sigma, or JPEG quality; the rest is a plain MATLAB-bicubic
downscale), restores it with every method and scores the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .._resize import crop_to_scale
from ..degradation import DegradationParams, KernelParams, NoiseParams, StageParams, apply_params
from ..errors import UnknownNameError
from ..metrics import METRICS, compute_metric

__all__ = ["SWEEP_PARAMETERS", "SweepPoint", "run_sweep", "sweep_params"]

SWEEP_PARAMETERS: dict[str, tuple[str, float, float]] = {
    # name: (label, min, max)
    "blur_sigma": ("Gaussian blur σ (px)", 0.2, 4.0),
    "noise_sigma": ("Gaussian noise σ (0-255)", 0.0, 50.0),
    "jpeg_quality": ("JPEG quality", 5.0, 100.0),
}

Method = Callable[[np.ndarray, tuple[int, int]], np.ndarray]


@dataclass(frozen=True)
class SweepPoint:
    parameter: str
    value: float
    method: str
    metric: str
    score: float | None


def sweep_params(parameter: str, value: float, scale: int, seed: int = 0) -> DegradationParams:
    """The fixed degradation of one sweep point (first order, one active knob)."""
    if parameter not in SWEEP_PARAMETERS:
        raise UnknownNameError(f"Unknown sweep parameter {parameter!r}; use {', '.join(SWEEP_PARAMETERS)}.")
    kernel = KernelParams("iso", 21, sigma_x=float(value)) if parameter == "blur_sigma" else None
    noise = NoiseParams("gaussian", float(value), False, seed) if parameter == "noise_sigma" and value > 0 else None
    quality = int(round(value)) if parameter == "jpeg_quality" else None
    stage = StageParams(kernel, "target", 1.0, "matlab", noise, quality, resize_to_target=True)
    # no unsharp mask (it would be a second knob) and a real JPEG codec
    return DegradationParams(scale, stage, None, None, usm_sharpen=False, jpeg_engine="opencv")


def run_sweep(
    hr: np.ndarray,
    parameter: str,
    values: Sequence[float],
    methods: dict[str, Method],
    metric: str,
    scale: int,
    *,
    on_point: Callable[[SweepPoint], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> list[SweepPoint]:
    """Score every method at every value; ``on_point`` sees each result as it comes."""
    cropped = crop_to_scale(hr, scale)
    points: list[SweepPoint] = []
    for value in values:
        lr = apply_params(cropped, sweep_params(parameter, value, scale), keep_stages=False).lr
        reference = cropped[:, :, :3] if cropped.ndim == 3 and cropped.shape[2] == 4 else cropped
        if reference.dtype != np.uint8:
            reference = np.rint(reference / 257.0).astype(np.uint8)
        for name, method in methods.items():
            if cancel is not None and cancel():
                return points
            output = method(lr, reference.shape[:2])
            try:
                border = scale if METRICS[metric].crop == "scale" else 0  # the metric's own crop policy
                score: float | None = compute_metric(metric, output, reference, crop_border=border)
            except ValueError:
                score = None
            point = SweepPoint(parameter, float(value), name, metric, score)
            points.append(point)
            if on_point is not None:
                on_point(point)
    return points
