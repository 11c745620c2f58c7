"""Image input and output, and the one image convention of the project.

Image convention (every module follows it):

* At the edges (decode, encode, dashboard, API, CLI) an image is a numpy array of
  dtype ``uint8`` or ``uint16``, shape ``(H, W, C)`` with ``C`` in ``{1, 3, 4}``:
  grey, RGB or RGBA, channels in RGB order. Grey stays grey and 16-bit stays 16-bit.
* Inside inference images are ``torch.float32`` (or the model's half dtype)
  tensors of shape ``(1, C, H, W)``, RGB, values in ``[0, 1]``.
* BGR exists only inside OpenCV calls (this module converts at the boundary).
* Metric maths is done in ``float64``.

Decoding applies EXIF (or TIFF) orientation once, converts palette / CMYK / LA / YCbCr
images to RGB(A), turns colour-key transparency into alpha, keeps alpha and 16 bits per
channel, reads TIFFs with tifffile (``core/_tiff.py``), keeps the ICC profile for the
output (:func:`decode_with_profile`, ``encode_png(..., icc_profile=)``), and enforces
:class:`ImageLimits` before the pixels are decompressed (decompression-bomb protection).
"""

from __future__ import annotations

import io
import math
import re
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import simplejpeg
from PIL import Image, ImageOps, UnidentifiedImageError

from ._files import write_file
from ._tiff import decode_tiff, is_tiff
from .errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageError

__all__ = [
    "DecodedImage",
    "ImageLimits",
    "decode_image",
    "decode_with_profile",
    "read_with_profile",
    "encode_png",
    "image_info",
    "from_unit",
    "to_display",
    "to_unit",
    "read_image",
    "write_png",
]

@dataclass(frozen=True)
class ImageLimits:
    """Size limits applied to every decoded image and every requested output.

    Attributes:
        max_file_bytes: largest accepted encoded file.
        max_input_pixels: largest accepted ``H * W`` of an input image.
        max_output_pixels: largest ``H * W`` an upscale may produce.
    """

    max_file_bytes: int = 200 * 1024 * 1024
    max_input_pixels: int = 4096 * 4096
    max_output_pixels: int = 8192 * 8192

    def check_input(self, width: int, height: int) -> None:
        """Raise :class:`ImageTooLargeError` if a ``width x height`` input is too large."""
        if width <= 0 or height <= 0:
            raise ImageDecodeError(f"The image has an empty size ({width}x{height}).")
        if width * height > self.max_input_pixels:
            raise ImageTooLargeError(
                f"The image is {width}x{height} = {width * height / 1e6:.1f} MP; the limit is "
                f"{self.max_input_pixels / 1e6:.1f} MP. Crop or downscale it first, "
                "or raise the input limit."
            )

    def check_output(self, width: int, height: int, *, source: tuple[int, int] | None = None,
                     network: int | None = None) -> None:
        """Raise :class:`ImageTooLargeError` if a ``width x height`` output is too large.

        ``source``: the input's ``(width, height)``, so the message can say which output scale fits;
        ``network``: where the model's own output (at its scale ``network``) is what is too large, whatever
        output scale was chosen, so the message does not advise a smaller one.
        """
        if width * height <= self.max_output_pixels:
            return
        what = (f"The model's own output (x{network}, made before any smaller output scale) would be" if network
                else "The result would be")
        text = (f"{what} {width}x{height} = {_megapixels(width * height)}; the limit is "
                f"{_megapixels(self.max_output_pixels)}.")
        if network:
            fits = math.floor(100 * math.sqrt(self.max_output_pixels / (width * height)))  # per cent of each side
            raise ImageTooLargeError(f"{text} Crop the image, or downscale it to at most {fits} % of its width and "
                                     "height, or raise the output limit.")
        if source is not None:
            largest = math.floor(100 * math.sqrt(self.max_output_pixels / (source[0] * source[1]))) / 100
            if largest >= 0.01:
                raise ImageTooLargeError(f"{text} For this {source[0]}x{source[1]} image an output scale of at most "
                                         f"{largest:g} fits; choose that, crop the image, or raise the output limit.")
        raise ImageTooLargeError(f"{text} Choose a smaller output scale, a region of interest, or raise the output "
                                 "limit.")

    def check_upscale(self, width: int, height: int, output: tuple[int, int]) -> None:
        """Both checks of one upscale: a ``width x height`` input to ``output = (height, width)``."""
        self.check_input(width, height)
        self.check_output(output[1], output[0], source=(width, height))


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP" if pixels >= 100_000 else f"{pixels} pixels"


IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
_EXIF_ORIENTATION = 0x0112


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation value (1..8) to an ``(H, W, C)`` array."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: np.rot90(a, k=1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(array)) if op else array


def _is_high_bit_depth(im: Image.Image, data: bytes) -> bool:
    if im.mode.startswith("I;16") or im.mode == "I":
        return True
    if im.format == "PNG" and len(data) > 24 and data[12:16] == b"IHDR":
        return data[24] == 16
    return False


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# High-bit-depth decodes go through OpenCV, which sizes buffers from the file's headers: at most
# this many run at once, whatever the number of requests or threads.
_DECODE_SLOTS = threading.BoundedSemaphore(2)


def _png_chunks(data: bytes) -> dict[bytes, bytes]:
    """The PNG's chunks by type (the first of each), checked to fit inside the file before a decoder sees
    them: OpenCV allocates a chunk's declared length up front (a 90-byte file declaring a 4 GB IDAT costs 4 GB)."""
    chunks: dict[bytes, bytes] = {}
    position = len(_PNG_SIGNATURE)
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        end = position + 12 + length  # length, type, data, CRC
        if length > 2**31 - 1 or end > len(data):
            raise ImageDecodeError(
                f"The PNG is truncated or corrupt: its {kind.decode('latin-1')!r} chunk declares {length} bytes, "
                f"but only {max(len(data) - position - 12, 0)} follow.")
        if kind == b"IEND":
            return chunks
        if kind in (b"IHDR", b"tRNS"):
            chunks.setdefault(kind, data[position + 8 : end - 4])
        position = end
    raise ImageDecodeError("The PNG is truncated: it ends before its IEND chunk.")


def _grey_key_alpha(array: np.ndarray, chunks: dict[bytes, bytes]) -> np.ndarray:
    """A 16-bit grey PNG whose tRNS chunk names a transparent grey value: RGBA (OpenCV drops the key)."""
    ihdr, trns = chunks.get(b"IHDR", b""), chunks.get(b"tRNS")
    if trns is None or len(ihdr) < 10 or ihdr[9] != 0 or len(trns) < 2 or array.shape[2] != 1:
        return array
    key = int.from_bytes(trns[:2], "big")
    alpha = np.where(array == key, 0, np.iinfo(array.dtype).max).astype(array.dtype)
    return np.concatenate([np.repeat(array, 3, axis=2), alpha], axis=2)


def _decode_high_bit_depth(data: bytes) -> np.ndarray:
    """A 16-bit PNG (the only high-bit format left to OpenCV: TIFFs go to tifffile)."""
    chunks = _png_chunks(data)
    with _DECODE_SLOTS:
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ImageDecodeError("The 16-bit image could not be decoded (truncated or corrupt).")
    if array.dtype not in (np.uint8, np.uint16):
        raise UnsupportedImageError(
            f"Images with {array.dtype} samples are not supported; use 8- or 16-bit PNG or TIFF."
        )
    if array.ndim == 2:
        array = array[:, :, None]
    elif array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    elif array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA)
    else:
        raise UnsupportedImageError(f"Images with {array.shape[2]} channels are not supported.")
    return _grey_key_alpha(array, chunks)


