"""PSNR and SSIM as the super-resolution literature computes them (BasicSR / MATLAB), and the
preparation every metric shares: crop, ``[0, 1]`` float64, Y of BT.601 or RGB, grey read as RGB.
The conventions are stated once in :mod:`core.metrics`."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from .._io import to_unit
from ..errors import SettingsError

__all__ = ["GREY_MODES", "SSIM_C1", "SSIM_C2", "SSIM_WINDOW", "Channel", "Grey", "check_pair", "prepare", "psnr",
           "rgb_to_y", "ssim", "ssim_windows"]

Channel = Literal["y", "rgb"]
Grey = Literal["rgb", "as-is"]
GREY_MODES: tuple[Grey, ...] = ("rgb", "as-is")  # how grey images are scored; the first is the default
SSIM_WINDOW = cv2.getGaussianKernel(11, 1.5)[:, 0]  # the 11-tap Gaussian, sigma 1.5, summing to 1 (float64)
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # (K L)^2 for L = 1


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 studio-range Y of ``float`` RGB in ``[0, 1]``; ``(H, W, 3) -> (H, W)``, in ``[16/255, 235/255]``."""
    return (16.0 + rgb @ np.array([65.481, 128.553, 24.966])) / 255.0


def prepare(image: np.ndarray, crop_border: int, channel: Channel, grey: Grey = "rgb") -> np.ndarray:
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


def check_pair(image: np.ndarray, reference: np.ndarray) -> None:
    if image.shape != reference.shape:
        raise ValueError(f"Image {image.shape} and reference {reference.shape} must have the same shape.")
    if image.dtype != reference.dtype:
        raise ValueError(f"Image ({image.dtype}) and reference ({reference.dtype}) must have the same dtype.")


def psnr(image: np.ndarray, reference: np.ndarray, *, crop_border: int = 0, channel: Channel = "y",
         grey: Grey = "rgb") -> float:
    """PSNR in dB of ``image`` against ``reference`` (see the module docstring for conventions)."""
    check_pair(image, reference)
    a, b = prepare(image, crop_border, channel, grey), prepare(reference, crop_border, channel, grey)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))


def ssim(image: np.ndarray, reference: np.ndarray, *, crop_border: int = 0, channel: Channel = "y",
         grey: Grey = "rgb") -> float:
    """SSIM of ``image`` against ``reference`` in ``[-1, 1]`` (see the module docstring)."""
    check_pair(image, reference)
    a, b = prepare(image, crop_border, channel, grey), prepare(reference, crop_border, channel, grey)
    if min(a.shape[:2]) < 11:
        raise ValueError("SSIM needs images of at least 11x11 pixels after cropping.")
    return float(np.mean([_ssim_channel(a[:, :, c], b[:, :, c]) for c in range(a.shape[2])]))


def _ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of one float64 channel over the windows that fit inside it (scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``)."""
    return float(ssim_windows(a, b).mean())


def ssim_windows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of each 11x11 window that fits inside one float64 channel, ``(H - 10, W - 10)``; computed
    with separable filters, the border each filter's padding touches cut off."""
    def local_mean(x: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(x, cv2.CV_64F, SSIM_WINDOW, SSIM_WINDOW, borderType=cv2.BORDER_REFLECT)[5:-5, 5:-5]

    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mu_a * mu_a
    var_b = local_mean(b * b) - mu_b * mu_b
    cov = local_mean(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)) / (
        (mu_a * mu_a + mu_b * mu_b + SSIM_C1) * (var_a + var_b + SSIM_C2))
