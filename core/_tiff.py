"""TIFF decoding with tifffile (and imagecodecs for its compressions), into the edge convention.

Pillow and OpenCV each get some TIFFs wrong: OpenCV applies the Orientation tag itself, planar
(separate) RGB and 16-bit MinIsWhite come out wrong, 16-bit CMYK fails as 'corrupt'. tifffile
reads the samples as they are stored; this module interprets them: sample layout to ``(H, W, C)``,
MinIsWhite inverted, palette applied, associated alpha un-premultiplied, bit depths below 8 / 16
stretched to the full range, and the Orientation tag applied once. Only the first image of a
multi-image file is read.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
import tifffile

from .errors import ImageDecodeError, UnsupportedImageError

__all__ = ["TIFF_SIGNATURES", "TiffImage", "decode_tiff", "is_tiff"]

TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
_ORIENTATION = 274
_PH = tifffile.PHOTOMETRIC
_ASSOCIATED_ALPHA = 1


def is_tiff(data: bytes) -> bool:
    return data[:4] in TIFF_SIGNATURES


@dataclass(frozen=True)
class TiffImage:
    """The first image of a TIFF: pixels (edge convention, as stored), its Orientation tag (1-8) and its
    ICC profile, if any."""

    pixels: np.ndarray
    orientation: int
    icc_profile: bytes | None


def _open(data: bytes) -> tifffile.TiffFile:
    try:
        return tifffile.TiffFile(io.BytesIO(data))
    except Exception as exc:  # a parser of untrusted bytes: struct.error, KeyError, ... all mean 'corrupt'  # noqa: BLE001
        raise ImageDecodeError(f"The TIFF is truncated or corrupt: {exc}") from exc


def decode_tiff(data: bytes, check_size: Callable[[int, int], None]) -> TiffImage:
    """Decode the first image of a TIFF file; ``check_size(width, height)`` is called from its header,
    before any strip is decompressed (it raises to refuse the image).

    Raises:
        ImageDecodeError: truncated or corrupt.
        UnsupportedImageError: float or 32-bit samples, CMYK above 8 bits, colour spaces other
            than grey, RGB, palette, YCbCr (JPEG) and 8-bit CMYK.
    """
    with _open(data) as tif:
        page = cast(tifffile.TiffPage, tif.pages[0])  # the first page is a page, never a frame
        check_size(int(page.imagewidth), int(page.imagelength))
        photometric = _PH(page.photometric)
        bits = int(page.bitspersample)
        if page.dtype is None or page.dtype.kind == "f" or page.dtype.itemsize > 2:
            raise UnsupportedImageError(f"TIFFs with {page.dtype} samples are not supported; use 8- or 16-bit.")
        if photometric == _PH.SEPARATED and bits > 8:
            raise UnsupportedImageError(f"{bits}-bit CMYK TIFFs are not supported; convert the image to RGB first.")
        if photometric == _PH.YCBCR and page.compression != tifffile.COMPRESSION.JPEG:
            raise UnsupportedImageError("YCbCr TIFFs are supported with JPEG compression only; save the image as RGB.")
        if photometric not in (_PH.MINISBLACK, _PH.MINISWHITE, _PH.RGB, _PH.PALETTE, _PH.YCBCR, _PH.SEPARATED):
            raise UnsupportedImageError(f"TIFFs in the {photometric.name} colour space are not supported.")
        try:
            array = page.asarray()
        except Exception as exc:  # truncated strips, bad codec data (imagecodecs' own errors)  # noqa: BLE001
            raise ImageDecodeError(f"The TIFF is truncated or corrupt: {exc}") from exc
        array = _to_hwc(array, page.axes)
        tag = page.tags.get(_ORIENTATION)
        orientation = int(tag.value) if tag is not None else 1
        colormap = page.colormap
        extra = tuple(page.extrasamples or ())
        icc = page.iccprofile
    return TiffImage(_interpret(array, photometric, bits, colormap, extra), orientation, bytes(icc) if icc else None)


def _to_hwc(array: np.ndarray, axes: str) -> np.ndarray:
    """tifffile's axes (``YX``, ``YXS``, ``SYX``) as ``(H, W, C)``."""
    if axes == "YX":
        return array[:, :, None]
    if axes == "YXS":
        return array
    if axes == "SYX":
        return np.moveaxis(array, 0, -1)
    raise UnsupportedImageError(f"TIFFs with axes {axes!r} (several images in one page) are not supported.")


def _interpret(array: np.ndarray, photometric: tifffile.PHOTOMETRIC, bits: int, colormap: np.ndarray | None,
               extra: tuple) -> np.ndarray:
    if array.dtype == np.bool_:  # bilevel
        array = array.astype(np.uint8) * 255
        bits = 8
    top = np.iinfo(array.dtype).max
    if photometric == _PH.PALETTE:
        if colormap is None:
            raise ImageDecodeError("The palette TIFF has no colour map.")
        rgb = colormap[:, array[:, :, 0]].transpose(1, 2, 0)  # colour maps hold 16-bit values
        return rgb.astype(np.uint16) if bits > 8 else np.rint(rgb / 257.0).astype(np.uint8)
    if 1 < bits < 8 * array.dtype.itemsize:  # 2-, 4-, 10-, 12-bit samples: stretched to the full range
        array = np.rint(array.astype(np.float64) * (top / (2**bits - 1))).astype(array.dtype)
    if photometric == _PH.MINISWHITE:
        array = top - array
    if photometric == _PH.SEPARATED:
        return _cmyk_to_rgb(array)
    colour = 1 if photometric in (_PH.MINISBLACK, _PH.MINISWHITE) else 3
    channels = array.shape[2]
    if channels < colour:
        raise ImageDecodeError(f"The TIFF declares {colour} colour samples but stores {channels}.")
    if channels == colour:
        return array
    alpha = array[:, :, colour : colour + 1]
    if extra and int(extra[0]) == _ASSOCIATED_ALPHA:  # premultiplied: divided back out
        safe = np.maximum(alpha.astype(np.float64), 1.0)
        colours = np.clip(np.rint(array[:, :, :colour] * (top / safe)), 0, top)
        colours[np.broadcast_to(alpha == 0, colours.shape)] = 0
        array = np.concatenate([colours.astype(array.dtype), alpha], axis=2)
    if colour == 1:  # grey + alpha: RGBA, as the convention has no two-channel images
        return np.concatenate([np.repeat(array[:, :, :1], 3, axis=2), alpha], axis=2)
    return array[:, :, :4]


def _cmyk_to_rgb(array: np.ndarray) -> np.ndarray:
    """8-bit CMYK as RGB as Pillow converts it (no colour management): ``R = (255 - K) - C (255 - K) / 255``,
    the product rounded as Pillow rounds it."""
    cmy, inverse_k = array[:, :, :3].astype(np.int32), 255 - array[:, :, 3:4].astype(np.int32)
    product = cmy * inverse_k + 128
    return np.clip(inverse_k - (((product >> 8) + product) >> 8), 0, 255).astype(np.uint8)
