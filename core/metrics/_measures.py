"""Image quality metrics that agree with the super-resolution literature (BasicSR / MATLAB).

Conventions (stated once, used everywhere):

* Inputs are edge-convention images (``uint8`` or ``uint16``, HWC, same shape for a pair).
  Values are brought to ``[0, 1]`` in ``float64`` first, so results do not depend on the bit
  depth; ``uint8`` results equal BasicSR's 0-255 computations.
* ``crop_border`` pixels are removed on every side before anything else.
* ``channel="y"``: the Y of YCbCr, ITU-R BT.601 studio range,
  ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` for ``R, G, B`` in ``[0, 1]`` (not
  rounded). ``channel="rgb"``: all channels (PSNR over all values, SSIM averaged per channel).
* Grey images: ``grey="rgb"`` (default) reads them as RGB with three equal channels before the
  above, as BasicSR (``cv2.imread`` in colour) and published tables do, so their Y is
  ``(16 + 219 g) / 255``; ``grey="as-is"`` scores the grey channel itself (``Y = g``), which
  gives ``20 log10(255 / 219)`` = 1.32 dB less PSNR for the same error. Colour images are not
  affected.
* PSNR: ``10 log10(1 / MSE)`` (``inf`` for identical images).
* SSIM: Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), population covariance,
  ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, mean over the valid region (scikit-image computes
  exactly this with the options used here).
* NIQE: Mittal et al. 2013 as MATLAB computes it, on Y scaled to 0-255 and rounded, 96x96
  blocks, two scales (the second made by MATLAB ``imresize(0.5)``), with the published
  pristine-model parameters (``core/data/niqe_pris_params.npz``); the local (MSCN)
  normalisation in float32 like BasicSR. Lower is better.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy.ndimage import convolve
from scipy.special import gamma as gamma_fn
from skimage.metrics import structural_similarity

from .._errors import SettingsError, UnknownNameError
from .._io import to_unit
from .._resize import imresize

__all__ = ["GREY_MODES", "METRICS", "Channel", "Grey", "MetricInfo", "compute_metric", "niqe", "psnr", "rgb_to_y",
           "score_images", "ssim"]

Channel = Literal["y", "rgb"]
Grey = Literal["rgb", "as-is"]
GREY_MODES: tuple[Grey, ...] = ("rgb", "as-is")  # how grey images are scored; the first is the default



def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 studio-range Y of ``float`` RGB in ``[0, 1]``; ``(H, W, 3) -> (H, W)``, in ``[16/255, 235/255]``."""
    return (16.0 + rgb @ np.array([65.481, 128.553, 24.966])) / 255.0


def _prepare(image: np.ndarray, crop_border: int, channel: Channel, grey: Grey = "rgb") -> np.ndarray:
    """Crop, convert to ``[0, 1]`` float64, and select channels; returns ``(H, W, C)``."""
    if crop_border < 0:
        raise ValueError("crop_border must be >= 0.")
    if grey not in GREY_MODES:
        raise SettingsError(f"grey must be one of {', '.join(GREY_MODES)}, got {grey!r}.")
    array = to_unit(image, np.float64)
    if array.shape[2] == 1 and grey == "rgb":
        array = np.repeat(array, 3, axis=2)  # read as RGB, as BasicSR does
    if crop_border:
        if min(array.shape[:2]) <= 2 * crop_border:
            raise ValueError(f"The image ({array.shape[1]}x{array.shape[0]}) is too small to crop {crop_border} px.")
        array = array[crop_border:-crop_border, crop_border:-crop_border]
    channels = array.shape[2]
    if channel == "y" and channels >= 3:
        return rgb_to_y(array[:, :, :3])[:, :, None]
    if channel not in ("y", "rgb"):
        raise SettingsError(f"channel must be 'y' or 'rgb', got {channel!r}.")
    return array[:, :, :3] if channels == 4 else array


def _check_pair(image: np.ndarray, reference: np.ndarray) -> None:
    if image.shape != reference.shape:
        raise ValueError(f"Image {image.shape} and reference {reference.shape} must have the same shape.")
    if image.dtype != reference.dtype:
        raise ValueError(f"Image ({image.dtype}) and reference ({reference.dtype}) must have the same dtype.")


