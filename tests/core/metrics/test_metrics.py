"""Metrics reproduce the published BasicSR / MATLAB references on the bundled images."""

from __future__ import annotations

import numpy as np
import pytest

import core
from core import errors, evaluation, metrics
from core.metrics import GREY_MODES, _pixel

# Computed with BasicSR 1.4.2's own functions on scikit-image 0.26's images (see the issue):
# LR = imresize(HR, 1/4) kept in float, bicubic = imresize(LR, 4) rounded to uint8.
REFERENCE = {
    "astronaut": (26.8663, 0.8434, 25.3663, 0.8155, 3.0649, 7.1883),
    "chelsea": (31.4792, 0.8066, 30.0564, 0.7813, 2.6255, 8.0464),
    "coffee": (27.2945, 0.7651, 25.8029, 0.7371, 4.1152, 7.7011),
}


def _bicubic_round_trip(hr: np.ndarray) -> np.ndarray:
    lr = core.imresize(hr.astype(np.float64), 0.25)
    return np.clip(np.rint(core.imresize(lr, 4)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_values(name: str) -> None:
    psnr_y, ssim_y, psnr_rgb, ssim_rgb, niqe_hr, niqe_bic = REFERENCE[name]
    hr = core.load_sample(name)
    bic = _bicubic_round_trip(hr)
    got = {
        "PSNR_Y": (metrics.psnr(bic, hr, crop_border=4), psnr_y, 0.005),
        "SSIM_Y": (metrics.ssim(bic, hr, crop_border=4), ssim_y, 0.0005),
        "PSNR_RGB": (metrics.psnr(bic, hr, crop_border=4, channel="rgb"), psnr_rgb, 0.005),
        "SSIM_RGB": (metrics.ssim(bic, hr, crop_border=4, channel="rgb"), ssim_rgb, 0.0005),
        "NIQE(HR)": (metrics.niqe(hr), niqe_hr, 0.01),
        "NIQE(bicubic)": (metrics.niqe(bic), niqe_bic, 0.01),
    }
    wrong = {k: f"{v:.4f} vs {ref}" for k, (v, ref, tol) in got.items() if abs(v - ref) > tol}
    assert not wrong, f"{name}: {wrong}"


# BasicSR 1.4.2 calculate_niqe(img_bgr, 0, convert_to="y") of the sample with its top-left 288x192 set to one
# colour: flat blocks have no negative (or positive) coefficient, and MATLAB / BasicSR still count their alpha
FLAT_NIQE = {"astronaut": 3.28353, "coffee": 4.09905}


@pytest.mark.parametrize("name", sorted(FLAT_NIQE))
def test_niqe_of_an_image_with_flat_blocks_equals_basicsr(name: str) -> None:
    from core.metrics import _torch

    image = core.load_sample(name).copy()
    image[:192, :288] = (120, 130, 140)
    assert metrics.niqe(image) == pytest.approx(FLAT_NIQE[name], abs=1e-3)
    assert _torch.niqe_torch(image, device="cpu") == pytest.approx(FLAT_NIQE[name], abs=1e-3)


def test_metrics_are_bit_depth_independent_and_validate_inputs() -> None:
    hr = core.load_sample("chelsea")
    bic = _bicubic_round_trip(hr)
    hr16, bic16 = hr.astype(np.uint16) * 257, bic.astype(np.uint16) * 257
    assert metrics.psnr(bic16, hr16, crop_border=4) == pytest.approx(metrics.psnr(bic, hr, crop_border=4), abs=1e-9)
    assert metrics.ssim(bic16, hr16, crop_border=4) == pytest.approx(metrics.ssim(bic, hr, crop_border=4), abs=1e-9)
    assert metrics.psnr(hr, hr) == float("inf") and metrics.ssim(hr, hr) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(hr[:10], hr)
    with pytest.raises(ValueError, match="same dtype"):
        metrics.psnr(hr16, hr)
    with pytest.raises(ValueError, match="too small"):
        metrics.psnr(hr[:8, :8], hr[:8, :8], crop_border=4)
    with pytest.raises(ValueError, match="96x96"):
        metrics.niqe(hr[:90])
    with pytest.raises(ValueError, match="uint8"):
        metrics.psnr(hr.astype(np.float32), hr.astype(np.float32))


def test_metric_directions_follow_quality() -> None:
    """Blurrier images: PSNR and SSIM go down, NIQE goes up."""
    hr = core.load_sample("coffee")
    mild = _bicubic_round_trip(hr)
    strong = np.clip(np.rint(core.imresize(core.imresize(hr.astype(np.float64), 0.125), 8)), 0, 255).astype(np.uint8)
    assert metrics.psnr(strong, hr, crop_border=8) < metrics.psnr(mild, hr, crop_border=8)
    assert metrics.ssim(strong, hr, crop_border=8) < metrics.ssim(mild, hr, crop_border=8)
    assert metrics.niqe(hr) < metrics.niqe(mild) < metrics.niqe(strong)


def test_registry_describes_every_metric() -> None:
    assert set(core.METRICS) == {"psnr", "ssim", "niqe", "lpips-alex", "lpips-vgg", "dists", "clipiqa",
                                 "clipiqa-ensemble", "musiq", "musiq-spaq", "musiq-paq2piq", "musiq-ava"}
    assert core.METRICS["psnr"].kind == "full-reference" and core.METRICS["psnr"].higher_is_better
    assert core.METRICS["niqe"].kind == "no-reference" and not core.METRICS["niqe"].higher_is_better
    hr = core.load_sample("astronaut")
    assert core.compute_metric("niqe", hr) == pytest.approx(metrics.niqe(hr))
    with pytest.raises(ValueError, match="full-reference"):
        core.compute_metric("ssim", hr)
    with pytest.raises(KeyError):
        core.compute_metric("lpips", hr, hr)



def _basicsr_y(grey: np.ndarray) -> np.ndarray:
    """What BasicSR scores for a grey file: read in colour (three equal channels), then its BT.601 Y."""
    bgr = np.repeat(grey.astype(np.float64), 3, axis=2) / 255.0  # cv2.imread(path) of a grey PNG
    return bgr @ np.array([24.966, 128.553, 65.481]) + 16.0  # bgr2ycbcr(y_only=True), 0-255 range


def test_grey_images_are_scored_as_basicsr_reads_them_by_default() -> None:
    hr = core.load_sample("camera")  # the grey sample, (512, 512, 1)
    assert hr.shape[2] == 1
    bic = _bicubic_round_trip(hr)
    a, b = _basicsr_y(bic)[4:-4, 4:-4], _basicsr_y(hr)[4:-4, 4:-4]
    by_hand = 10 * np.log10(255.0**2 / np.mean((a - b) ** 2))
    assert metrics.psnr(bic, hr, crop_border=4) == pytest.approx(by_hand, abs=1e-9)  # the default is BasicSR's
    as_is = metrics.psnr(bic, hr, crop_border=4, grey="as-is")
    assert metrics.psnr(bic, hr, crop_border=4) - as_is == pytest.approx(20 * np.log10(255 / 219), abs=1e-9)  # 1.32 dB
    colour = (np.repeat(bic, 3, axis=2), np.repeat(hr, 3, axis=2))  # the same image saved as RGB
    for metric in (metrics.psnr, metrics.ssim):
        assert metric(bic, hr, crop_border=4) == pytest.approx(metric(*colour, crop_border=4), abs=1e-12)
        assert metric(bic, hr, crop_border=4, channel="rgb") == pytest.approx(
            metric(*colour, crop_border=4, channel="rgb"), abs=1e-12)
    assert metrics.ssim(bic, hr, crop_border=4, grey="as-is") != pytest.approx(metrics.ssim(bic, hr, crop_border=4))
    assert metrics.niqe(hr) == pytest.approx(metrics.niqe(colour[1]), abs=1e-12)
    assert metrics.niqe(hr, grey="as-is") != pytest.approx(metrics.niqe(hr), abs=1e-3)
    rgb = core.load_sample("chelsea")  # colour images: the grey option changes nothing
    assert metrics.psnr(rgb[::2, ::2], rgb[1::2, 1::2], grey="as-is") == metrics.psnr(rgb[::2, ::2], rgb[1::2, 1::2])
    with pytest.raises(ValueError, match="grey must be one of"):
        metrics.psnr(hr, hr, grey="grey")


def test_user_choices_fail_as_studio_errors_with_plain_messages() -> None:
    image = core.load_sample("chelsea")[:32, :32]
    with pytest.raises(errors.UnknownNameError) as caught:
        core.compute_metric("lpips", image, image)
    assert isinstance(caught.value, core.StudioError) and isinstance(caught.value, KeyError)
    assert str(caught.value) == ("Unknown metric 'lpips'; known: psnr, ssim, niqe, lpips-alex, lpips-vgg, dists, "
                                 "clipiqa, clipiqa-ensemble, musiq, musiq-spaq, musiq-paq2piq, musiq-ava. Did you mean "
                                 "'lpips-vgg'?")  # unquoted
    with pytest.raises(errors.SettingsError, match="channel must be"):
        metrics.psnr(image, image, channel="lab")
    with pytest.raises(errors.UnknownNameError, match="Unknown sweep parameter"):
        evaluation.sweep_params("gamma", 1.0, 4)


def test_ssim_equals_scikit_image_on_real_images() -> None:
    """The separable-filter SSIM is scikit-image's structural_similarity with the options the literature uses."""
    from skimage.metrics import structural_similarity

    for name in ("astronaut", "coffee"):
        hr = core.load_sample(name)
        bic = _bicubic_round_trip(hr)
        for channel in ("y", "rgb"):
            a, b = _pixel.prepare(bic, 4, channel), _pixel.prepare(hr, 4, channel)
            expected = structural_similarity(a, b, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                             use_sample_covariance=False)
            assert metrics.ssim(bic, hr, crop_border=4, channel=channel) == pytest.approx(expected, abs=1e-12)


_DEVICES = ["cpu", *(["cuda"] if __import__("torch").cuda.is_available() else [])]


@pytest.mark.slow
@pytest.mark.parametrize("device", _DEVICES)
def test_the_torch_path_equals_the_numpy_path_on_real_images(device: str) -> None:
    from core.metrics import _torch

    for name in ("astronaut", "chelsea", "coffee"):
        hr = core.load_sample(name)
        bic = _bicubic_round_trip(hr)
        pairs = [(bic, hr, "rgb"), (bic.astype(np.uint16) * 257, hr.astype(np.uint16) * 257, "rgb"),
                 *((bic[:, :, 1], hr[:, :, 1], grey) for grey in GREY_MODES)]  # grey pairs: both conventions
        for a, b, grey in pairs:
            for channel in ("y", "rgb"):
                options = {"crop_border": 4, "channel": channel, "grey": grey}
                assert _torch.psnr_torch(a, b, **options, device=device) == pytest.approx(
                    metrics.psnr(a, b, **options), abs=1e-4)
                assert _torch.ssim_torch(a, b, **options, device=device) == pytest.approx(
                    metrics.ssim(a, b, **options), abs=1e-5)
        for image in (hr, bic, hr[:200, :300, 0]):
            assert _torch.niqe_torch(image, device=device) == pytest.approx(metrics.niqe(image), abs=1e-3)
        assert core.compute_metric("niqe", bic, device=device) == pytest.approx(metrics.niqe(bic), abs=1e-3)
    with pytest.raises(ValueError, match="96x96"):
        _torch.niqe_torch(hr[:90], device=device)
    with pytest.raises(ValueError, match="11x11"):
        _torch.ssim_torch(hr[:12, :12], hr[:12, :12], crop_border=1, device=device)
