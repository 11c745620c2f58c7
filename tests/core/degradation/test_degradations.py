"""The Real-ESRGAN degradation pipeline: kernels, noise, JPEG, sizes, determinism, statistics."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, replace

import numpy as np
import pytest
from scipy.stats import chisquare

import core
from core.degradation import (
    DegradationParams,
    FinalParams,
    KernelParams,
    NoiseParams,
    StageConfig,
    StageParams,
    apply_params,
    config_from_dict,
    config_to_dict,
    load_degradation,
    make_kernel,
    make_pair,
    params_from_dict,
    parse_degradation,
    sample_params,
    sinc_kernel,
)
from core.degradation._ops import add_gaussian_noise, add_poisson_noise, jpeg, resize_to
from core.errors import ConfigError, DatasetError

DEFAULT = core.PRESETS["realesrgan"]


def _moments(kernel: np.ndarray) -> tuple[float, float, float]:
    half = kernel.shape[0] // 2
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    return float((kernel * x * x).sum()), float((kernel * y * y).sum()), float((kernel * x * y).sum())


# ---------------------------------------------------------------- kernels


@pytest.mark.parametrize("kind", ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso",
                                  "plateau_aniso", "sinc"])
def test_every_kernel_sums_to_one(kind: str) -> None:
    kernel = make_kernel(KernelParams(kind, 15, 2.0, 0.7, 0.4, 1.5, 1.3))
    assert kernel.shape == (15, 15) and kernel.sum() == pytest.approx(1.0)


def test_isotropic_kernels_are_symmetric_and_have_the_right_spread() -> None:
    for kind in ("iso", "generalized_iso", "plateau_iso"):
        kernel = make_kernel(KernelParams(kind, 21, 2.0, 9.9, 1.0, 1.5))  # sigma_y, theta ignored
        np.testing.assert_allclose(kernel, kernel.T, atol=1e-12)
        np.testing.assert_allclose(kernel, kernel[::-1, ::-1], atol=1e-12)
    var_x, var_y, cov = _moments(make_kernel(KernelParams("iso", 21, 2.0)))
    assert var_x == pytest.approx(4.0, rel=0.02) and var_y == pytest.approx(4.0, rel=0.02) and abs(cov) < 1e-9
    gauss = make_kernel(KernelParams("iso", 15, 1.5))
    np.testing.assert_allclose(make_kernel(KernelParams("generalized_iso", 15, 1.5, beta=1.0)), gauss)


def test_anisotropy_and_rotation_show_in_second_moments() -> None:
    var_x, var_y, cov = _moments(make_kernel(KernelParams("aniso", 21, 3.0, 1.0, 0.0)))
    assert var_x == pytest.approx(9.0, rel=0.05) and var_y == pytest.approx(1.0, rel=0.05) and abs(cov) < 1e-9
    var_x, var_y, _ = _moments(make_kernel(KernelParams("aniso", 21, 3.0, 1.0, np.pi / 2)))
    assert var_y == pytest.approx(9.0, rel=0.05) and var_x == pytest.approx(1.0, rel=0.05)
    var_x, var_y, cov = _moments(make_kernel(KernelParams("aniso", 21, 3.0, 1.0, np.pi / 4)))
    assert var_x == pytest.approx(var_y, rel=0.01) and cov == pytest.approx(4.0, rel=0.05)  # (9 - 1) / 2


def test_sinc_kernel_cuts_off_near_omega() -> None:
    omega = np.pi / 2
    kernel = sinc_kernel(21, omega)
    response = np.abs(np.fft.fftshift(np.fft.fft2(kernel, s=(128, 128))))
    freq = np.fft.fftshift(np.fft.fftfreq(128)) * 2 * np.pi
    radius = np.hypot(*np.meshgrid(freq, freq))
    assert response[radius < 0.7 * omega].mean() > 0.9
    assert response[(radius > 1.3 * omega) & (radius < np.pi)].mean() < 0.1


def test_kernel_params_are_validated() -> None:
    for bad in (dict(type="box", size=7), dict(type="iso", size=8), dict(type="iso", size=23),
                dict(type="iso", size=7, sigma_x=0.0)):
        with pytest.raises(ValueError):
            KernelParams(**bad)


# ---------------------------------------------------------------- noise, JPEG, resize


def test_gaussian_noise_level_and_grey_noise() -> None:
    flat = np.full((256, 256, 3), 0.5, np.float32)
    noisy = add_gaussian_noise(flat, 20.0, False, seed=1)
    assert (noisy - flat).std() * 255 == pytest.approx(20.0, rel=0.03)
    assert not np.array_equal(noisy[:, :, 0], noisy[:, :, 1])
    grey = add_gaussian_noise(flat, 20.0, True, seed=1)
    assert np.array_equal(grey[:, :, 0], grey[:, :, 1]) and np.array_equal(grey[:, :, 1], grey[:, :, 2])


def test_poisson_noise_variance_scales_with_intensity() -> None:
    rng = np.random.default_rng(0)
    variances = []
    for level in (0.2, 0.8):
        image = np.full((256, 256, 3), level, np.float32)
        image[0, :256, 0] = rng.random(256)  # many distinct values: 256 photon levels
        variances.append((add_poisson_noise(image, 1.0, False, seed=2) - image)[1:].var())
    assert variances[1] / variances[0] == pytest.approx(4.0, rel=0.15)
    grey = add_poisson_noise(np.full((64, 64, 3), 0.4, np.float32), 2.0, True, seed=3)
    assert np.array_equal(grey[:, :, 0], grey[:, :, 2])


def test_jpeg_quality_and_block_structure() -> None:
    image = core.load_sample("coffee")[:128, :128].astype(np.float32) / 255
    errors = [np.abs(jpeg(image, q) - image).mean() for q in (10, 50, 95)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 3 / 255
    ramp = np.tile(np.linspace(0.2, 0.8, 128, dtype=np.float32), (128, 1))[:, :, None]
    steps = np.abs(np.diff(jpeg(ramp, 10)[:, :, 0], axis=1)).mean(axis=0)
    boundary = steps[7::8].mean()
    inside = np.delete(steps, np.s_[7::8]).mean()
    assert boundary > 2 * inside, "no 8x8 block structure at quality 10"


@pytest.mark.parametrize("mode", ["area", "bilinear", "bicubic", "matlab"])
def test_resize_sizes_are_exact(mode: str) -> None:
    image = core.load_sample("rocket")[:100, :90].astype(np.float32) / 255
    for size in ((37, 51), (200, 7), (100, 90)):
        assert resize_to(image, size, mode).shape == (*size, 3)


def test_final_lr_is_hr_over_scale_for_every_seed() -> None:
    hr = core.load_sample("chelsea")[:100, :132]
    for seed in range(30):
        for name, config in core.PRESETS.items():
            assert core.degrade(hr, config, seed, keep_stages=False).lr.shape == (25, 33, 3), (name, seed)
    lr, cropped = make_pair(core.load_sample("chelsea")[:103, :130], replace(DEFAULT, scale=2), 5)
    assert cropped.shape == (102, 130, 3) and lr.shape == (51, 65, 3) and lr.dtype == np.uint8


def test_grey_input_stays_grey_and_alpha_is_dropped() -> None:
    grey = core.load_sample("camera")[:64, :64]
    assert core.degrade(grey, DEFAULT, 1).lr.shape == (16, 16, 1)
    rgba = np.concatenate([core.load_sample("rocket")[:64, :64], np.full((64, 64, 1), 9, np.uint8)], axis=2)
    assert core.degrade(rgba, DEFAULT, 1).lr.shape == (16, 16, 3)


# ---------------------------------------------------------------- determinism and fixed mode


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    hr = core.load_sample("astronaut")[:128, :128]
    a, b, c = (core.degrade(hr, DEFAULT, s).lr for s in (7, 7, 8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_recorded_parameters_reproduce_the_output_in_fixed_mode() -> None:
    hr = core.load_sample("astronaut")[:128, :128]
    for seed in range(6):
        result = core.degrade(hr, DEFAULT, seed)
        params = params_from_dict(json.loads(result.params.to_json()))
        assert params == result.params
        assert np.array_equal(apply_params(hr, params).lr, result.lr)


def test_hand_pinned_parameters_and_stage_records() -> None:
    hr = core.load_sample("coffee")[:96, :96]
    params = DegradationParams(
        scale=4,
        first=StageParams(KernelParams("aniso", 15, 2.5, 0.6, 0.5), "down", 0.5, "area",
                               NoiseParams("gaussian", 10.0, True, 1), 60),
        second=StageParams(None, "keep", 1.0, "bilinear", None, None),
        final=FinalParams(True, KernelParams("sinc", 11, omega=1.5), "bicubic", 80),
    )
    result = apply_params(hr, params)
    names = [s.name for s in result.stages]
    assert names == ["input", "usm sharpen", "blur 1", "resize 1", "noise 1", "jpeg 1", "blur 2", "resize 2",
                     "noise 2", "resize + sinc", "jpeg 2", "output"]
    applied = {s.name: s.applied for s in result.stages}
    assert not applied["blur 2"] and not applied["noise 2"] and applied["resize + sinc"]
    resize1 = next(s for s in result.stages if s.name == "resize 1")
    assert resize1.image.shape == (48, 48, 3) and "48x48" in resize1.detail
    assert "aniso 15x15" in result.stages[2].detail and result.lr.shape == (24, 24, 3)
    assert resize1.detail == "area 96x96 -> 48x48 (x0.500 of the HR size 96x96)"
    resize2 = next(s for s in result.stages if s.name == "resize 2")  # relative to the LR size, said so
    assert resize2.detail == "bilinear 48x48 -> 24x24 (x1.000 of the LR size 24x24)"
    iso = replace(params, first=replace(params.first, kernel=KernelParams("iso", 7, 1.2, 0.6, 0.5)))
    assert apply_params(hr, iso).stages[2].detail == "iso 7x7, σ=1.20"  # one σ, no θ for isotropic kernels
    plateau = replace(params, first=replace(params.first, kernel=KernelParams("plateau_iso", 7, 1.2, 0.6, 0.5,
                                                                                    1.5)))
    assert apply_params(hr, plateau).stages[2].detail == "plateau_iso 7x7, σ=1.20, β=1.50"
    jpeg_first = replace(params, final=replace(params.final, sinc_first=False))
    order = [s.name for s in apply_params(hr, jpeg_first).stages][-3:]
    assert order == ["jpeg 2", "resize + sinc", "output"]


def test_none_preset_is_matlab_bicubic_and_classical_is_first_order() -> None:
    hr = core.load_sample("astronaut")[:128, :128]
    np.testing.assert_array_equal(core.degrade(hr, core.PRESETS["none"], 3).lr, core.imresize(hr, 0.25))
    classical = core.degrade(hr, core.PRESETS["classical"], 3)
    assert [s.name for s in classical.stages if s.applied] == ["input", "blur 1", "resize 1", "noise 1", "jpeg 1",
                                                               "output"]


# ---------------------------------------------------------------- statistics


def test_sampled_choices_follow_the_configured_probabilities() -> None:
    rng = np.random.default_rng(123)
    draws = [sample_params(DEFAULT, rng) for _ in range(4000)]
    stage = DEFAULT.first
    kinds = Counter(d.first.kernel.type for d in draws)
    labels = [*stage.kernel_types, "sinc"]
    expected = [p * (1 - stage.sinc_prob) for p in stage.kernel_probs] + [stage.sinc_prob]
    observed = [kinds[k] for k in labels]
    assert chisquare(observed, np.array(expected) * len(draws)).pvalue > 1e-3, dict(kinds)
    directions = Counter(d.first.resize_direction for d in draws)
    observed = [directions[k] for k in ("up", "down", "keep")]
    assert chisquare(observed, np.array(stage.resize_probs) * len(draws)).pvalue > 1e-3, dict(directions)
    modes = Counter(d.first.resize_mode for d in draws)
    assert chisquare([modes[m] for m in stage.resize_modes]).pvalue > 1e-3
    rates = {
        "second blur": (np.mean([d.second.kernel is not None for d in draws]), 0.8),
        "final sinc": (np.mean([d.final.sinc is not None for d in draws]), 0.8),
        "sinc first": (np.mean([d.final.sinc_first for d in draws]), 0.5),
        "gaussian noise": (np.mean([d.first.noise.kind == "gaussian" for d in draws]), 0.5),
        "grey noise": (np.mean([d.first.noise.grey for d in draws]), 0.4),
    }
    for name, (rate, target) in rates.items():
        assert abs(rate - target) < 0.03, f"{name}: {rate:.3f} vs {target}"
    sigmas = [d.first.kernel.sigma_x for d in draws if d.first.kernel.type != "sinc"]
    assert min(sigmas) >= 0.2 and max(sigmas) <= 3.0
    qualities = [d.first.jpeg_quality for d in draws]  # continuous, as Real-ESRGAN draws them
    assert 30 <= min(qualities) < 30.5 and 94.5 < max(qualities) <= 95
    assert sum(q != round(q) for q in qualities) > 0.99 * len(qualities)
    betas = [d.first.kernel.beta for d in draws if d.first.kernel.type.startswith("plateau")]
    assert abs(np.mean([b == 1.0 for b in betas]) - 0.5) < 0.1  # U(1, 1) half the time: the official sampler
    assert abs(np.mean(betas) - 1.25) < 0.05 and max(betas) <= 2.0
    small = [d.first.kernel.omega for d in draws if d.first.kernel.type == "sinc" and d.first.kernel.size < 13]
    assert small and min(small) >= np.pi / 3


# ---------------------------------------------------------------- configuration


def test_configuration_validation() -> None:
    bad_stages = [dict(blur_sigma=(3.0, 0.2)), dict(kernel_probs=(0.5, 0.5, 0, 0, 0, 0.1)),
                  dict(kernel_sizes=(7, 8)), dict(kernel_types=("box",), kernel_probs=(1.0,)),
                  dict(resize_modes=("lanczos",)), dict(jpeg_range=(0, 95)), dict(noise_prob=1.5),
                  dict(resize_probs=(0.5, 0.5, 0.5))]
    for bad in bad_stages:
        with pytest.raises(ValueError):
            StageConfig(**bad)
    with pytest.raises(ValueError):
        core.DegradationConfig(scale=0)
    with pytest.raises(ValueError, match="Unknown"):
        config_from_dict({"scale": 4, "colour": "red"})


@pytest.mark.parametrize("name", sorted(core.PRESETS))
def test_presets_round_trip_through_json_and_yaml(name: str) -> None:
    config = core.PRESETS[name]
    assert core.DegradationConfig.from_json(config.to_json()) == config
    assert core.DegradationConfig.from_yaml(config.to_yaml()) == config
    assert config_from_dict(config_to_dict(config)) == config
    assert isinstance(asdict(config), dict)


def test_defaults_are_the_official_training_settings() -> None:
    first, second = DEFAULT.first, DEFAULT.second
    assert first.kernel_sizes == tuple(range(7, 22, 2)) and first.sinc_prob == 0.1
    assert first.kernel_probs == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    assert (first.blur_sigma, second.blur_sigma) == ((0.2, 3.0), (0.2, 1.5))
    assert (first.resize_probs, first.resize_range) == ((0.2, 0.7, 0.1), (0.15, 1.5))
    assert (second.resize_probs, second.resize_range) == ((0.3, 0.4, 0.3), (0.3, 1.2))
    assert (first.noise_range, second.noise_range) == ((1.0, 30.0), (1.0, 25.0))
    assert (first.poisson_scale_range, second.poisson_scale_range) == ((0.05, 3.0), (0.05, 2.5))
    assert first.gray_noise_prob == second.gray_noise_prob == 0.4
    assert first.jpeg_range == second.jpeg_range == (30, 95)
    assert second.blur_prob == 0.8 and DEFAULT.final_sinc_prob == 0.8 and DEFAULT.scale == 4


def test_dataset_lr_from_a_degradation_is_reproducible() -> None:
    config = core.PRESETS["mild"]
    a = core.open_dataset("samples", 4, degradation=config, seed=1)
    b = core.open_dataset("samples", 4, degradation=config, seed=1)
    lr_a, hr_a = a.load(a.items[0])
    lr_b, _ = b.load(b.items[0])
    assert np.array_equal(lr_a, lr_b) and lr_a.shape[0] * 4 == hr_a.shape[0]
    assert "mild" in a.lr_source
    c = core.open_dataset("samples", 4, degradation=config, seed=2)
    assert not np.array_equal(c.load(c.items[0])[0], lr_a)
    with pytest.raises(DatasetError, match="x2"):
        core.open_dataset("samples", 4, degradation=replace(config, scale=2))


def test_one_loader_for_presets_and_config_files(tmp_path) -> None:
    assert load_degradation("mild") is core.PRESETS["mild"]
    assert load_degradation("mild", 2).scale == 2 and load_degradation("mild", 2).name == "mild"
    path = tmp_path / "mine.json"
    path.write_text(core.DegradationConfig(scale=3, usm_sharpen=False).to_json())
    loaded = load_degradation(path, 2)
    assert loaded.scale == 2 and not loaded.usm_sharpen
    assert parse_degradation(core.PRESETS["severe"].to_yaml(), "s.yaml") == core.PRESETS["severe"]
    with pytest.raises(ConfigError, match="bad.yaml is not a valid degradation configuration"):
        parse_degradation("scale: [1, 2", "bad.yaml")
    with pytest.raises(ConfigError, match="x.yml is not a valid .*Unknown DegradationConfig settings: colour"):
        parse_degradation("colour: red", "x.yml")
    with pytest.raises(ConfigError, match="neither a preset .*realesrgan"):
        load_degradation(tmp_path / "missing.yaml")