def psnr(image: np.ndarray, reference: np.ndarray, *, crop_border: int = 0, channel: Channel = "y",
         grey: Grey = "rgb") -> float:
    """PSNR in dB of ``image`` against ``reference`` (see the module docstring for conventions)."""
    _check_pair(image, reference)
    a, b = _prepare(image, crop_border, channel, grey), _prepare(reference, crop_border, channel, grey)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))


def ssim(image: np.ndarray, reference: np.ndarray, *, crop_border: int = 0, channel: Channel = "y",
         grey: Grey = "rgb") -> float:
    """SSIM of ``image`` against ``reference`` in ``[-1, 1]`` (see the module docstring)."""
    _check_pair(image, reference)
    a, b = _prepare(image, crop_border, channel, grey), _prepare(reference, crop_border, channel, grey)
    if min(a.shape[:2]) < 11:
        raise ValueError("SSIM needs images of at least 11x11 pixels after cropping.")
    return float(structural_similarity(
        a, b, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False,
    ))


# ---------------------------------------------------------------- NIQE

_NIQE_BLOCK = 96
_GAMMAS = np.arange(0.2, 10.001, 0.001)
_R_GAMMA = gamma_fn(2 / _GAMMAS) ** 2 / (gamma_fn(1 / _GAMMAS) * gamma_fn(3 / _GAMMAS))


@lru_cache(maxsize=1)
def _pristine() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path = importlib.resources.files("core") / "data" / "niqe_pris_params.npz"
    with importlib.resources.as_file(path) as file, np.load(file) as data:
        return data["mu_pris_param"][0].copy(), data["cov_pris_param"].copy(), data["gaussian_window"].copy()