def _pil_to_array(im: Image.Image) -> np.ndarray:
    mode = im.mode
    keyed = "transparency" in im.info  # a palette entry or a colour key (tRNS) that is transparent
    if mode == "P" or (keyed and mode in ("1", "L", "RGB")):
        im = im.convert("RGBA" if keyed else "RGB")
    elif mode in ("1", "L"):
        im = im.convert("L")
    elif mode in ("LA", "La", "PA", "RGBa", "RGBA"):
        im = im.convert("RGBA")
    elif mode in ("RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    else:
        raise UnsupportedImageError(f"Images in Pillow mode {mode!r} are not supported.")
    array = np.asarray(im)
    if array.ndim == 2:
        array = array[:, :, None]
    return np.ascontiguousarray(array)


_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # after a scan: a marker, not stuffing or a restart


def _jpeg_ends(data: bytes) -> bool:
    """Whether the JPEG's segments and scans reach its end-of-image marker; whatever follows it (a
    motion photo's video, padding) is not read. Structure this walk does not expect is left to the decoder."""
    position, size = 2, len(data)
    while position + 2 <= size:
        if data[position] != 0xFF:
            return True  # not a marker where one belongs: the decoder judges the file
        marker = data[position + 1]
        if marker == 0xD9:
            return True
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # restart markers and TEM carry no length
            position += 2
            continue
        if position + 4 > size:
            return False
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next real marker
            found = _NEXT_MARKER.search(data, position)
            if found is None:
                return False
            position = found.start()
    return False


def _check_jpeg_complete(data: bytes) -> None:
    """A JPEG cut short: libjpeg fills the rest with grey and only warns (a 600-byte file declaring
    4096x4096 would decode to 16 MP of grey), so it is refused here. A cut file with an end marker put
    back reaches its end, so its scan is decoded once more by libjpeg-turbo (simplejpeg, strict), which
    says when the scan's data ran out; its other warnings (extra bytes between markers, which cameras
    write) are left to Pillow."""
    if not _jpeg_ends(data):
        raise ImageDecodeError(f"The JPEG is truncated: its data ends after {len(data)} bytes, before the end of "
                               "the image (an interrupted download or copy?).")
    try:
        simplejpeg.decode_jpeg(data, colorspace="GRAY", fastdct=True, strict=True)
    except ValueError as exc:
        if "premature end" in str(exc).lower():
            raise ImageDecodeError("The JPEG is incomplete: its image data stops before the last row (the rest "
                                   "would be grey); was it cut short in a download or copy?") from exc


@dataclass(frozen=True)
class DecodedImage:
    """A decoded image (edge convention, oriented) and the ICC colour profile its file carried, if any:
    give the profile to :func:`encode_png` so that the output shows the same colours."""

    pixels: np.ndarray
    icc_profile: bytes | None = None


def decode_image(data: bytes, limits: ImageLimits | None = None) -> np.ndarray:
    """Decode encoded image bytes into the edge convention (``uint8``/``uint16`` HWC RGB(A)).

    Args:
        data: the encoded file (PNG, JPEG, WebP, BMP, TIFF, GIF, ...).
        limits: size limits; defaults to :class:`ImageLimits()`.

    Returns:
        ``(H, W, C)`` array, ``C`` in ``{1, 3, 4}``, EXIF / TIFF orientation applied once;
        colour-key transparency (PNG tRNS) becomes alpha.

    Raises:
        ImageDecodeError: empty, truncated or not an image.
        ImageTooLargeError: file or pixel count over the limits (checked before decoding).
        UnsupportedImageError: a mode we cannot represent (e.g. 32-bit float, 16-bit CMYK).
    """
    return decode_with_profile(data, limits).pixels


def decode_with_profile(data: bytes, limits: ImageLimits | None = None) -> DecodedImage:
    """:func:`decode_image`, and the file's ICC profile."""
    limits = limits or ImageLimits()
    if not data:
        raise ImageDecodeError("The file is empty.")
    if len(data) > limits.max_file_bytes:
        raise ImageTooLargeError(
            f"The file is {len(data) / 1e6:.1f} MB; the limit is {limits.max_file_bytes / 1e6:.0f} MB."
        )
    if is_tiff(data):
        tiff = decode_tiff(data, limits.check_input)  # the size is checked from the header, before any strip
        return DecodedImage(_orient(tiff.pixels, tiff.orientation), tiff.icc_profile)
    try:
        # Our own limit is checked from the header, before any pixel is decoded; Pillow's
        # global bomb check (about 179 MP) stays in place as a backstop.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im: Image.Image = Image.open(io.BytesIO(data))
            limits.check_input(*im.size)
            icc = im.info.get("icc_profile") or None
            if _is_high_bit_depth(im, data):
                if im.mode == "F":
                    raise UnsupportedImageError("32-bit float images are not supported.")
                orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
                return DecodedImage(_orient(_decode_high_bit_depth(data), orientation), icc)
            if im.format == "JPEG":
                _check_jpeg_complete(data)
            im.load()
            im = ImageOps.exif_transpose(im)
            return DecodedImage(_pil_to_array(im), icc)
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(
            "The file is not an image we can read (supported: PNG, JPEG, WebP, BMP, TIFF, GIF)."
        ) from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            "The image declares an enormous size and was refused before decoding "
            "(possible decompression bomb)."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"The image is truncated or corrupt: {exc}") from exc


def read_image(path: str | Path, limits: ImageLimits | None = None) -> np.ndarray:
    """Read and decode an image file; see :func:`decode_image`."""
    return read_with_profile(path, limits).pixels


