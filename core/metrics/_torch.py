"""PSNR, SSIM and NIQE on a torch device: the same conventions and numbers as the NumPy path
(:mod:`._pixel`, :mod:`._niqe`), computed where an evaluation's images already are (a CUDA GPU), so
scoring is not the bottleneck of a GPU evaluation. The registry uses it where the evaluation runs
on CUDA; on the CPU the NumPy / OpenCV path is faster (``benchmarks/metrics.py`` prints both).

Agreement with the NumPy path is tested on real images: PSNR to 1e-4 dB, SSIM to 1e-5, NIQE to 1e-3
(NIQE's local normalisation is float32, as BasicSR's; its sums run in float64 on both paths).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as func
from bicubic_pytorch import imresize as _bicubic_imresize

from ..errors import SettingsError
from ._niqe import NIQE_BLOCK, niqe_score, pristine
from ._pixel import GREY_MODES, SSIM_C1, SSIM_C2, SSIM_WINDOW, Channel, Grey, check_pair

__all__ = ["niqe_torch", "psnr_torch", "ssim_torch"]

_Y = (65.481, 128.553, 24.966)
_GAMMAS = torch.arange(0.2, 10.001, 0.001, dtype=torch.float64)


def _prepare(image: np.ndarray, crop_border: int, channel: Channel, grey: Grey, device: str) -> torch.Tensor:
    """:func:`._pixel.prepare` on ``device``: ``(C, H, W)`` float64 in ``[0, 1]``."""
    if crop_border < 0:
        raise ValueError("crop_border must be >= 0.")
    if grey not in GREY_MODES:
        raise SettingsError(f"grey must be one of {', '.join(GREY_MODES)}, got {grey!r}.")
    if channel not in ("y", "rgb"):
        raise SettingsError(f"channel must be 'y' or 'rgb', got {channel!r}.")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"Expected a uint8 or uint16 image, got {image.dtype}.")
    array = image if image.ndim == 3 else image[:, :, None]
    if crop_border and min(array.shape[:2]) <= 2 * crop_border:
        raise ValueError(f"The image ({array.shape[1]}x{array.shape[0]}) is too small to crop {crop_border} px.")
    if crop_border:
        array = array[crop_border:-crop_border, crop_border:-crop_border]
    wide = array.astype(np.int32) if array.dtype == np.uint16 else array  # torch has few uint16 kernels
    x = torch.from_numpy(np.require(wide, requirements=["C", "W"])).to(device).permute(2, 0, 1).to(torch.float64)
    x = x / float(np.iinfo(image.dtype).max)
    if x.shape[0] == 1 and grey == "rgb":
        x = x.expand(3, -1, -1)  # read as RGB, as BasicSR does
    if channel == "y" and x.shape[0] >= 3:
        return ((16.0 + x[0] * _Y[0] + x[1] * _Y[1] + x[2] * _Y[2]) / 255.0)[None]
    return x[:3] if x.shape[0] == 4 else x


def psnr_torch(image: np.ndarray, reference: np.ndarray, *, crop_border: int = 0, channel: Channel = "y",
               grey: Grey = "rgb", device: str = "cuda") -> float:
    """:func:`core.metrics.psnr` on ``device``."""
    check_pair(image, reference)
    a = _prepare(image, crop_border, channel, grey, device)
    b = _prepare(reference, crop_border, channel, grey, device)
    mse = float(torch.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))


def ssim_torch(image: np.ndarray, reference: np.ndarray, *, crop_border: int = 0, channel: Channel = "y",
               grey: Grey = "rgb", device: str = "cuda") -> float:
    """:func:`core.metrics.ssim` on ``device``: the five local means by separable 11-tap convolutions over the
    windows that fit inside the image."""
    check_pair(image, reference)
    a = _prepare(image, crop_border, channel, grey, device)
    b = _prepare(reference, crop_border, channel, grey, device)
    if min(a.shape[1:]) < 11:
        raise ValueError("SSIM needs images of at least 11x11 pixels after cropping.")
    window = torch.from_numpy(SSIM_WINDOW).to(device)
    maps = torch.stack([a, b, a * a, b * b, a * b])  # (5, C, H, W)
    flat = maps.reshape(-1, 1, *maps.shape[2:])
    flat = func.conv2d(func.conv2d(flat, window.view(1, 1, 11, 1)), window.view(1, 1, 1, 11))
    mu_a, mu_b, aa, bb, ab = flat.reshape(5, a.shape[0], *flat.shape[2:])
    var_a, var_b, cov = aa - mu_a * mu_a, bb - mu_b * mu_b, ab - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)) / (
        (mu_a * mu_a + mu_b * mu_b + SSIM_C1) * (var_a + var_b + SSIM_C2))
    return float(ssim_map.mean(dim=(1, 2)).mean())


def _aggd(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`._niqe._aggd` on ``(N, h, w)`` blocks, in float64."""
    flat = blocks.reshape(len(blocks), -1).to(torch.float64)
    neg, pos = flat < 0, flat > 0
    left = torch.sqrt((flat**2 * neg).sum(1) / neg.sum(1))
    right = torch.sqrt((flat**2 * pos).sum(1) / pos.sum(1))
    ratio = left / right
    r_hat = flat.abs().mean(1) ** 2 / (flat**2).mean(1)
    r_norm = r_hat * (ratio**3 + 1) * (ratio + 1) / (ratio**2 + 1) ** 2
    gammas = _GAMMAS.to(flat.device)
    r_gamma = torch.exp(2 * torch.lgamma(2 / gammas) - torch.lgamma(1 / gammas) - torch.lgamma(3 / gammas))
    alpha = gammas[torch.argmin((r_gamma[None, :] - torch.nan_to_num(r_norm, nan=0.0)[:, None]) ** 2, dim=1)]
    alpha = torch.where(torch.isnan(r_norm), gammas[0], alpha)  # as MATLAB's min over NaN: the first entry
    factor = torch.exp((torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)) / 2)
    return alpha, left * factor, right * factor


