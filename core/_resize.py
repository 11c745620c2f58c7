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
    if min(array.shape[:2]) == 0:
        raise ValueError(f"Cannot resize an empty image ({array.shape[1]}x{array.shape[0]}).")
    tensor = torch.from_numpy(np.array(array.transpose(2, 0, 1), dtype=np.float64))
    try:
        result = _bicubic_imresize(tensor, scale=scale, sizes=size, antialiasing=antialiasing).numpy()
        result = result.transpose(1, 2, 0)
    except IndexError:  # bicubic-pytorch pads past a side shorter than its kernel (1 or 2 px, 3 at x1/4)
        result = _small_imresize(np.asarray(array, np.float64), scale, size, antialiasing)
    return _restore(result[:, :, 0] if squeeze else result, image.dtype)


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return ((1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1)
            + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _matlab_weights(length: int, out_length: int, scale: float, antialiasing: bool) -> np.ndarray:
    """MATLAB ``imresize``'s ``contributions`` along one axis as an ``(out_length, length)`` matrix: the
    bicubic kernel (widened by ``1 / scale`` when antialiasing a downscale), rows normalised, and indices
    past either end mirrored (MATLAB's ``aux = [1:n, n:-1:1]``), which holds for a side of 1 px too."""
    wide = scale < 1 and antialiasing
    width = 4.0 / scale if wide else 4.0
    u = np.arange(1, out_length + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    indices = left[:, None] + np.arange(int(np.ceil(width)) + 2)[None, :]
    weights = scale * _cubic(scale * (u[:, None] - indices)) if wide else _cubic(u[:, None] - indices)
    weights /= weights.sum(axis=1, keepdims=True)
    aux = np.concatenate([np.arange(length), np.arange(length)[::-1]])
    columns = aux[np.mod(indices.astype(np.int64) - 1, 2 * length)]
    matrix = np.zeros((out_length, length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), indices.shape[1]), columns.ravel()), weights.ravel())
    return matrix


def _small_imresize(array: np.ndarray, scale: float | None, size: tuple[int, int] | None,
                    antialiasing: bool) -> np.ndarray:
    """:func:`imresize` as matrices, for sides shorter than the kernel (HWC float64 in and out)."""
    height, width = array.shape[:2]
    if size is None:
        assert scale is not None
        size = (int(np.ceil(height * scale)), int(np.ceil(width * scale)))
        scales = (scale, scale)
    else:
        scales = (size[0] / height, size[1] / width)
    rows = _matlab_weights(height, size[0], scales[0], antialiasing)
    cols = _matlab_weights(width, size[1], scales[1], antialiasing)
    return np.einsum("oh,hwc,pw->opc", rows, array, cols)


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