def read_with_profile(path: str | Path, limits: ImageLimits | None = None) -> DecodedImage:
    """Read and decode an image file, and its ICC profile; see :func:`decode_with_profile`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"Cannot read {Path(path).name}: {exc.strerror}.") from exc
    return decode_with_profile(data, limits)


def encode_png(image: np.ndarray, compression: int = 3, *, icc_profile: bytes | None = None) -> bytes:
    """Encode an edge-convention image as PNG, lossless, keeping bit depth and alpha.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` ``uint8``/``uint16``, ``C`` in ``{1, 3, 4}``.
        compression: zlib level 0-9 (3 is a good speed/size balance).
        icc_profile: the input's ICC profile (:class:`DecodedImage`), stored in an ``iCCP`` chunk, so
            that a Display P3 or Adobe RGB photo keeps its colours.
    """
    if image.dtype not in (np.uint8, np.uint16):
        raise UnsupportedImageError(f"Cannot encode {image.dtype} as PNG; use uint8 or uint16.")
    array = image if image.ndim == 3 else image[:, :, None]
    channels = array.shape[2]
    if channels == 4 and _is_grey(array):  # grey with alpha (LA, grey + tRNS): kept grey, as grey is
        png = _grey_alpha_png(array, compression)
        return _with_icc(png, icc_profile) if icc_profile else png
    if channels == 1:
        bgr = array[:, :, 0]
    elif channels == 3:
        bgr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif channels == 4:
        bgr = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    else:
        raise UnsupportedImageError(f"Cannot encode an image with {channels} channels as PNG.")
    ok, buffer = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:  # pragma: no cover - OpenCV fails only on invalid input, checked above
        raise UnsupportedImageError("OpenCV could not encode the image as PNG.")
    png = buffer.tobytes()
    return _with_icc(png, icc_profile) if icc_profile else png


def _is_grey(array: np.ndarray) -> bool:
    """Whether an RGBA image's colour is grey: R, G and B equal at every pixel."""
    return bool(np.array_equal(array[:, :, 0], array[:, :, 1]) and np.array_equal(array[:, :, 1], array[:, :, 2]))


def _grey_alpha_png(array: np.ndarray, compression: int) -> bytes:
    """RGBA whose colour is grey as a PNG of colour type 4 (grey + alpha), 8 or 16 bits: OpenCV writes no
    two-channel PNG. Rows are unfiltered (filter 0); the pixels are exact, the file a little larger."""
    height, width = array.shape[:2]
    depth = 16 if array.dtype == np.uint16 else 8
    pairs = np.ascontiguousarray(array[:, :, [0, 3]]).astype(">u2" if depth == 16 else np.uint8)
    rows = np.concatenate([np.zeros((height, 1), np.uint8), pairs.reshape(height, -1).view(np.uint8)], axis=1)
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([depth, 4, 0, 0, 0])
    return (_PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(),
            compression)) + _png_chunk(b"IEND", b""))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")


def _with_icc(png: bytes, profile: bytes) -> bytes:
    """``png`` with an ``iCCP`` chunk right after ``IHDR`` (before any image data, as the PNG spec asks)."""
    after_ihdr = len(_PNG_SIGNATURE) + 8 + int.from_bytes(png[8:12], "big") + 4
    return png[:after_ihdr] + _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(profile)) + png[after_ihdr:]


def write_png(path: str | Path, image: np.ndarray, *, icc_profile: bytes | None = None) -> Path:
    """Write ``image`` as PNG atomically (see :func:`core._files.write_file`); return the path."""
    return write_file(path, encode_png(image, icc_profile=icc_profile))


def image_info(image: np.ndarray) -> str:
    """Human description such as ``"640x480 RGBA 16-bit"``."""
    height, width = image.shape[:2]
    channels = image.shape[2] if image.ndim == 3 else 1
    mode = {1: "grey", 3: "RGB", 4: "RGBA"}.get(channels, f"{channels}-channel")
    bits = 16 if image.dtype == np.uint16 else 8
    return f"{width}x{height} {mode} {bits}-bit"


def to_unit(image: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """An edge image (``uint8`` / ``uint16``, HW or HWC) as floats in ``[0, 1]``, always HWC.

    Raises:
        ValueError: another dtype (the convention has no other integer images).
    """
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"Expected a uint8 or uint16 image, got {image.dtype}.")
    array = image if image.ndim == 3 else image[:, :, None]
    return array.astype(dtype) / dtype(np.iinfo(image.dtype).max)


def from_unit(array: np.ndarray, dtype: type = np.uint8) -> np.ndarray:
    """Floats in ``[0, 1]`` as an edge image of ``dtype``: clipped, scaled and rounded half to even."""
    top = np.iinfo(dtype).max
    return np.rint(np.clip(array, 0.0, 1.0) * top).astype(dtype)


def to_display(image: np.ndarray) -> np.ndarray:
    """An 8-bit view for screens: ``uint16`` scaled to ``uint8``, grey as ``(H, W)``."""
    array = image
    if array.dtype == np.uint16:
        array = np.rint(array / 257.0).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return array
