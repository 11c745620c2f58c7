"""The ``realesrgan`` preset reproduces Real-ESRGAN's own degradation of the same parameters and noise.

Compared with :mod:`tests.core.degradation.realesrgan_port` (the official computation restated in PyTorch),
stage by stage and end to end; the port itself is checked by hand first.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import core
from core.degradation import DegradationParams, _jpeg, apply_params, params_from_dict, sample_params
from core.degradation._ops import resize_to, usm_sharpen
from tests.core.degradation import realesrgan_port as port


def _psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def _nchw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]


def _hwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor[0].permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return core.load_sample("coffee")[100:228, 200:328]  # 128x128, textured


def test_the_port_is_a_jpeg_by_hand(photo: np.ndarray) -> None:
    """Checks of the port that need no official code: a flat image stays flat, the port is close to
    a real codec at the same quality, and lower qualities lose more."""
    flat = torch.full((1, 3, 24, 40), 0.5)
    out = port.diff_jpeg(flat, 75.0)
    assert out.shape == flat.shape and torch.allclose(out, out[0, :, :1, :1].expand_as(out[0])[None])
    image = photo.astype(np.float32) / 255
    codec = cv2.cvtColor(cv2.imdecode(cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR),
                                                   [cv2.IMWRITE_JPEG_QUALITY, 60])[1], 1), cv2.COLOR_BGR2RGB)
    ported = _hwc(port.diff_jpeg(_nchw(image), 60.0))
    assert _psnr(ported, codec / 255) > 33  # "slightly different from cv2", as BasicSR says
    losses = [_psnr(_hwc(port.diff_jpeg(_nchw(image), q)), image) for q in (30.0, 60.0, 95.0)]
    assert losses[0] < losses[1] < losses[2]


def test_each_operation_matches_the_port(photo: np.ndarray) -> None:
    image = photo.astype(np.float32) / 255
    assert _psnr(usm_sharpen(image), _hwc(port.usm_sharp(_nchw(image)))) > 80
    assert _psnr(usm_sharpen(image), image) < 40  # it does sharpen
    for quality in (30.0, 47.3, 50.0, 71.9, 95.0):  # continuous qualities
        ours, official = _jpeg.diff_jpeg(image[:123, :101], quality), _hwc(port.diff_jpeg(_nchw(image[:123, :101]),
                                                                                           quality))
        assert ours.shape == (123, 101, 3) and _psnr(ours, official) > 60, quality
    grey = image[:, :, :1]
    assert _psnr(_jpeg.diff_jpeg(grey, 40.0), _hwc(port.diff_jpeg(_nchw(np.repeat(grey, 3, 2)), 40.0))[:, :, :1]) > 60
    for mode in ("area", "bilinear", "bicubic"):
        for factor in (0.37, 0.83, 1.3):  # stage 1: by scale factor
            size = (int(128 * factor), int(128 * factor))
            official = _hwc(torch.nn.functional.interpolate(_nchw(image), scale_factor=factor, mode=mode))
            assert _psnr(resize_to(image, size, mode, factor), official) > 100, (mode, factor)
        official = _hwc(torch.nn.functional.interpolate(_nchw(image), size=(45, 45), mode=mode))
        assert _psnr(resize_to(image, (45, 45), mode), official) > 100, mode  # stage 2 and final: by size


def _official_sets() -> list[DegradationParams]:
    """10 parameter sets of the realesrgan preset, with both final orders and both noise kinds."""
    draws = [sample_params(core.PRESETS["realesrgan"], seed) for seed in range(200)]
    chosen, seen = [], set()
    for params in draws:
        key = (params.final.sinc_first, params.first.noise.kind, params.second.noise.kind if params.second.noise
               else None, params.first.resize_direction)
        if key not in seen:
            seen.add(key)
            chosen.append(params)
    return chosen[:10]


def test_the_realesrgan_preset_reproduces_the_official_pipeline(photo: np.ndarray) -> None:
    sets = _official_sets()
    assert len(sets) == 10
    values = []
    for params in sets:
        ours = apply_params(photo, params, keep_stages=False).lr
        official = port.degrade(photo, params)
        assert ours.shape == official.shape == (32, 32, 3)
        values.append(_psnr(ours, official, 255.0))
    print("preset vs official PSNR (dB):", ", ".join(f"{v:.1f}" for v in values))
    assert min(values) >= 50, [round(v, 1) for v in values]


def test_the_old_behaviour_stays_available_and_differs(photo: np.ndarray) -> None:
    """OpenCV's real JPEG and no USM remain options; they give another LR than the official pipeline."""
    params = sample_params(core.PRESETS["realesrgan"], 3)
    official = port.degrade(photo, params)
    codec = apply_params(photo, params_from_dict({**_plain(params), "jpeg_engine": "opencv",
                                                             "usm_sharpen": False})).lr
    assert _psnr(codec, official, 255.0) < 45
    config = core.DegradationConfig(jpeg_engine="opencv", usm_sharpen=False)
    sampled = sample_params(config, 3)
    assert sampled.jpeg_engine == "opencv" and not sampled.usm_sharpen
    assert float(sampled.first.jpeg_quality).is_integer()
    assert core.PRESETS["classical"].jpeg_engine == "opencv" and not core.PRESETS["none"].usm_sharpen
    with pytest.raises(ValueError, match="jpeg_engine"):
        core.DegradationConfig(jpeg_engine="libjpeg")


def _plain(params: DegradationParams) -> dict:
    from dataclasses import asdict

    return asdict(params)
