"""Finding, converting, caching, downloading and loading weights (no internet)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from spandrel.architectures.Compact import Compact

import core
from core import _catalogue
from tests.loopback import LoopbackServer


def _tiny_state(scale: int = 2) -> dict[str, torch.Tensor]:
    return Compact(num_feat=8, num_conv=2, upscale=scale).state_dict()


def _tiny_pth(path: Path, scale: int = 2) -> Path:
    torch.save(_tiny_state(scale), path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "weights"


def _by_name(infos: list[core.ModelInfo]) -> dict[str, core.ModelInfo]:
    return {info.name: info for info in infos}


def test_catalogue_lists_every_official_model_with_its_metadata() -> None:
    required = {"RealESRGAN_x4plus", "RealESRNet_x4plus", "RealESRGAN_x4plus_anime_6B", "RealESRGAN_x2plus",
                "realesr-general-x4v3", "realesr-animevideov3", "realesr-animevideov3-x2", "realesr-animevideov3-x3"}
    assert required <= set(core.CATALOGUE)
    for spec in core.CATALOGUE.values():
        assert spec.url.startswith("https://github.com/xinntao/Real-ESRGAN/releases/download/")
        assert spec.url.endswith("/" + spec.filename) and spec.licence.startswith("BSD-3-Clause")
        assert spec.architecture in ("RRDBNet", "SRVGGNetCompact") and spec.scale in (2, 3, 4)


def test_offline_status_without_any_file(folder: Path) -> None:
    infos = _by_name(core.list_models(folder))
    for name in ("RealESRGAN_x4plus", "RealESRGAN_x4plus_anime_6B", "realesr-animevideov3",
                 "realesr-animevideov3-x2", "realesr-animevideov3-x3"):
        assert infos[name].available and "ncnn package" in infos[name].source, name
    for name in ("RealESRNet_x4plus", "RealESRGAN_x2plus", "realesr-general-x4v3"):
        info = infos[name]
        assert not info.available
        assert info.spec is not None and info.spec.url in info.reason and info.spec.filename in info.reason
        with pytest.raises(core.WeightsMissingError, match=info.spec.filename):
            core.load_model(name, folder)
    with pytest.raises(core.UnknownModelError, match="RealESRGAN_x4plus"):
        core.load_model("no-such-model", folder)


def test_conversion_is_cached_and_a_damaged_cache_is_rebuilt(folder: Path) -> None:
    first = core.load_model("realesr-animevideov3", folder)
    cache = folder / "realesr-animevideov3.from-ncnn.safetensors"
    assert cache.is_file() and "converted from the ncnn package" in first.info.source
    stamp = cache.stat().st_mtime_ns
    second = core.load_model("realesr-animevideov3", folder)
    assert cache.stat().st_mtime_ns == stamp and "cached" in second.info.source
    assert "cached" in core.model_info("realesr-animevideov3", folder).source
    cache.write_bytes(b"garbage")
    third = core.load_model("realesr-animevideov3", folder)
    assert third.descriptor.scale == 4 and cache.stat().st_size > 1000


def test_an_official_file_in_the_folder_wins(folder: Path) -> None:
    folder.mkdir()
    _tiny_pth(folder / "realesr-general-x4v3.pth", scale=4)
    loaded = core.load_model("realesr-general-x4v3", folder)
    assert loaded.info.available and "official file" in loaded.info.source
    _tiny_pth(folder / "RealESRGAN_x2plus.pth", scale=4)  # wrong scale for this name
    with pytest.raises(core.UnsupportedModelError, match="scale"):
        core.load_model("RealESRGAN_x2plus", folder)


def test_dropped_in_files_become_models_and_bad_ones_are_listed(folder: Path) -> None:
    folder.mkdir()
    _tiny_pth(folder / "my-compact.pth", scale=2)
    save_file(_tiny_state(3), str(folder / "my-x3.safetensors"))
    (folder / "broken.pth").write_bytes(b"not a checkpoint")
    torch.save({"foo.weight": torch.zeros(3)}, folder / "unknown-arch.pth")
    infos = _by_name(core.list_models(folder))
    assert infos["my-compact"].available and infos["my-compact"].scale == 2
    assert infos["my-compact"].architecture == "RealESRGAN Compact" and infos["my-compact"].kind == "local"
    assert infos["my-x3"].available and infos["my-x3"].scale == 3
    for bad in ("broken", "unknown-arch"):
        assert not infos[bad].available and infos[bad].reason.startswith("Not usable")
        with pytest.raises(core.UnsupportedModelError):
            core.load_model(bad, folder)
    upscaler = core.Upscaler.load("my-x3", device="cpu", weights_dir=folder)
    out = upscaler.upscale(core.load_sample("rocket")[:10, :12]).image
    assert out.shape == (30, 36, 3)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LoopbackServer]:
    model = _tiny_pth(tmp_path / "model.pth", scale=4).read_bytes()
    files = {"/good.pth": model, "/short.pth": model, "/text.pth": b"hello" * 100}
    with LoopbackServer(files, lie={"/short.pth"}) as running:
        yield running


def test_download_is_atomic_with_progress(server: LoopbackServer, folder: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    path = core.download_weights(f"{server.url}/good.pth", folder / "good.pth",
                                 progress=lambda d, t: seen.append((d, t)))
    assert path.is_file() and seen and seen[-1][0] == seen[-1][1] == path.stat().st_size
    for name, match in (("missing.pth", "Could not download"), ("short.pth", "stopped at"),
                        ("text.pth", "not a usable model")):
        with pytest.raises(core.DownloadError, match=match):
            core.download_weights(f"{server.url}/{name}", folder / name)
        assert not (folder / name).exists()
    assert sorted(p.name for p in folder.iterdir()) == ["good.pth"]  # no temporary files left


def test_load_model_downloads_only_when_allowed(server: LoopbackServer, folder: Path, monkeypatch) -> None:
    spec = core.CATALOGUE["realesr-general-x4v3"]
    monkeypatch.setitem(_catalogue.CATALOGUE, spec.name, dataclasses.replace(spec, url=f"{server.url}/good.pth"))
    with pytest.raises(core.WeightsMissingError):
        core.load_model(spec.name, folder)
    loaded = core.load_model(spec.name, folder, allow_download=True)
    assert loaded.info.source.startswith("downloaded from http://127.0.0.1")
    assert (folder / spec.filename).is_file()
    assert "official file" in core.load_model(spec.name, folder).info.source


def test_failed_download_falls_back_to_the_ncnn_conversion(server: LoopbackServer, folder: Path, monkeypatch) -> None:
    spec = core.CATALOGUE["realesr-animevideov3"]
    monkeypatch.setitem(_catalogue.CATALOGUE, spec.name, dataclasses.replace(spec, url=f"{server.url}/missing.pth"))
    loaded = core.load_model(spec.name, folder, allow_download=True)
    assert "converted from the ncnn package" in loaded.info.source
    other = core.CATALOGUE["RealESRNet_x4plus"]
    monkeypatch.setitem(_catalogue.CATALOGUE, other.name, dataclasses.replace(other, url=f"{server.url}/missing.pth"))
    with pytest.raises(core.DownloadError, match="Could not download"):
        core.load_model(other.name, folder, allow_download=True)
