"""The JPEG simulation Real-ESRGAN trains with (BasicSR's DiffJPEG, non-differentiable mode), in numpy.

Real-ESRGAN does not call a JPEG codec: it computes JPEG's lossy steps on the image with a
continuous quality, so this is what its degraded images look like. Steps, in float32 on
0-255 values (no integer rounding of pixels anywhere):

1. pad bottom and right with black to a multiple of 16 (cropped off at the end);
2. RGB to YCbCr (JFIF, full range), chroma averaged over 2x2 pixels;
3. 8x8 blocks minus 128, 2-D DCT-II with JPEG's scaling;
4. divide each coefficient by its quantisation step, round half to even, multiply back. The
   steps are the IJG tables times ``5000 / q / 100`` below quality 50 and ``(200 - 2 q) / 100``
   from 50, neither rounded to integers nor clipped to 255 (a codec's are). As in DiffJPEG the
   tables are transposed (horizontal and vertical frequencies swapped; kept, for the same
   artefacts). Steps below 1 are raised to 1, so quality 100 does not divide by zero: this
   changes nothing up to quality 95, Real-ESRGAN's largest;
5. inverse DCT plus 128, chroma repeated 2x2, YCbCr to RGB, clipped to [0, 255].

Grey images are coded as the luma plane alone (what the RGB path gives for equal channels).
For real JPEG files (a codec, integer quality) see :func:`core.degradation._ops.jpeg`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["diff_jpeg", "quality_factor"]

# IJG / JPEG Annex K tables, rows = vertical frequency; transposed below, as DiffJPEG uses them.
_LUMA = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
], np.float32).T
_CHROMA = np.full((8, 8), 99, np.float32)
_CHROMA[:4, :4] = np.array([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]], np.float32).T

# C[u, x] = a(u) / 2 * cos((2x + 1) u pi / 16): the DCT of a block B is C B C^T, its inverse C^T F C.
_FREQ, _POS = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
_DCT = (np.where(_FREQ == 0, 1 / np.sqrt(2), 1.0) / 2 * np.cos((2 * _POS + 1) * _FREQ * np.pi / 16)).astype(np.float32)

_TO_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
_TO_RGB = np.array([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]], np.float32)


def quality_factor(quality: float) -> float:
    """The multiplier of the quantisation tables at ``quality`` (IJG's formula, continuous)."""
    if not 0 < quality <= 100:
        raise ValueError(f"JPEG quality must be in (0, 100], got {quality}.")
    return (5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality) / 100.0


def _code(plane: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Quantise a ``(H, W)`` plane (multiples of 8) block by block in the DCT domain."""
    height, width = plane.shape
    blocks = (plane - 128.0).reshape(height // 8, 8, width // 8, 8).transpose(0, 2, 1, 3)
    coefficients = _DCT @ blocks @ _DCT.T
    restored = _DCT.T @ (np.round(coefficients / table) * table) @ _DCT
    return restored.transpose(0, 2, 1, 3).reshape(height, width) + 128.0


def diff_jpeg(image: np.ndarray, quality: float) -> np.ndarray:
    """Real-ESRGAN's JPEG simulation of float32 HWC (grey or RGB) in ``[0, 1]``; same shape out.

    ``quality`` is continuous in ``(0, 100]`` (Real-ESRGAN draws it from U(30, 95)).
    """
    factor = quality_factor(quality)
    luma_table, chroma_table = np.maximum(_LUMA * factor, 1.0), np.maximum(_CHROMA * factor, 1.0)
    height, width, channels = image.shape
    padded = np.zeros((-(-height // 16) * 16, -(-width // 16) * 16, channels), np.float32)
    padded[:height, :width] = np.clip(image, 0.0, 1.0) * 255.0
    if channels == 1:
        out = _code(padded[:, :, 0], luma_table)[:, :, None]
    else:
        ycbcr = padded @ _TO_YCBCR.T + np.array([0.0, 128.0, 128.0], np.float32)
        luma = _code(ycbcr[:, :, 0], luma_table)
        chroma = []
        for index in (1, 2):
            plane = ycbcr[:, :, index]
            small = plane.reshape(plane.shape[0] // 2, 2, plane.shape[1] // 2, 2).mean(axis=(1, 3))
            chroma.append(np.repeat(np.repeat(_code(small, chroma_table), 2, axis=0), 2, axis=1))
        decoded = np.stack([luma, *chroma], axis=2) - np.array([0.0, 128.0, 128.0], np.float32)
        out = decoded @ _TO_RGB.T
    return (np.clip(out, 0.0, 255.0) / 255.0)[:height, :width].astype(np.float32)