def _aggd(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric generalised Gaussian fit per block (moment matching over a gamma table).

    ``blocks`` is ``(N, h, w)``; returns ``alpha, beta_left, beta_right``, each ``(N,)``.
    """
    flat = blocks.reshape(len(blocks), -1)
    neg, pos = flat < 0, flat > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt((flat**2 * neg).sum(1) / neg.sum(1))
        right = np.sqrt((flat**2 * pos).sum(1) / pos.sum(1))
        ratio = left / right
        r_hat = np.abs(flat).mean(1) ** 2 / (flat**2).mean(1)
        r_norm = r_hat * (ratio**3 + 1) * (ratio + 1) / (ratio**2 + 1) ** 2
    alpha = _GAMMAS[np.argmin((_R_GAMMA[None, :] - r_norm[:, None]) ** 2, axis=1)]
    alpha = np.where(np.isnan(r_norm), np.nan, alpha)
    factor = np.sqrt(gamma_fn(1 / alpha) / gamma_fn(3 / alpha))
    return alpha, left * factor, right * factor


def _niqe_features(blocks: np.ndarray) -> np.ndarray:
    """The 18 NIQE features of each normalised block, ``(N, h, w) -> (N, 18)``."""
    alpha, left, right = _aggd(blocks)
    columns = [alpha, (left + right) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):  # horizontal, vertical, two diagonals (circular)
        a, bl, br = _aggd(blocks * np.roll(blocks, shift, axis=(1, 2)))
        columns += [a, (br - bl) * gamma_fn(2 / a) / gamma_fn(1 / a), bl, br]
    return np.stack(columns, axis=1)


def _blocks(image: np.ndarray, size: int, rows: int, cols: int) -> np.ndarray:
    cut = image[: rows * size, : cols * size]
    return cut.reshape(rows, size, cols, size).transpose(0, 2, 1, 3).reshape(rows * cols, size, size)


def niqe(image: np.ndarray, *, crop_border: int = 0, grey: Grey = "rgb") -> float:
    """NIQE of ``image`` on its Y channel (lower is better); see the module docstring.

    Raises:
        ValueError: the image (after cropping) is smaller than one 96x96 block.
    """
    y = np.round(_prepare(image, crop_border, "y", grey)[:, :, 0] * 255.0)
    rows, cols = y.shape[0] // _NIQE_BLOCK, y.shape[1] // _NIQE_BLOCK
    if rows == 0 or cols == 0:
        raise ValueError("NIQE needs at least 96x96 pixels after cropping.")
    mu_pris, cov_pris, window = _pristine()
    # The local normalisation runs in float32, as in BasicSR, whose numbers papers quote
    # (float64 differs by up to ~0.04 on images with large flat areas).
    current = y[: rows * _NIQE_BLOCK, : cols * _NIQE_BLOCK].astype(np.float32)
    features = []
    for scale in (1, 2):
        mu = convolve(current, window, mode="nearest")
        sigma = np.sqrt(np.abs(convolve(current**2, window, mode="nearest") - mu**2))
        normalised = (current - mu) / (sigma + 1.0)
        features.append(_niqe_features(_blocks(normalised, _NIQE_BLOCK // scale, rows, cols)))
        if scale == 1:
            current = imresize(current / 255.0, 0.5) * 255.0
    table = np.concatenate(features, axis=1)
    mu = np.nanmean(table, axis=0)
    complete = table[~np.isnan(table).any(axis=1)]
    cov = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros_like(cov_pris)
    diff = mu_pris - mu
    return float(np.sqrt(diff @ np.linalg.pinv((cov_pris + cov) / 2) @ diff))


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class MetricInfo:
    """What the UI and tables need to know about a metric.

    Attributes:
        name: key (``psnr``, ``ssim``, ``niqe``).
        title: display name.
        full_reference: needs a ground-truth image.
        higher_is_better: direction of improvement.
        unit: ``"dB"`` or ``""``.
        description: how it is computed, one line.
    """

    name: str
    title: str
    full_reference: bool
    higher_is_better: bool
    unit: str
    description: str

    @property
    def kind(self) -> str:
        return "full-reference" if self.full_reference else "no-reference"

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


METRICS: dict[str, MetricInfo] = {
    "psnr": MetricInfo("psnr", "PSNR", True, True, "dB", "Peak signal-to-noise ratio, BasicSR/MATLAB convention."),
    "ssim": MetricInfo("ssim", "SSIM", True, True, "", "Structural similarity, 11x11 Gaussian window, sigma 1.5."),
    "niqe": MetricInfo("niqe", "NIQE", False, False, "", "Natural image quality evaluator (MATLAB), on Y."),
}


def score_images(
    images: dict[str, np.ndarray],
    reference: np.ndarray | None = None,
    *,
    crop_border: int = 0,
    channel: Channel = "y",
    grey: Grey = "rgb",
) -> dict[str, dict[str, float | None]]:
    """NIQE of every image, and PSNR / SSIM against ``reference`` when given.

    A metric that cannot be computed (NIQE below 96x96, a reference of another size) is
    ``None``; nothing raises for those, so a UI can show the rest.
    """
    table: dict[str, dict[str, float | None]] = {}
    for name, image in images.items():
        row: dict[str, float | None] = {}
        try:
            row["niqe"] = niqe(image, grey=grey)
        except ValueError:
            row["niqe"] = None
        if reference is not None:
            usable = reference.shape == image.shape and reference.dtype == image.dtype
            options = {"crop_border": crop_border, "channel": channel, "grey": grey}
            row["psnr"] = psnr(image, reference, **options) if usable else None
            row["ssim"] = ssim(image, reference, **options) if usable else None
        table[name] = row
    return table


def compute_metric(
    name: str,
    image: np.ndarray,
    reference: np.ndarray | None = None,
    *,
    crop_border: int = 0,
    channel: Channel = "y",
    grey: Grey = "rgb",
) -> float:
    """Compute metric ``name``; full-reference metrics need ``reference``."""
    if name not in METRICS:
        raise UnknownNameError(f"Unknown metric {name!r}; known: {', '.join(METRICS)}.")
    info = METRICS[name]
    if name == "niqe":
        return niqe(image, crop_border=crop_border, grey=grey)
    if reference is None:
        raise ValueError(f"{info.title} is a full-reference metric: give a reference image.")
    function: Callable[..., float] = psnr if name == "psnr" else ssim
    return function(image, reference, crop_border=crop_border, channel=channel, grey=grey)
