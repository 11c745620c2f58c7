"""Decoding and encoding at the edges: formats, modes, bit depth, orientation, limits, errors."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

import core


def _pil_bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return core.load_sample("chelsea")[:40, :60]


FORMATS = [("PNG", True), ("BMP", True), ("TIFF", True), ("WEBP", False), ("JPEG", False)]


@pytest.mark.parametrize(("fmt", "lossless"), FORMATS)
def test_common_formats_decode_to_rgb(rgb: np.ndarray, fmt: str, lossless: bool) -> None:
    data = _pil_bytes(Image.fromarray(rgb), fmt, **({"quality": 95} if not lossless else {}))
    out = core.decode_image(data)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    if lossless:
        np.testing.assert_array_equal(out, rgb)
    else:
        assert np.abs(out.astype(int) - rgb).mean() < 6


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("ext", [".png", ".tiff"])
def test_sixteen_bit_is_kept(channels: int, ext: str) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 65536, size=(12, 10, channels), dtype=np.uint16)
    code = cv2.COLOR_RGB2BGR if channels == 3 else cv2.COLOR_RGBA2BGRA
    bgr = image[:, :, 0] if channels == 1 else cv2.cvtColor(image, code)
    ok, data = cv2.imencode(ext, bgr)
    assert ok
    out = core.decode_image(data.tobytes())
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_round_trip_keeps_depth_and_alpha(channels: int, dtype) -> None:
    rng = np.random.default_rng(2)
    image = rng.integers(0, np.iinfo(dtype).max + 1, size=(9, 7, channels)).astype(dtype)
    np.testing.assert_array_equal(core.decode_image(core.encode_png(image)), image)


def test_palette_la_cmyk_and_bilevel_are_converted(rgb: np.ndarray) -> None:
    palette = Image.fromarray(rgb).quantize(16)
    out = core.decode_image(_pil_bytes(palette, "PNG"))
    assert out.shape == (40, 60, 3)
    palette.info["transparency"] = 0
    assert core.decode_image(_pil_bytes(palette, "PNG", transparency=0)).shape == (40, 60, 4)
    la = Image.fromarray(rgb).convert("LA")
    out = core.decode_image(_pil_bytes(la, "PNG"))
    assert out.shape == (40, 60, 4) and (out[:, :, 0] == out[:, :, 1]).all()
    cmyk = Image.fromarray(rgb).convert("CMYK")
    out = core.decode_image(_pil_bytes(cmyk, "JPEG", quality=95))
    assert out.shape == (40, 60, 3) and np.abs(out.astype(int) - rgb).mean() < 8
    grey = core.decode_image(_pil_bytes(Image.fromarray(rgb).convert("1"), "PNG"))
    assert grey.shape == (40, 60, 1) and set(np.unique(grey)) <= {0, 255}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(rgb: np.ndarray, orientation: int) -> None:
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = orientation
    data = _pil_bytes(im, "PNG", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    out = core.decode_image(data)
    np.testing.assert_array_equal(out, expected)
    if orientation in (5, 6, 7, 8):
        assert out.shape[:2] == (60, 40)


def test_exif_orientation_on_sixteen_bit_images(rgb: np.ndarray) -> None:
    """The 16-bit path (OpenCV) must orient exactly like the 8-bit path (Pillow)."""
    for orientation in range(1, 9):
        grey16 = (rgb[:, :, 0].astype(np.uint16) * 257)
        im16 = Image.fromarray(grey16)
        exif = im16.getexif()
        exif[0x0112] = orientation
        out16 = core.decode_image(_pil_bytes(im16, "PNG", exif=exif))
        im8 = Image.fromarray(rgb[:, :, 0])
        exif8 = im8.getexif()
        exif8[0x0112] = orientation
        out8 = core.decode_image(_pil_bytes(im8, "PNG", exif=exif8))
        assert out16.dtype == np.uint16
        np.testing.assert_array_equal(out16 // 257, out8, err_msg=f"orientation {orientation}")


def test_errors_are_typed_and_readable(rgb: np.ndarray) -> None:
    with pytest.raises(core.errors.ImageDecodeError, match="empty"):
        core.decode_image(b"")
    with pytest.raises(core.errors.ImageDecodeError, match="not an image"):
        core.decode_image(b"hello, this is text")
    png = _pil_bytes(Image.fromarray(rgb), "PNG")
    with pytest.raises(core.errors.ImageDecodeError, match="truncated"):
        core.decode_image(png[: len(png) // 2])
    with pytest.raises(core.errors.ImageTooLargeError, match="limit"):
        core.decode_image(png, core.ImageLimits(max_input_pixels=1000))
    with pytest.raises(core.errors.ImageTooLargeError, match="MB"):
        core.decode_image(png, core.ImageLimits(max_file_bytes=100))
    with pytest.raises(core.errors.ImageDecodeError, match="Cannot read"):
        core.read_image("/nonexistent/file.png")
    with pytest.raises(core.errors.UnsupportedImageError):
        core.encode_png(np.zeros((4, 4, 3), np.float32))


def test_decompression_bomb_is_refused_before_decoding() -> None:
    """Tiny files that claim a huge size are refused from their header."""
    data = _pil_bytes(Image.new("L", (5000, 5000)), "PNG", optimize=True)
    assert len(data) < 100_000
    with pytest.raises(core.errors.ImageTooLargeError, match="25.0 MP; the limit is 16.8 MP"):
        core.decode_image(data)
    data = _pil_bytes(Image.new("1", (20000, 20000)), "PNG", optimize=True)
    with pytest.raises(core.errors.ImageTooLargeError, match="decompression bomb"):
        core.decode_image(data, core.ImageLimits(max_input_pixels=10**9))


def test_write_png_is_atomic_and_display_view(tmp_path, rgb: np.ndarray) -> None:
    target = core.write_png(tmp_path / "sub" / "out.png", rgb)
    assert target.exists() and not list(target.parent.glob(".*part"))
    np.testing.assert_array_equal(core.read_image(target), rgb)
    assert core.to_display(rgb.astype(np.uint16) * 257).dtype == np.uint8
    np.testing.assert_array_equal(core.to_display(rgb.astype(np.uint16) * 257), rgb)
    assert core.to_display(rgb[:, :, :1]).shape == (40, 60)
    assert core.image_info(rgb) == "60x40 RGB 8-bit"


_PNG_BOMB_RSS = '''
import resource, struct, threading, zlib
import core

def chunk(kind, body, declared=None):
    size = len(body) if declared is None else declared
    return struct.pack(">I", size) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

# 86 bytes: a 64x64 16-bit PNG whose IDAT declares ~4 GB (the eXIf chunk keeps Pillow from
# stumbling on it first, so the file reaches the 16-bit decoder)
data = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 16, 2, 0, 0, 0))
        + chunk(b"eXIf", b"MM\\x00*\\x00\\x00\\x00\\x08\\x00\\x00")
        + chunk(b"IDAT", zlib.compress(b"\\x00" * 8), declared=0xFFFFFF00) + chunk(b"IEND", b""))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
errors = []
def decode():
    try:
        core.decode_image(data)
    except core.errors.ImageDecodeError as exc:
        errors.append(str(exc))
threads = [threading.Thread(target=decode) for _ in range(5)]
for t in threads: t.start()
for t in threads: t.join()
print(len(data), len(errors), (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
print(errors[0])
'''


@pytest.mark.slow
def test_a_png_declaring_a_huge_chunk_is_refused_before_any_allocation() -> None:
    """A tiny 16-bit PNG whose IDAT declares ~4 GB made OpenCV allocate it (5 at once: 20 GB)."""
    out = subprocess.run([sys.executable, "-c", _PNG_BOMB_RSS], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.splitlines()
    size, refused, grown_mb = out[0].split()
    assert int(size) < 100 and int(refused) == 5
    assert float(grown_mb) < 200, f"5 decodes of a {size}-byte file grew the peak RSS by {float(grown_mb):.0f} MB"
    assert "'IDAT' chunk declares 4294967040 bytes" in out[1]


def test_png_chunks_must_reach_iend() -> None:
    png = core.encode_png(np.full((4, 4, 3), 1000, np.uint16))
    assert core.decode_image(png).dtype == np.uint16  # a valid 16-bit PNG still decodes
    with pytest.raises(core.errors.ImageDecodeError, match="truncated"):
        core.decode_image(png[: png.rindex(b"IEND") - 4])


def test_unit_float_round_trip_for_both_bit_depths() -> None:
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        image = np.array([[0, 1, top // 2, top]], dtype)  # HW: returned HWC
        unit = core.to_unit(image)
        assert unit.shape == (1, 4, 1) and unit.dtype == np.float32 and unit.max() == 1.0
        assert np.array_equal(core.from_unit(unit, dtype)[:, :, 0], image)
    assert core.to_unit(np.zeros((2, 2, 3), np.uint8), np.float64).dtype == np.float64
    assert np.array_equal(core.from_unit(np.array([-0.5, 0.5, 1.7])), np.array([0, 128, 255], np.uint8))
    with pytest.raises(ValueError, match="uint8 or uint16"):
        core.to_unit(np.zeros((2, 2), np.float32))


def _png(array: np.ndarray, bit_depth: int, colour_type: int, trns: bytes) -> bytes:
    """A PNG written chunk by chunk (no encoder in between) with a tRNS colour key."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    height, width = array.shape[:2]
    rows = array.astype(">u2" if bit_depth == 16 else "u1").reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"tRNS", trns) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("colour_type", [0, 2])  # grey, RGB
