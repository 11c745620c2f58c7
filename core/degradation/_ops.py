"""The operations of the degradation pipeline, as pure functions on float32 HWC images in [0, 1].

Each follows the official Real-ESRGAN / BasicSR computation (see :mod:`core.degradation._pipeline`):
blur is correlation with reflected borders (``filter2D``), the unsharp mask is ``USMSharp``,
resizes are PyTorch's ``interpolate``, noise is added and clipped, and JPEG is either
Real-ESRGAN's simulation or a real codec. Grey (one-channel) images stay one-channel.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch.nn import functional

from .._io import from_unit
from .._resize import imresize
from ._jpeg import diff_jpeg

__all__ = ["add_gaussian_noise", "add_poisson_noise", "blur", "jpeg", "resize_to", "usm_sharpen"]


def _keep_channels(result: np.ndarray, like: np.ndarray) -> np.ndarray:
    return result[:, :, None] if result.ndim == 2 and like.ndim == 3 else result


def blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate with ``kernel`` using reflected borders (float32 HWC in, same out)."""
    out = cv2.filter2D(image, -1, kernel.astype(np.float32), borderType=cv2.BORDER_REFLECT_101)
    return _keep_channels(out, image)


USM_RADIUS = 51  # px: the Gaussian window of Real-ESRGAN's unsharp mask (radius 50, made odd)


def usm_sharpen(image: np.ndarray, weight: float = 0.5, threshold: float = 10.0) -> np.ndarray:
    """Real-ESRGAN's unsharp mask: ``image + weight * (image - blur)``, clipped to [0, 1], blended
    in through a blurred mask of where ``|image - blur| > threshold / 255`` (float32 HWC)."""
    gaussian = cv2.getGaussianKernel(USM_RADIUS, 0)
    kernel = (gaussian @ gaussian.T).astype(np.float32)
    residual = image - blur(image, kernel)
    mask = blur((np.abs(residual) * 255.0 > threshold).astype(np.float32), kernel)
    sharp = np.clip(image + weight * residual, 0.0, 1.0)
    return mask * sharp + (1.0 - mask) * image


def resize_to(image: np.ndarray, size: tuple[int, int], mode: str, factor: float | None = None) -> np.ndarray:
    """Resize float32 HWC to ``(height, width)`` with ``mode`` (see :data:`RESIZE_MODES`).

    ``area`` / ``bilinear`` / ``bicubic`` are PyTorch's ``interpolate`` (no antialiasing,
    half-pixel centres), as in Real-ESRGAN. With ``factor`` the coordinates map by ``1 / factor``
    (``interpolate(scale_factor=factor)``, the output ``floor(size * factor)``), else by the
    ratio of the sizes. ``matlab`` is MATLAB's antialiased bicubic (:func:`core.imresize`).
    """
    height, width = max(1, size[0]), max(1, size[1])
    if (height, width) == image.shape[:2]:
        return image
    if mode == "matlab":
        return imresize(image, size=(height, width)).astype(np.float32)
    planes = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    by_factor = factor is not None and (height, width) == (int(image.shape[0] * factor), int(image.shape[1] * factor))
    if by_factor:  # the same output size, but the coordinates map by 1 / factor
        out = functional.interpolate(planes, scale_factor=factor, mode=mode)
    else:
        out = functional.interpolate(planes, size=(height, width), mode=mode)
    return np.ascontiguousarray(out[0].numpy().transpose(1, 2, 0))


def add_gaussian_noise(image: np.ndarray, sigma: float, grey: bool, seed: int) -> np.ndarray:
    """Add N(0, (sigma/255)^2) noise (one plane for all channels if ``grey``) and clip to [0, 1]."""
    rng = np.random.default_rng(seed)
    shape = (*image.shape[:2], 1) if grey else image.shape
    noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma / 255.0)
    return np.clip(image + noise, 0.0, 1.0)


def add_poisson_noise(image: np.ndarray, scale: float, grey: bool, seed: int) -> np.ndarray:
    """Add Poisson (shot) noise of strength ``scale`` and clip to [0, 1].

    As in Real-ESRGAN: the number of photon levels is the number of distinct 8-bit values
    rounded up to a power of two; the noise is ``(poisson(x * levels) / levels - x) * scale``,
    computed on the luma plane when ``grey``.
    """
    rng = np.random.default_rng(seed)
    source = image
    if grey and image.shape[2] == 3:  # torchvision's rgb_to_grayscale weights, as BasicSR uses
        source = (image @ np.array([0.2989, 0.587, 0.114], np.float32))[:, :, None]
    source = np.clip(np.rint(source * 255.0), 0.0, 255.0) / 255.0  # the photon counts come from 8-bit values
    levels = len(np.unique(source))
    levels = 2 ** math.ceil(math.log2(max(levels, 1)))
    noise = (rng.poisson(source * levels).astype(np.float32) / levels - source) * np.float32(scale)
    return np.clip(image + noise, 0.0, 1.0).astype(np.float32)


def jpeg(image: np.ndarray, quality: float, engine: str = "opencv") -> np.ndarray:
    """JPEG at ``quality``: a real round trip through OpenCV's codec (``opencv``: 8-bit, quality
    rounded) or Real-ESRGAN's simulation (``diffjpeg``: :func:`core.degradation._jpeg.diff_jpeg`)."""
    if engine == "diffjpeg":
        return diff_jpeg(image, quality)
    eight = from_unit(image)
    bgr = eight[:, :, 0] if eight.shape[2] == 1 else cv2.cvtColor(eight, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, round(quality)])
    if not ok:  # pragma: no cover - OpenCV only fails on invalid input
        raise RuntimeError("JPEG encoding failed")
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if decoded is None:  # pragma: no cover - OpenCV decodes what it encoded
        raise RuntimeError("JPEG decoding failed")
    rgb = decoded[:, :, None] if decoded.ndim == 2 else cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return rgb.astype(np.float32) / 255.0
