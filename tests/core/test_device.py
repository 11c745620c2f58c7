"""Device and precision are resolved in one place, by fixed rules."""

from __future__ import annotations

import pytest
import torch

import core


def test_auto_picks_the_best_device_and_a_safe_precision() -> None:
    choice = core.resolve_device()
    if torch.cuda.is_available():
        assert choice.device == "cuda" and choice.precision == "fp16"
        assert core.resolve_device(supports_half=False).precision == "fp32"
    else:
        assert choice.precision == "fp32"
    assert core.available_devices()[-1] == "cpu"


def test_cpu_rules() -> None:
    assert core.resolve_device("cpu").label() == "cpu · fp32"
    assert core.resolve_device("cpu", "bf16").dtype == torch.bfloat16
    with pytest.raises(core.errors.DeviceUnavailableError, match="fp16"):
        core.resolve_device("cpu", "fp16")
    with pytest.raises(core.errors.DeviceUnavailableError, match="bf16"):
        core.resolve_device("cpu", "bf16", supports_bfloat16=False)


def test_unknown_or_absent_devices_are_clear_errors() -> None:
    with pytest.raises(core.errors.DeviceUnavailableError, match="Unknown device"):
        core.resolve_device("tpu")
    with pytest.raises(core.errors.DeviceUnavailableError, match="Unknown precision"):
        core.resolve_device("cpu", "int4")
    if not torch.cuda.is_available():
        with pytest.raises(core.errors.DeviceUnavailableError, match="CUDA"):
            core.resolve_device("cuda")
    with pytest.raises(core.errors.DeviceUnavailableError):
        core.resolve_device(f"cuda:{torch.cuda.device_count() + 3}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_half_precision_upscale_matches_fp32(weights_dir) -> None:
    image = core.load_sample("chelsea")[:64, :64]
    half = core.Upscaler.load("realesr-animevideov3", device="cuda", weights_dir=weights_dir)
    full = core.Upscaler.load("realesr-animevideov3", device="cpu", weights_dir=weights_dir)
    assert half.choice.precision == "fp16"
    a, b = half.upscale(image).image, full.upscale(image).image
    assert abs(a.astype(int) - b.astype(int)).mean() < 1.0


def test_memory_for_tiles_is_known_on_the_cpu_and_sane() -> None:
    from core._device import device_memory, host_memory

    memory = host_memory()
    assert memory is not None and 0 < memory[0] <= memory[1]
    assert device_memory("cpu") is not None and device_memory("mps") is None


def test_intel_gpus_are_named_from_openvinos_devices() -> None:
    from core._device import intel_gpus

    assert intel_gpus(["CPU"]) == [] and intel_gpus(["CPU", "GPU"]) == ["intel-gpu"]
    assert intel_gpus(["GPU.1", "CPU", "GPU.0", "NPU"]) == ["intel-gpu", "intel-gpu:1"]
    choice = core.DeviceChoice("intel-gpu:1", "fp16", "test")
    assert choice.openvino_device == "GPU.1" and choice.torch_device == torch.device("cpu")
    assert choice.dtype == torch.float32  # host tensors; OpenVINO applies fp16 itself
    assert core.DeviceChoice("cuda", "fp16", "").openvino_device is None


def test_an_intel_gpu_is_offered_only_where_openvino_reports_one(weights_dir) -> None:
    from core._device import intel_gpus

    if intel_gpus(core.engines.openvino_devices()):
        pytest.skip("this machine has Intel graphics")
    assert not any(d.startswith("intel-gpu") for d in core.available_devices())
    with pytest.raises(core.errors.DeviceUnavailableError, match="OpenVINO reports no Intel GPU here"):
        core.resolve_device("intel-gpu")
    # past the resolver (as on a machine with one), the engine is OpenVINO's and its device lookup answers
    loaded = core.load_model("realesr-animevideov3", weights_dir)
    choice = core.DeviceChoice("intel-gpu", "fp16", "as requested")
    with pytest.raises(core.errors.DeviceUnavailableError, match="OpenVINO has no GPU device here"):
        core.Upscaler(loaded, choice)
    with pytest.raises(core.errors.DeviceUnavailableError, match="on OpenVINO only"):
        core.Upscaler(loaded, choice, engine="torch")