def test_colour_key_transparency_becomes_alpha(bit_depth: int, colour_type: int) -> None:
    top = 2**bit_depth - 1
    rng = np.random.default_rng(3)
    channels = 1 if colour_type == 0 else 3
    array = rng.integers(1, top, size=(5, 7, channels))
    key = array[2, 3].copy()
    array[0, 0] = key  # two pixels carry the key colour
    data = _png(array, bit_depth, colour_type, b"".join(int(v).to_bytes(2, "big") for v in key))
    out = core.decode_image(data)
    transparent = (array == key).all(axis=2)
    assert out.shape == (5, 7, 4) and out.dtype == (np.uint16 if bit_depth == 16 else np.uint8)
    np.testing.assert_array_equal(out[:, :, 3], np.where(transparent, 0, top))
    np.testing.assert_array_equal(out[:, :, :3], np.repeat(array, 3 // channels, axis=2))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF", "PNG16"])
def test_the_icc_profile_is_read_and_written_back(rgb: np.ndarray, fmt: str) -> None:
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # any profile but sRGB
    if fmt == "PNG16":
        im16 = Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257)
        data = _pil_bytes(im16, "PNG", icc_profile=profile)
    else:
        data = _pil_bytes(Image.fromarray(rgb), fmt, icc_profile=profile)
    decoded = core.decode_with_profile(data)
    assert decoded.icc_profile == profile
    png = core.encode_png(decoded.pixels, icc_profile=decoded.icc_profile)
    again = Image.open(io.BytesIO(png))
    assert again.info.get("icc_profile") == profile
    np.testing.assert_array_equal(core.decode_image(png), decoded.pixels)  # the pixels are untouched
    assert core.decode_with_profile(core.encode_png(decoded.pixels)).icc_profile is None


def test_a_jpeg_cut_short_is_refused_not_filled_with_grey(rgb: np.ndarray) -> None:
    big = np.asarray(Image.fromarray(rgb).resize((1200, 800)))
    data = _pil_bytes(Image.fromarray(big), "JPEG", quality=90)
    assert core.decode_image(data).shape == (800, 1200, 3)
    scan = data.rfind(b"\xff\xda")
    with pytest.raises(core.errors.ImageDecodeError, match="JPEG is truncated"):
        core.decode_image(data[: scan + 300])  # the headers whole, the image data cut after 300 bytes
    with pytest.raises(core.errors.ImageDecodeError, match="JPEG is truncated"):
        core.decode_image(data[: len(data) - 100])
    assert core.decode_image(data + b"trailing bytes").shape == (800, 1200, 3)  # data after the end is fine
    # a motion photo: a video after the end, whose bytes hold markers of all kinds (last: a start of scan)
    video = bytes(np.random.default_rng(4).integers(0, 256, 200_000, dtype=np.uint8)) + b"\xff\xd9\xff\xda"
    assert core.decode_image(data + video).shape == (800, 1200, 3)
    progressive = _pil_bytes(Image.fromarray(big), "JPEG", quality=90, progressive=True)
    assert core.decode_image(progressive).shape == (800, 1200, 3)
    with pytest.raises(core.errors.ImageDecodeError, match="JPEG is truncated"):
        core.decode_image(progressive[: len(progressive) * 2 // 3])


def _jpeg(image: np.ndarray, **options) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("progressive", [False, True])
def test_a_jpeg_cut_in_its_scan_with_an_end_marker_put_back_is_refused(progressive: bool) -> None:
    """It decoded to 95 % grey (128) without a word."""
    data = _jpeg(core.load_sample("chelsea"), progressive=progressive)
    cut = data[: data.index(b"\xff\xda") + 500] + b"\xff\xd9"
    with pytest.raises(core.errors.ImageDecodeError, match="incomplete"):
        core.decode_image(cut)


def test_whole_jpegs_decode_including_extra_bytes_between_markers() -> None:
    image = core.load_sample("chelsea")
    grey = image[:, :, 0]
    for data in (_jpeg(image), _jpeg(image, progressive=True), _jpeg(grey), _jpeg(grey[:, :, None].repeat(3, 2))):
        assert core.decode_image(data).shape[:2] == image.shape[:2]
    data = _jpeg(image)
    second = data.index(b"\xff", 4)  # the marker after APP0: 3 stray bytes before it, as some cameras write
    odd = data[:second] + b"\x00\x01\x02" + data[second:]
    np.testing.assert_array_equal(core.decode_image(odd), core.decode_image(data))


def _grey_alpha_file(grey: np.ndarray, alpha: np.ndarray, bit_depth: int) -> bytes:
    """A PNG of colour type 4 (grey + alpha), written here by hand, as other tools write them."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    pairs = np.stack([grey, alpha], axis=2).astype(">u2" if bit_depth == 16 else "u1")
    raw = b"".join(b"\x00" + row.tobytes() for row in pairs.reshape(grey.shape[0], -1))
    header = struct.pack(">IIBBBBB", grey.shape[1], grey.shape[0], bit_depth, 4, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("kind", ["LA 8-bit", "LA 16-bit", "grey + tRNS 16-bit"])
def test_grey_with_alpha_stays_grey_with_alpha(kind: str, weights_dir: Path, tmp_path: Path) -> None:
    """Issue 38.8: grey images with alpha came out RGBA though the README says grey is kept."""
    from cli.main import main

    depth = 16 if "16" in kind else 8
    top = 2**depth - 1
    grey = (core.load_sample("camera")[:24, :20, 0].astype(np.int64) * (top // 255))
    alpha = np.where(np.arange(20)[None, :] < 10, top, top // 3).repeat(24, axis=0)
    if kind.startswith("LA"):
        data = _grey_alpha_file(grey, alpha, depth)
    else:
        key = grey[0, 0]
        alpha = np.where(grey == key, 0, top)
        data = _png(grey[:, :, None], depth, 0, int(key).to_bytes(2, "big"))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "g.png").write_bytes(data)
    decoded = core.decode_image(data)
    assert decoded.shape == (24, 20, 4) and (decoded[:, :, 3] == alpha).all()  # read as RGBA, grey colour
    assert main(["--weights-dir", str(weights_dir), "upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                 "--model", "realesr-animevideov3", "-q"]) == 0
    written = (tmp_path / "out" / "g.png").read_bytes()
    assert written[24:26] == bytes([depth, 4])  # IHDR: bit depth, colour type 4 (grey + alpha)
    out = cv2.imread(str(tmp_path / "out" / "g.png"), cv2.IMREAD_UNCHANGED)  # another decoder (BGRA from LA)
    assert out.shape == (96, 80, 4) and out.dtype == (np.uint16 if depth == 16 else np.uint8)
    assert abs(float(out[:, :40, 3].mean()) - alpha[:, :10].mean()) < top * 0.02  # the alpha came along
    ours = core.read_image(tmp_path / "out" / "g.png")
    np.testing.assert_array_equal(ours, cv2.cvtColor(out, cv2.COLOR_BGRA2RGBA))
    assert (ours[:, :, 0] == ours[:, :, 1]).all() and (ours[:, :, 1] == ours[:, :, 2]).all()
