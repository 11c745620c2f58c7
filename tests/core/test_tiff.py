"""TIFF decoding against tifffile (the reference reader) and Pillow's EXIF orientation; other formats'
orientation against Pillow's."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

import core

ORIENTATION = 274


@pytest.fixture
def rgb16() -> np.ndarray:
    rng = np.random.default_rng(5)
    return rng.integers(0, 65536, size=(6, 9, 3)).astype(np.uint16)  # not square: a turn changes the shape


def _tiff(array: np.ndarray, orientation: int = 1, **options) -> bytes:
    buffer = io.BytesIO()
    tags = [(ORIENTATION, "H", 1, orientation, True)] if orientation != 1 else []
    tifffile.imwrite(buffer, array, extratags=tags, **options)
    return buffer.getvalue()


def _pillow_orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Pillow's own EXIF transpose, channel by channel (Pillow has no 16-bit RGB images)."""
    channels = []
    for c in range(array.shape[2]):
        im = Image.fromarray(array[:, :, c])
        exif = im.getexif()
        exif[ORIENTATION] = orientation
        im.info["exif"] = exif.tobytes()
        channels.append(np.asarray(ImageOps.exif_transpose(im)))
    return np.stack(channels, axis=2)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_tiff_orientation_is_applied_once(rgb16: np.ndarray, orientation: int, dtype, channels: int) -> None:
    stored = (rgb16 if dtype == np.uint16 else (rgb16 >> 8).astype(np.uint8))[:, :, :channels]
    data = _tiff(stored, orientation, photometric="rgb" if channels == 3 else "minisblack")
    raw = tifffile.imread(io.BytesIO(data))
    raw = raw[:, :, None] if raw.ndim == 2 else raw
    np.testing.assert_array_equal(raw, stored)  # the reference reads the samples as stored
    out = core.decode_image(data)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, _pillow_orient(raw, orientation), err_msg=f"orientation {orientation}")


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "PNG"])
def test_every_exif_orientation_on_jpeg_webp_and_png(rgb16: np.ndarray, orientation: int, fmt: str) -> None:
    image = Image.fromarray((rgb16 >> 8).astype(np.uint8))
    exif = image.getexif()
    exif[ORIENTATION] = orientation
    buffer = io.BytesIO()
    image.save(buffer, fmt, exif=exif, **({"lossless": True} if fmt == "WEBP" else {}))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))
    np.testing.assert_array_equal(core.decode_image(buffer.getvalue()), expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_planar_rgb_minis_white_and_compressions(rgb16: np.ndarray, dtype) -> None:
    stored = rgb16 if dtype == np.uint16 else (rgb16 >> 8).astype(np.uint8)
    top = np.iinfo(dtype).max
    planar = _tiff(np.moveaxis(stored, -1, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(core.decode_image(planar), stored)
    for compression in ("lzw", "zlib", "packbits"):
        data = _tiff(stored, photometric="rgb", compression=compression)
        np.testing.assert_array_equal(core.decode_image(data), stored, err_msg=compression)
    white = _tiff(stored[:, :, 0], photometric="miniswhite")
    np.testing.assert_array_equal(core.decode_image(white)[:, :, 0], top - stored[:, :, 0])  # 0 is white


def test_cmyk_alpha_and_palette_tiffs(rgb16: np.ndarray) -> None:
    cmyk8 = (np.random.default_rng(1).integers(0, 256, size=(6, 9, 4))).astype(np.uint8)
    data = _tiff(cmyk8, photometric="separated")
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # Pillow's CMYK conversion
    np.testing.assert_array_equal(core.decode_image(data), expected)
    with pytest.raises(core.errors.UnsupportedImageError, match="16-bit CMYK"):
        core.decode_image(_tiff(rgb16[:, :, :1].repeat(4, axis=2), photometric="separated"))
    with pytest.raises(core.errors.UnsupportedImageError, match="float"):
        core.decode_image(_tiff(rgb16.astype(np.float32), photometric="rgb"))
    rgba = np.concatenate([rgb16, np.full((6, 9, 1), 65535, np.uint16)], axis=2)
    rgba[0, 0, 3] = 0
    out = core.decode_image(_tiff(rgba, photometric="rgb", extrasamples=["unassalpha"]))
    np.testing.assert_array_equal(out, rgba)
    half = rgba.copy()
    half[:, :, 3] = 32768
    premultiplied = half.copy()
    premultiplied[:, :, :3] = np.rint(half[:, :, :3] * (32768 / 65535)).astype(np.uint16)
    out = core.decode_image(_tiff(premultiplied, photometric="rgb", extrasamples=["assocalpha"]))
    assert np.abs(out.astype(int) - half.astype(int)).max() <= 2  # divided back out (rounding of 16-bit)
    indices = np.arange(54, dtype=np.uint8).reshape(6, 9) % 4
    colormap = np.random.default_rng(2).integers(0, 256, size=(3, 256)).astype(np.uint16) * 257  # 8-bit colours
    data = _tiff(indices, photometric="palette", colormap=colormap)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(core.decode_image(data), expected)


def test_broken_and_huge_tiffs_are_typed_errors(rgb16: np.ndarray) -> None:
    data = _tiff(rgb16, photometric="rgb")
    with pytest.raises(core.errors.ImageDecodeError, match="truncated or corrupt"):
        core.decode_image(data[: len(data) // 2])
    with pytest.raises(core.errors.ImageDecodeError):
        core.decode_image(data[:6])
    huge = _tiff(np.zeros((5000, 5000), np.uint8), compression="zlib")
    assert len(huge) < 200_000
    with pytest.raises(core.errors.ImageTooLargeError, match="25.0 MP"):
        core.decode_image(huge)
