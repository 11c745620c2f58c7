"""NIQE (Mittal et al. 2013) as MATLAB computes it; see :mod:`core.metrics` for the conventions."""

from __future__ import annotations

import importlib.resources
from functools import lru_cache

import cv2
import numpy as np
from scipy.special import gamma as gamma_fn

from ._pixel import Grey, prepare

__all__ = ["HALF_TAPS", "NIQE_BLOCK", "niqe", "niqe_score", "pristine"]

NIQE_BLOCK = 96
_GAMMAS = np.arange(0.2, 10.001, 0.001)
_R_GAMMA = gamma_fn(2 / _GAMMAS) ** 2 / (gamma_fn(1 / _GAMMAS) * gamma_fn(3 / _GAMMAS))


def _cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's bicubic kernel (a = -0.5)."""
    ax = np.abs(x)
    return np.where(ax <= 1, 1.5 * ax**3 - 2.5 * ax**2 + 1,
                    np.where(ax <= 2, -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2, 0.0))


# MATLAB ``imresize(x, 0.5)``: output pixel i is centred on input 2i + 0.5 and, antialiased, reads the eight
# inputs 2i - 3 .. 2i + 4 with the bicubic kernel stretched by 2 (rows mirrored at the edges: "symmetric")
HALF_TAPS = _cubic((np.arange(-3, 5) - 0.5) / 2)
HALF_TAPS = HALF_TAPS / HALF_TAPS.sum()


def _half(x: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(x, 0.5)`` of a float64 2-D array (equal to :func:`core.imresize` to rounding)."""
    for _ in range(2):
        rows = (x.shape[0] + 1) // 2
        padded = np.pad(x, ((3, 5), (0, 0)), mode="symmetric")
        out = np.zeros((rows, x.shape[1]))
        for k, tap in enumerate(HALF_TAPS):
            out += tap * padded[k: k + 2 * rows: 2]
        x = out.T  # the second pass does the columns, and turns the array back
    return x


@lru_cache(maxsize=1)
def pristine() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The published pristine model: mean, covariance, and the 7x7 local-normalisation window."""
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
    # a block with no negative (or no positive) value has no ratio: the search over the table finds nothing, and
    # MATLAB's min (like NumPy's argmin over NaN) gives its first entry, 0.2; its betas stay NaN
    alpha = _GAMMAS[np.argmin((_R_GAMMA[None, :] - r_norm[:, None]) ** 2, axis=1)]
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


def _local_mean(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.convolve(x, window, mode="nearest")`` of a float32 array: summed in float64, stored in
    float32, as scipy does (the window is symmetric, so correlation is convolution; "replicate" is "nearest")."""
    return cv2.filter2D(x.astype(np.float64), cv2.CV_64F, window, borderType=cv2.BORDER_REPLICATE).astype(np.float32)


def niqe(image: np.ndarray, *, crop_border: int = 0, grey: Grey = "rgb") -> float:
    """NIQE of ``image`` on its Y channel (lower is better); see the module docstring.

    Raises:
        ValueError: the image (after cropping) is smaller than one 96x96 block.
    """
    y = np.round(prepare(image, crop_border, "y", grey)[:, :, 0] * 255.0)
    rows, cols = y.shape[0] // NIQE_BLOCK, y.shape[1] // NIQE_BLOCK
    if rows == 0 or cols == 0:
        raise ValueError("NIQE needs at least 96x96 pixels after cropping.")
    window = pristine()[2].astype(np.float64)
    # The local normalisation runs in float32, as in BasicSR, whose numbers papers quote
    # (float64 differs by up to ~0.04 on images with large flat areas).
    current = y[: rows * NIQE_BLOCK, : cols * NIQE_BLOCK].astype(np.float32)
    features = []
    for scale in (1, 2):
        mu = _local_mean(current, window)
        sigma = np.sqrt(np.abs(_local_mean(current**2, window) - mu**2))
        normalised = (current - mu) / (sigma + 1.0)
        features.append(_niqe_features(_blocks(normalised, NIQE_BLOCK // scale, rows, cols)))
        if scale == 1:
            current = (_half(current / 255.0).astype(np.float32) * 255.0).astype(np.float32)
    return niqe_score(np.concatenate(features, axis=1))


def niqe_score(table: np.ndarray) -> float:
    """NIQE from the ``(blocks, 36)`` feature table: the distance of its fitted Gaussian to the pristine one."""
    mu_pris, cov_pris, _ = pristine()
    mu = np.nanmean(table, axis=0)
    complete = table[~np.isnan(table).any(axis=1)]
    cov = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros_like(cov_pris)
    diff = mu_pris - mu
    return float(np.sqrt(diff @ np.linalg.pinv((cov_pris + cov) / 2) @ diff))
