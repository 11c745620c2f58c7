"""Classical resizing: the bicubic baseline and the MATLAB-compatible ``imresize``.

``imresize`` reproduces MATLAB's ``imresize`` (bicubic, a = -0.5, antialiasing when
downscaling), which made DIV2K's LR images and the bicubic PSNRs papers report. It
uses the PyPI package ``bicubic-pytorch``; OpenCV's bicubic has no antialiasing and
uses a = -0.75, so it is a different (faster) baseline, also offered here.

All functions take and return edge-convention arrays (``uint8`` / ``uint16`` HWC, or
float arrays in ``[0, 1]``); integer outputs are rounded and clipped.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
import torch
from bicubic_pytorch import imresize as _bicubic_imresize

__all__ = ["RESIZE_METHODS", "ResizeMethod", "crop_to_scale", "imresize", "resize", "target_size"]

ResizeMethod = Literal["bicubic", "lanczos", "area", "bilinear", "nearest", "matlab"]
RESIZE_METHODS: tuple[str, ...] = ("matlab", "bicubic", "lanczos", "area", "bilinear", "nearest")

_CV2 = {
    "bicubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
    "area": cv2.INTER_AREA,
    "bilinear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
}


def crop_to_scale(image: np.ndarray, scale: int) -> np.ndarray:
    """``image`` cut at the bottom and right to a multiple of ``scale`` (a view): an HR image whose
    LR is exactly ``HR / scale``, as the SR literature and BasicSR crop it."""
    height, width = image.shape[:2]
    return image[: height - height % scale, : width - width % scale]


def target_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Output ``(height, width)`` for ``scale``: rounded, at least 1 pixel."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def _restore(result: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        top = np.iinfo(dtype).max
        return np.clip(np.rint(result), 0, top).astype(dtype)
    return result.astype(dtype, copy=False)


def imresize(
    image: np.ndarray,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    *,
    antialiasing: bool = True,
) -> np.ndarray:
    """MATLAB-compatible bicubic ``imresize`` (antialiased on downscale).

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array, integer or float.
        scale: factor (MATLAB's output size ``ceil(H * scale)``), or
        size: exact ``(height, width)``.

    Returns:
        The resized array, same dtype and dimensionality (integers rounded, clipped).
    """
    if (scale is None) == (size is None):
        raise ValueError("Give exactly one of scale or size.")
    squeeze = image.ndim == 2
    array = image[:, :, None] if squeeze else image
    tensor = torch.from_numpy(np.array(array.transpose(2, 0, 1), dtype=np.float64))
    out = _bicubic_imresize(tensor, scale=scale, sizes=size, antialiasing=antialiasing)
    result = out.numpy().transpose(1, 2, 0)
    return _restore(result[:, :, 0] if squeeze else result, image.dtype)


def resize(image: np.ndarray, size: tuple[int, int], method: str = "bicubic") -> np.ndarray:
    """Resize ``image`` to ``size = (height, width)`` with ``method`` (see :data:`RESIZE_METHODS`).

    Works on ``uint8`` / ``uint16`` / ``float32`` HWC arrays with any channel count.
    """
    if method == "matlab":
        return imresize(image, size=size)
    if method not in _CV2:
        raise ValueError(f"Unknown resize method {method!r}; use one of {', '.join(RESIZE_METHODS)}.")
    height, width = size
    array = image.astype(np.float32) if image.dtype not in (np.uint8, np.uint16, np.float32) else image
    channels = array.shape[2] if array.ndim == 3 else 0
    if channels > 4:  # OpenCV resizes at most 4 channels at once
        parts = [resize(array[:, :, i : i + 4], size, method) for i in range(0, channels, 4)]
        return np.concatenate(parts, axis=2)
    out = cv2.resize(array, (width, height), interpolation=_CV2[method])
    if array.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    if image.dtype == np.float32 and method in ("bicubic", "lanczos"):
        out = np.clip(out, 0.0, 1.0)
    return out.astype(image.dtype, copy=False) if image.dtype != array.dtype else out
