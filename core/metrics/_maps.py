"""Where two images differ, as pictures: the absolute difference, the SSIM map against a reference, and
LR consistency (how far an output, brought back down to the input's size, is from the input).

Each map is a :class:`Heat`: per-pixel values on the output grid, the colour scale they are drawn
with (``low`` → ``high``, :data:`HEAT_RAMP`), and a one-number summary. The comparison page and the
dashboard draw them; the numbers are computed here, once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._resize import imresize
from ._pixel import Channel, Grey, check_pair, prepare, psnr, ssim_windows

__all__ = ["HEAT_RAMP", "Heat", "difference_map", "heat_colours", "lr_consistency", "ssim_map"]

# The colour ramp of every map: dark (low) to pale yellow (high), 256 entries of uint8 RGB,
# interpolated between these stops (fractions of the scale).
_STOPS = ((0.0, (12, 10, 32)), (0.3, (86, 36, 150)), (0.6, (214, 52, 72)), (0.85, (250, 160, 40)),
          (1.0, (255, 250, 205)))
HEAT_RAMP = np.stack([np.interp(np.linspace(0, 1, 256), [s for s, _ in _STOPS], [c[i] for _, c in _STOPS])
                      for i in range(3)], axis=1).round().astype(np.uint8)
_NO_VALUE = np.array([128, 128, 128], np.uint8)  # where a map has no value (SSIM's border)


@dataclass(frozen=True)
class Heat:
    """A map of ``values`` (float64, ``(H, W)``, NaN where there is none) drawn from ``low`` to ``high``."""

    values: np.ndarray
    low: float
    high: float
    label: str  # what the values are, with their unit
    summary: float  # the one number for the whole image (the metric the map explains)

    def colours(self) -> np.ndarray:
        return heat_colours(self.values, self.low, self.high)


def heat_colours(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values`` as uint8 RGB on :data:`HEAT_RAMP`: ``low`` is its first colour, ``high`` its last
    (either may be the larger), clipped beyond; NaN is grey."""
    span = (high - low) or 1.0
    index = np.clip(np.floor((np.nan_to_num(values, nan=low) - low) / span * 255 + 0.5), 0, 255).astype(np.intp)
    out = HEAT_RAMP[index]
    out[np.isnan(values)] = _NO_VALUE
    return out


def _levels(image: np.ndarray) -> np.ndarray:
    """RGB (grey read as RGB, alpha dropped) in 8-bit levels, float64, whatever the bit depth."""
    return prepare(image, 0, "rgb") * 255.0


def _scale_top(values: np.ndarray) -> float:
    """The top of a difference map's colour scale: its 99.5th percentile, so a few extreme pixels
    do not make the rest dark, rounded up to a whole level and at least 1."""
    return float(max(1.0, np.ceil(np.percentile(values, 99.5)))) if values.size else 1.0


def difference_map(image: np.ndarray, other: np.ndarray) -> Heat:
    """``|image - other|`` per pixel, averaged over R, G and B, in 8-bit levels (0-255 whatever the bit
    depth); the summary is the mean absolute difference."""
    check_pair(image, other)
    values = np.abs(_levels(image) - _levels(other)).mean(axis=2)
    return Heat(values, 0.0, _scale_top(values), "|A − B|, 8-bit levels (mean of R, G, B)", float(values.mean()))


def ssim_map(image: np.ndarray, reference: np.ndarray, *, crop_border: int = 0, channel: Channel = "y",
             grey: Grey = "rgb") -> Heat:
    """SSIM of each 11x11 window (on Y, or the mean over R, G, B), at the window's centre, scored as :func:`ssim`
    scores: ``crop_border`` px cut from each side first. The border it cuts, and the 5 px inside it where no window
    fits, have no value. The summary is :func:`ssim` with the same settings, to the last digit: the map explains
    the number shown beside it."""
    check_pair(image, reference)
    a, b = prepare(image, crop_border, channel, grey), prepare(reference, crop_border, channel, grey)
    if min(a.shape[:2]) < 11:
        raise ValueError("An SSIM map needs images of at least 11x11 pixels after cropping.")
    windows = [ssim_windows(a[:, :, c], b[:, :, c]) for c in range(a.shape[2])]
    values = np.full(image.shape[:2], np.nan)
    inner = crop_border + 5
    values[inner:image.shape[0] - inner, inner:image.shape[1] - inner] = np.mean(windows, axis=0)
    where = f"{crop_border} px border cropped, " if crop_border else ""
    label = f"SSIM of each 11x11 window on {'Y' if a.shape[2] == 1 else 'RGB'} ({where}1 = the same)"
    return Heat(values, 0.0, 1.0, label, float(np.mean([w.mean() for w in windows])))


def lr_consistency(output: np.ndarray, lr: np.ndarray) -> Heat:
    """How far ``output``, brought down to the input's size with MATLAB bicubic (the bicubic
    degradation's kernel), is from the input ``lr``: a faithful upscale scores high (LR-PSNR on Y, dB,
    the summary), while detail invented against the input shows as bright areas.

    The map is ``|down(output) - lr|`` in 8-bit levels (mean of R, G, B), each input pixel drawn as
    the block of output pixels it covers.
    """
    if output.dtype != lr.dtype:
        raise ValueError(f"Output ({output.dtype}) and input ({lr.dtype}) must have the same dtype.")
    down = imresize(output, size=lr.shape[:2])
    score = psnr(down, lr)
    small = np.abs(_levels(down) - _levels(lr)).mean(axis=2)
    rows = np.minimum((np.arange(output.shape[0]) * lr.shape[0]) // output.shape[0], lr.shape[0] - 1)
    cols = np.minimum((np.arange(output.shape[1]) * lr.shape[1]) // output.shape[1], lr.shape[1] - 1)
    values = small[rows][:, cols]
    return Heat(values, 0.0, _scale_top(small), "|down(output) − input|, 8-bit levels", score)