def _features(blocks: torch.Tensor) -> torch.Tensor:
    alpha, left, right = _aggd(blocks)
    columns = [alpha, (left + right) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a, bl, br = _aggd(blocks * torch.roll(blocks, shift, dims=(1, 2)))
        columns += [a, (br - bl) * torch.exp(torch.lgamma(2 / a) - torch.lgamma(1 / a)), bl, br]
    return torch.stack(columns, dim=1)


def niqe_torch(image: np.ndarray, *, crop_border: int = 0, grey: Grey = "rgb", device: str = "cuda") -> float:
    """:func:`core.metrics.niqe` on ``device`` (the last step, a 36x36 pseudo-inverse, on the CPU)."""
    y = torch.round(_prepare(image, crop_border, "y", grey, device)[0] * 255.0)
    rows, cols = y.shape[0] // NIQE_BLOCK, y.shape[1] // NIQE_BLOCK
    if rows == 0 or cols == 0:
        raise ValueError("NIQE needs at least 96x96 pixels after cropping.")
    window = torch.from_numpy(pristine()[2]).to(device=device, dtype=torch.float64)[None, None]
    current = y[: rows * NIQE_BLOCK, : cols * NIQE_BLOCK].to(torch.float32)
    tables = []
    for scale in (1, 2):
        def local_mean(x: torch.Tensor) -> torch.Tensor:  # summed in float64, kept in float32 (as scipy)
            padded = func.pad(x.to(torch.float64)[None, None], (3, 3, 3, 3), mode="replicate")
            return func.conv2d(padded, window)[0, 0].to(torch.float32)

        mu = local_mean(current)
        sigma = torch.sqrt(torch.abs(local_mean(current**2) - mu**2))
        normalised = (current - mu) / (sigma + 1.0)
        size = NIQE_BLOCK // scale
        blocks = normalised[: rows * size, : cols * size].reshape(rows, size, cols, size).permute(0, 2, 1, 3)
        tables.append(_features(blocks.reshape(rows * cols, size, size)))
        if scale == 1:
            half = _bicubic_imresize((current / 255.0).to(torch.float64)[None], scale=0.5, antialiasing=True)[0]
            current = half.to(torch.float32) * 255.0
    return niqe_score(torch.cat(tables, dim=1).cpu().numpy())
