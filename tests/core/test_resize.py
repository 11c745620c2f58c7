"""The bicubic baselines and the MATLAB-compatible imresize."""

from __future__ import annotations

import numpy as np
import pytest

import core


def _psnr_y(a: np.ndarray, b: np.ndarray, border: int) -> float:
    """PSNR on BT.601 Y (BasicSR convention), for checking imresize against published values."""
    def y(image: np.ndarray) -> np.ndarray:
        x = image.astype(np.float64) / 255.0
        return 16 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]

    diff = (y(a) - y(b))[border:-border, border:-border]
    return float(10 * np.log10(255.0**2 / np.mean(diff**2)))


@pytest.mark.parametrize(("name", "expected"), [("astronaut", 26.8663), ("chelsea", 31.4792), ("coffee", 27.2945)])
def test_matlab_bicubic_round_trip_reproduces_published_psnr(name: str, expected: float) -> None:
    """References computed with BasicSR 1.4.2 (MATLAB-checked) on these very images."""
    hr = core.load_sample(name)
    lr = core.imresize(hr.astype(np.float64), 0.25)  # LR kept in float, as the reference did
    up = np.clip(np.rint(core.imresize(lr, 4)), 0, 255).astype(np.uint8)
    assert up.shape == hr.shape
    assert abs(_psnr_y(hr, up, 4) - expected) < 0.005


def test_imresize_properties() -> None:
    flat = np.full((20, 24, 3), 77, np.uint8)
    assert (core.imresize(flat, 0.5) == 77).all()
    image = core.load_sample("coffee")[:40, :48]
    assert core.imresize(image, 0.25).shape == (10, 12, 3)
    assert core.imresize(image, size=(13, 17)).shape == (13, 17, 3)
    grey16 = (image[:, :, 0].astype(np.uint16) * 257)
    out = core.imresize(grey16, 2)
    assert out.dtype == np.uint16 and out.shape == (80, 96)
    # antialiasing: downscaling a one-pixel checkerboard averages it to grey (no aliasing)
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    assert np.abs(core.imresize(checker, 0.25).astype(int) - 128).max() <= 4
    with pytest.raises(ValueError):
        core.imresize(image)


@pytest.mark.parametrize("method", core._resize.RESIZE_METHODS)
def test_resize_methods_keep_dtype_and_channels(method: str) -> None:
    for image in (core.load_sample("rocket")[:20, :30], core.load_sample("camera")[:20, :30],
                  core.load_sample("rocket")[:20, :30].astype(np.uint16) * 257):
        out = core.resize(image, (45, 70), method)
        assert out.shape == (45, 70, image.shape[2]) and out.dtype == image.dtype
    with pytest.raises(ValueError, match="Unknown resize"):
        core.resize(image, (4, 4), "magic")


def test_bicubic_differs_from_matlab_on_downscale() -> None:
    """OpenCV bicubic has no antialiasing, MATLAB's has: the baselines must stay distinct."""
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    assert np.abs(core.resize(checker, (15, 15), "bicubic").astype(int) - 128).max() > 20
    assert np.abs(core.resize(checker, (15, 15), "matlab").astype(int) - 128).max() <= 8


def test_crop_to_scale_cuts_bottom_and_right_to_a_multiple() -> None:
    image = np.arange(7 * 10 * 3, dtype=np.uint8).reshape(7, 10, 3)
    cropped = core.crop_to_scale(image, 4)
    assert cropped.shape == (4, 8, 3) and np.array_equal(cropped, image[:4, :8])
    assert core.crop_to_scale(image, 1) is not None and core.crop_to_scale(image, 1).shape == image.shape
    assert core.crop_to_scale(image[:, :, 0], 3).shape == (6, 9)  # grey HW too


def test_sides_shorter_than_the_kernel_resize_as_matlab_does() -> None:
    """bicubic-pytorch indexes past a side of 1 or 2 px (and 3 px at x1/4); those take MATLAB's contributions
    as matrices, the same numbers wherever both run (bicubic-pytorch computes in float32)."""
    import torch
    from bicubic_pytorch import imresize as reference

    from core._resize import _small_imresize

    rng = np.random.default_rng(0)
    compared = 0
    for height, width in ((3, 3), (4, 7), (5, 3), (9, 13)):
        image = rng.random((height, width, 3)) * 255
        for scale, size in ((4, None), (0.5, None), (1 / 3, None), (None, (7, 11)), (None, (2, 3))):
            for antialiasing in (True, False):
                try:
                    expected = reference(torch.from_numpy(image.transpose(2, 0, 1).copy()), scale=scale, sizes=size,
                                         antialiasing=antialiasing).numpy().transpose(1, 2, 0)
                except IndexError:
                    continue
                found = _small_imresize(image, scale, size, antialiasing)
                np.testing.assert_allclose(found, expected, atol=1e-3)  # of 255: float32's rounding
                compared += 1
    assert compared > 30
    for side in ((1, 1), (2, 2), (1, 5), (2, 9)):  # where bicubic-pytorch fails, whole images come out
        flat = np.full((*side, 3), 77, np.uint8)
        assert (core.imresize(flat, scale=4) == 77).all() and core.imresize(flat, scale=4).shape[:2] == (
            side[0] * 4, side[1] * 4)
    ramp = np.array([[0.0, 200.0]])  # a symmetric input gives a symmetric output
    up = core.imresize(ramp, scale=4)
    np.testing.assert_allclose(up[:, ::-1], 200 - up, atol=1e-9)
    assert up[0, 0] < 20 and up[0, -1] > 180
    with pytest.raises(ValueError, match="empty"):
        core.imresize(np.zeros((0, 4, 3), np.uint8), scale=2)
