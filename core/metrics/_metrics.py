"""The registry of metrics, every one added here, in one place, and the two ways to compute them."""

from __future__ import annotations

import numpy as np

from ._niqe import niqe
from ._pixel import Channel, Grey, psnr, ssim
from ._registry import FULL_REFERENCE, NO_REFERENCE, MetricInfo, MetricOptions, MetricRegistry

__all__ = ["METRICS", "compute_metric", "score_images"]


def _reference(title: str, reference: np.ndarray | None) -> np.ndarray:
    if reference is None:
        raise ValueError(f"{title} is a full-reference metric: give a reference image.")
    return reference


METRICS = MetricRegistry()
METRICS.add(MetricInfo(
    "psnr", "PSNR", FULL_REFERENCE, True, "dB", "Peak signal-to-noise ratio, BasicSR/MATLAB convention.",
    (0.0, float("inf")), "Y (ITU-R BT.601) or RGB", "scale", "BasicSR calculate_psnr (test_y_channel)",
    lambda image, ref, o: psnr(image, _reference("PSNR", ref), crop_border=o.crop_border, channel=o.channel,
                               grey=o.grey)))
METRICS.add(MetricInfo(
    "ssim", "SSIM", FULL_REFERENCE, True, "", "Structural similarity, 11x11 Gaussian window, sigma 1.5.",
    (-1.0, 1.0), "Y (ITU-R BT.601) or RGB", "scale", "BasicSR calculate_ssim; scikit-image structural_similarity",
    lambda image, ref, o: ssim(image, _reference("SSIM", ref), crop_border=o.crop_border, channel=o.channel,
                               grey=o.grey)))
METRICS.add(MetricInfo(
    "niqe", "NIQE", NO_REFERENCE, False, "", "Natural image quality evaluator (MATLAB), on Y.",
    (0.0, float("inf")), "Y (ITU-R BT.601), 0-255 rounded", "niqe_crop_border", "MATLAB niqe; BasicSR calculate_niqe",
    lambda image, _ref, o: niqe(image, crop_border=o.crop_border, grey=o.grey)))


def compute_metric(
    name: str,
    image: np.ndarray,
    reference: np.ndarray | None = None,
    *,
    crop_border: int = 0,
    channel: Channel = "y",
    grey: Grey = "rgb",
) -> float:
    """Metric ``name`` of ``image`` (``uint8`` / ``uint16`` HWC); full-reference metrics need ``reference``.

    Raises:
        UnknownNameError: no such metric.
        ValueError: the pair cannot be scored (no reference, other sizes, too small).
    """
    return METRICS.get_metric(name).compute(image, reference, MetricOptions(crop_border, channel, grey))


def score_images(
    images: dict[str, np.ndarray],
    reference: np.ndarray | None = None,
    *,
    crop_border: int = 0,
    channel: Channel = "y",
    grey: Grey = "rgb",
) -> dict[str, dict[str, float | None]]:
    """Every registered metric of every image: the no-reference ones always, the full-reference ones
    against ``reference`` when given. ``crop_border`` applies to full-reference metrics.

    A metric that cannot be computed (NIQE below 96x96, a reference of another size) is ``None``;
    nothing raises for those, so a UI can show the rest.
    """
    table: dict[str, dict[str, float | None]] = {}
    for name, image in images.items():
        row: dict[str, float | None] = {}
        for metric in METRICS.values():
            if metric.full_reference and reference is None:
                continue
            options = MetricOptions(crop_border if metric.full_reference else 0, channel, grey)
            try:
                row[metric.name] = metric.compute(image, reference, options)
            except ValueError:
                row[metric.name] = None
        table[name] = row
    return table
