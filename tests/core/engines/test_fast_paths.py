"""The upscaler's speed and memory paths on real weights, checked on the CPU: tile batches,
channels-last, torch.compile, and the tile chosen from free memory. The same code runs on CUDA, where
``realesrgan-studio bench`` measures what each one gains; the CUDA-only checks are at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import core
from core import upscale
from core.engines import EngineOptions, _memory, cpu_bytes_per_pixel
from core.engines._probe import activation_profile
from core.upscale import _upscaler
from tests.conftest import psnr


def _wide(image: np.ndarray) -> np.ndarray:
    return image.astype(np.uint16) * 257  # 16-bit output: comparisons see more than 8-bit rounding


@pytest.fixture(scope="module")
def compact_torch(weights_dir) -> core.Upscaler:
    return core.Upscaler.load("realesr-animevideov3", device="cpu", engine="torch", weights_dir=weights_dir)


@pytest.mark.parametrize("engine", ["torch", "ncnn"])
def test_batched_tiles_give_the_image_of_single_tiles(weights_dir, compact_torch, engine: str) -> None:
    upscaler = compact_torch if engine == "torch" else core.Upscaler.load(
        "realesr-animevideov3", device="cpu", engine="ncnn", weights_dir=weights_dir)
    image = _wide(core.load_sample("chelsea")[:72, :88])
    single = upscaler.upscale(image, core.UpscaleSettings(tile=32)).image
    calls: list[tuple[float, int]] = []
    result = upscaler.upscale(image, core.UpscaleSettings(tile=32, batch=4), progress=lambda d, t: calls.append((d, t)))
    total = upscaler.count_tiles(72, 88, core.UpscaleSettings(tile=32))
    assert result.batch == 4 and total > 4
    # after each batch of 4 tiles, and in fractions inside a batch as the engine passes its layers
    done = [d for d, _ in calls]
    assert calls[-1] == (total, total) and set(range(4, total + 1, 4)) <= set(done) and done == sorted(done)
    value = psnr(result.image / 65535.0, single / 65535.0)
    assert value >= 80, f"batched vs single tiles: {value:.1f} dB"


def test_channels_last_changes_the_layout_not_the_image(weights_dir, compact_torch) -> None:
    nchw = core.Upscaler.load("realesr-animevideov3", device="cpu",
                              engine=EngineOptions(engine="torch", channels_last=False),
                              weights_dir=weights_dir)
    image = _wide(core.load_sample("coffee")[:48, :48])
    value = psnr(nchw.upscale(image).image / 65535.0, compact_torch.upscale(image).image / 65535.0)
    assert value >= 80, f"NCHW vs channels-last: {value:.1f} dB"


@pytest.mark.slow
def test_compiled_network_matches_eager_and_compiles_once_for_all_image_sizes(weights_dir, compact_torch) -> None:
    from torch._dynamo.utils import counters

    compiled = core.Upscaler.load("realesr-animevideov3", device="cpu",
                                  engine=EngineOptions(engine="torch", compile_mode="default"),
                                  weights_dir=weights_dir)
    assert compiled.compile_mode == "default" and "compiled" in compiled.describe()
    settings = core.UpscaleSettings(tile=32, tile_pad=8, batch=3)
    before = counters["stats"]["unique_graphs"]
    outputs = []
    for size in [(72, 80), (100, 52)]:  # different sizes and tile counts, one tile shape
        image = _wide(core.load_sample("rocket")[: size[0], : size[1]])
        ours = compiled.upscale(image, settings).image
        eager = compact_torch.upscale(image, core.UpscaleSettings(tile=0)).image
        value = psnr(ours / 65535.0, eager / 65535.0)
        assert value >= 60, f"compiled + fixed tiles vs eager whole image at {size}: {value:.1f} dB"
        outputs.append((image, ours))
    with ThreadPoolExecutor(3) as pool:  # callers on many threads share the one compiled graph
        again = list(pool.map(lambda pair: compiled.upscale(pair[0], settings).image, outputs * 2))
    for got, (_, want) in zip(again, outputs * 2):
        np.testing.assert_array_equal(got, want)
    assert counters["stats"]["unique_graphs"] - before == 1, "one graph should serve every image larger than a tile"


def test_the_tile_is_chosen_from_free_memory(weights_dir, compact_torch, monkeypatch) -> None:
    profile = activation_profile(core.load_model("realesr-animevideov3", weights_dir).descriptor.model, 3)
    # SRVGGNetCompact: 64-channel convolutions at the input's size, so at most an input and an output
    # of 64 channels are alive at once; conv inputs: the 3-channel image and the 64-channel features
    assert (profile.live_peak, profile.widest_conv_input, profile.conv_inputs, profile.output) == (128, 64, 67, 48)
    per_pixel = compact_torch.activation_bytes_per_pixel()
    assert per_pixel == cpu_bytes_per_pixel(profile, "torch") == _memory.MARGIN * 4 * (128 + 64)
    monkeypatch.setattr(_upscaler, "device_memory", lambda device: (64 * 2**30, 128 * 2**30))
    assert compact_torch.tile_for(core.UpscaleSettings(batch=2)) == (upscale.default_tile("cpu"), 2)  # plenty: default
    free = 200 * 2**20
    monkeypatch.setattr(_upscaler, "device_memory", lambda device: (free, 4 * free))
    budget = _upscaler.MEMORY_SHARE * free - _memory.CALL_OVERHEAD
    expected = upscale.tile_for_memory(per_pixel, budget, batch=2, pad=24, multiple=upscale.TILE_STEP)
    assert 16 <= expected < upscale.default_tile("cpu")
    assert compact_torch.tile_for(core.UpscaleSettings(batch=2)) == (expected, 2)
    assert compact_torch.tile_for(core.UpscaleSettings(tile=64, batch=2)) == (64, 2)  # explicit wins
    drifting = set()
    for drift in range(190 * 2**20, 210 * 2**20, 2**20):  # free memory drifting by ±5 % between reruns
        monkeypatch.setattr(_upscaler, "device_memory", lambda device, drift=drift: (drift, 4 * drift))
        drifting.add(compact_torch.tile_for(core.UpscaleSettings())[0])
    assert all(tile % upscale.TILE_STEP == 0 for tile in drifting) and len(drifting) <= 2, drifting  # steady
    monkeypatch.setattr(_upscaler, "device_memory", lambda device: (free, 4 * free))
    image = core.load_sample("chelsea")[:200, :150]
    result = compact_torch.upscale(image, core.UpscaleSettings(batch=2))
    assert result.tile == expected and result.image.shape == (800, 600, 3)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc")
@pytest.mark.parametrize("model", ["RealESRGAN_x4plus", "realesr-animevideov3"])
@pytest.mark.parametrize("engine", ["ncnn", "torch", "openvino"])
def test_cpu_memory_estimate_bounds_the_measured_peak(weights_dir, model: str, engine: str) -> None:
    """The estimate that picks CPU tiles, against the peak RSS of one call measured in a fresh process
    (threads and the allocator's mmap threshold pinned: see benchmarks/cpu_memory.py)."""
    from benchmarks.cpu_memory import measure

    small, large = measure([model], [engine], [64, 192])
    assert small["engine"] == large["engine"] == engine
    for row in (small, large):  # an upper bound at every size, the fixed cost per call included
        assert row["measured_mb"] <= row["estimate_mb"], f"{model} on {engine}: {row}"
    # and not so loose that tiles come out needlessly small: the cost of one more pixel (the slope
    # between the two sizes, so the fixed cost cancels) is at least half the estimate
    slope = (large["measured_mb"] - small["measured_mb"]) * 2**20 / (192**2 - 64**2)
    assert large["per_pixel"] <= 2 * slope, f"{model} on {engine}: estimate {large['per_pixel']:.0f} B/px, " \
        f"measured {slope:.0f} B/px"


def test_bad_speed_options_are_clear_errors(compact_torch) -> None:
    with pytest.raises(ValueError, match="batch"):
        core.UpscaleSettings(batch=0)
    with pytest.raises(ValueError, match="compile_mode"):
        core.Upscaler.load("realesr-animevideov3", device="cpu", engine=EngineOptions(compile_mode="fastest"))


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
def test_cuda_peak_memory_is_bounded_by_the_tile_not_the_image(weights_dir) -> None:
    upscaler = core.Upscaler.load("RealESRGAN_x4plus", device="cuda", weights_dir=weights_dir)
    assert upscaler.activation_bytes_per_pixel() > 0
    peaks = []
    for side in (256, 512):
        image = np.tile(core.load_sample("astronaut"), (2, 2, 1))[:side, :side]
        torch.cuda.reset_peak_memory_stats()
        upscaler.upscale(image, core.UpscaleSettings(tile=128))
        peaks.append(torch.cuda.max_memory_allocated())
    assert peaks[1] < 1.25 * peaks[0], f"peak grew with the image: {peaks}"


@needs_cuda
def test_cuda_batched_compiled_fp16_matches_cpu_fp32(weights_dir) -> None:
    image = _wide(core.load_sample("chelsea")[:96, :96])
    fast = core.Upscaler.load("realesr-animevideov3", device="cuda", engine=EngineOptions(compile_mode="default"),
                              weights_dir=weights_dir)
    reference = core.Upscaler.load("realesr-animevideov3", device="cpu", engine="torch", weights_dir=weights_dir)
    ours = fast.upscale(image, core.UpscaleSettings(tile=32, batch=4)).image
    value = psnr(ours / 65535.0, reference.upscale(image).image / 65535.0)
    assert value >= 40, f"CUDA fp16 compiled batched vs CPU fp32: {value:.1f} dB"


_UNDER_A_MEMORY_CAP = """
import resource, sys, numpy as np, core
from core.upscale import _tiling
engine, headroom_mb, model, side = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
handled = []
check = _tiling._out_of_memory
_tiling._out_of_memory = lambda exc: bool(check(exc) and not handled.append(type(exc).__name__))
up = core.Upscaler.load(model, device="cpu", engine=engine)
image = np.tile(core.load_sample("astronaut"), (2, 2, 1))[:side, :side]
up.upscale(image[:64, :64])  # warm-up
vsz = int(open("/proc/self/statm").read().split()[0]) * 4096
resource.setrlimit(resource.RLIMIT_AS, (vsz + headroom_mb * 2**20, resource.RLIM_INFINITY))
result = up.upscale(image, core.UpscaleSettings(tile=side))  # one tile of the whole image needs more than the cap
print(result.image.shape, sorted(set(handled)))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="caps the address space with RLIMIT_AS")
@pytest.mark.parametrize(("engine", "model", "side", "headroom"), [("ncnn", "realesr-animevideov3", 512, 300),
                                                                   ("torch", "RealESRGAN_x4plus", 256, 400)])
@pytest.mark.slow
def test_running_out_of_cpu_memory_halves_the_tile(weights_dir, engine: str, model: str, side: int,
                                                   headroom: int) -> None:
    """Under a real memory cap the engines' allocation failures (ncnn status -100, numpy MemoryError,
    PyTorch's and oneDNN's RuntimeErrors) take the out-of-memory path: smaller tiles, not an error."""
    # `headroom` MB above the loaded process: one whole-image tile needs more than that, smaller tiles
    # fit. RLIMIT_AS caps address space, of which allocator arenas reserve a varying share: with 300 MB,
    # x4plus failed a fresh-clone run even at 32-px tiles; with 600 MB its whole tile fit.
    # 400 MB: the whole tile fails, halved tiles succeed.
    proc = subprocess.run([sys.executable, "-c", _UNDER_A_MEMORY_CAP, engine, str(headroom), model, str(side)],
                          capture_output=True, text=True,
                          env=os.environ | {"OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "FATAL" not in proc.stderr  # ncnn's pools are released and retired cleanly
    shape, handled = proc.stdout.strip().split(" [")
    assert shape == str((side * 4, side * 4, 3)) and handled != "]", f"no out-of-memory was hit: {proc.stdout}"


def test_tile_zero_means_untiled_where_it_fits(compact_torch, monkeypatch) -> None:
    per_pixel = compact_torch.activation_bytes_per_pixel()
    monkeypatch.setattr(_upscaler, "device_memory", lambda device: (64 * 2**30, 128 * 2**30))
    image = core.load_sample("chelsea")[:100, :120]
    assert compact_torch.upscale(image, core.UpscaleSettings(tile=0)).tile == 0  # plenty of memory: one tile
    free = 200 * 2**20  # a small machine: "no tiling" must not mean "all the memory"
    monkeypatch.setattr(_upscaler, "device_memory", lambda device: (free, 4 * free))
    cap = upscale.tile_for_memory(per_pixel, _upscaler.MEMORY_SHARE * free - _memory.CALL_OVERHEAD, pad=24,
                                  multiple=upscale.TILE_STEP, largest=upscale.MAX_TILE)
    assert compact_torch.tile_for(core.UpscaleSettings(tile=0)) == (cap, 1)
    big = np.tile(core.load_sample("chelsea"), (2, 1, 1))[: cap + 40, : cap + 40]
    result = compact_torch.upscale(big, core.UpscaleSettings(tile=0))
    assert result.tile == cap and result.image.shape == ((cap + 40) * 4, (cap + 40) * 4, 3)


def test_tiny_tiles_are_refused() -> None:
    for tile in (1, 16, core.MIN_TILE - 1, upscale.MAX_TILE + 1):
        with pytest.raises(ValueError, match="tile must be 0"):
            core.UpscaleSettings(tile=tile)
    assert core.UpscaleSettings(tile=core.MIN_TILE).tile == core.MIN_TILE
