"""The OpenVINO CPU engine: the same output as PyTorch on real weights, its cache, tiling."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import core
from tests.conftest import psnr


def _network_outputs(upscaler: core.Upscaler, reference: core.Upscaler, side: int = 40) -> tuple[np.ndarray, ...]:
    """The two engines' float outputs on the same real photo crop (model calls, no 8-bit rounding)."""
    image = core.to_unit(core.load_sample("chelsea")[60: 60 + side, 200: 200 + side])
    tensor = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]
    with torch.inference_mode():
        return upscaler._runner.forward(tensor).numpy(), reference._runner.forward(tensor).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["RealESRGAN_x4plus", "RealESRGAN_x4plus_anime_6B", "realesr-animevideov3"])
def test_openvino_agrees_with_pytorch_on_real_weights(weights_dir: Path, name: str) -> None:
    ov = core.Upscaler.load(name, device="cpu", engine="openvino", weights_dir=weights_dir)
    pt = core.Upscaler.load(name, device="cpu", engine="torch", weights_dir=weights_dir)
    assert ov.engine == "openvino" and "openvino" in ov.describe()
    ours, theirs = _network_outputs(ov, pt)
    assert ours.shape == theirs.shape and psnr(ours, theirs) >= 60, psnr(ours, theirs)


def test_a_user_model_without_an_ncnn_file_runs_on_openvino_and_its_cache_is_reused(weights_dir: Path,
                                                                                     tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    compact = core.load_model("realesr-animevideov3", weights_dir)
    save_file({k: v.contiguous() for k, v in compact.descriptor.model.state_dict().items()},
              str(folder / "my-anime.safetensors"))
    times = []
    for _ in range(2):
        start = time.perf_counter()
        ov = core.Upscaler.load("my-anime", device="cpu", engine="openvino", weights_dir=folder)
        times.append(time.perf_counter() - start)
        assert ov.info.kind == "local"
    assert not ov._runner.forward.converted, "the second load converted again instead of reading the cache"
    cached = sorted(p.name for p in (folder / "openvino").iterdir())
    assert any(n.endswith(".xml") for n in cached) and "compiled" in cached
    assert any((folder / "openvino" / "compiled").iterdir()), "OpenVINO wrote no compiled blob"
    assert times[1] < times[0], f"load times {times}: the cache did not help"
    pt = core.Upscaler.load("my-anime", device="cpu", engine="torch", weights_dir=folder)
    ours, theirs = _network_outputs(ov, pt)
    assert psnr(ours, theirs) >= 60


@pytest.mark.slow
def test_tiled_openvino_output_matches_untiled(weights_dir: Path) -> None:
    ov = core.Upscaler.load("RealESRGAN_x4plus", device="cpu", engine="openvino", weights_dir=weights_dir)
    image = core.load_sample("coffee")[100:164, 150:278]
    whole = ov.upscale(image, core.UpscaleSettings(tile=core.upscale.MAX_TILE))
    tiled = ov.upscale(image, core.UpscaleSettings(tile=64))
    assert whole.tile == 0 and tiled.tile == 64
    assert psnr(tiled.image / 255, whole.image / 255) >= 50


def test_openvino_only_where_it_can_run(weights_dir: Path) -> None:
    with pytest.raises(core.errors.DeviceUnavailableError, match="CPU in fp32"):
        core.Upscaler.load("realesr-animevideov3", device="cpu", precision="bf16", engine="openvino",
                           weights_dir=weights_dir)
