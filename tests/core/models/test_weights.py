"""Finding, converting, caching, downloading and loading weights (no internet)."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from spandrel.architectures.Compact import Compact

import core
from core.models import _catalogue
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
    assert required <= set(core.models.CATALOGUE)
    for spec in core.models.CATALOGUE.values():
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
        with pytest.raises(core.errors.WeightsMissingError, match=info.spec.filename):
            core.load_model(name, folder)
    with pytest.raises(core.errors.UnknownModelError, match="RealESRGAN_x4plus"):
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
    with pytest.raises(core.errors.UnsupportedModelError, match="scale"):
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
        with pytest.raises(core.errors.UnsupportedModelError):
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
    path = core.models.download_weights(f"{server.url}/good.pth", folder / "good.pth",
                                 progress=lambda d, t: seen.append((d, t)))
    assert path.is_file() and seen and seen[-1][0] == seen[-1][1] == path.stat().st_size
    for name, match in (("missing.pth", "Could not download"), ("short.pth", "stopped at"),
                        ("text.pth", "not a usable model")):
        with pytest.raises(core.errors.DownloadError, match=match):
            core.models.download_weights(f"{server.url}/{name}", folder / name)
        assert not (folder / name).exists()
    assert sorted(p.name for p in folder.iterdir()) == ["good.pth"]  # no temporary files left


def test_load_model_downloads_only_when_allowed(server: LoopbackServer, folder: Path, monkeypatch) -> None:
    spec = core.models.CATALOGUE["realesr-general-x4v3"]
    monkeypatch.setitem(_catalogue.CATALOGUE, spec.name, dataclasses.replace(spec, url=f"{server.url}/good.pth"))
    with pytest.raises(core.errors.WeightsMissingError):
        core.load_model(spec.name, folder)
    loaded = core.load_model(spec.name, folder, allow_download=True)
    assert loaded.info.source.startswith("downloaded from http://127.0.0.1")
    assert (folder / spec.filename).is_file()
    assert "official file" in core.load_model(spec.name, folder).info.source


def test_failed_download_falls_back_to_the_ncnn_conversion(server: LoopbackServer, folder: Path, monkeypatch) -> None:
    spec = core.models.CATALOGUE["realesr-animevideov3"]
    monkeypatch.setitem(_catalogue.CATALOGUE, spec.name, dataclasses.replace(spec, url=f"{server.url}/missing.pth"))
    loaded = core.load_model(spec.name, folder, allow_download=True)
    assert "converted from the ncnn package" in loaded.info.source
    other = core.models.CATALOGUE["RealESRNet_x4plus"]
    monkeypatch.setitem(_catalogue.CATALOGUE, other.name, dataclasses.replace(other, url=f"{server.url}/missing.pth"))
    with pytest.raises(core.errors.DownloadError, match="Could not download"):
        core.load_model(other.name, folder, allow_download=True)


_PAYLOAD = '''
import sys, torch
from typing import Tuple

class Payload(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.note = "pwned"

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, bool]:
        return (self.note, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool]) -> None:
        self.note = state[0]
        self.training = state[1]
        print("PAYLOAD-RAN-AT-LOAD", self.note)  # code run by merely loading the file

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

torch.jit.script(Payload()).save(sys.argv[1])
'''

_STUDIO_OPENS = '''
import sys
from pathlib import Path
import core
folder = Path(sys.argv[1])
names = {info.name: info for info in core.list_models(folder)}
print("LISTED", names["evil"].available, names["evil"].reason)
try:
    core.Upscaler.load("evil", device="cpu", weights_dir=folder)
except core.StudioError as exc:
    print("REFUSED", type(exc).__name__, exc)
'''


@pytest.mark.slow
def test_a_torchscript_file_in_weights_is_never_run(tmp_path: Path) -> None:
    """A TorchScript archive runs its __setstate__ when loaded: listing, looking up and loading
    models must refuse it without opening it (in a fresh process, as `core models` and the API do)."""
    payload = tmp_path / "evil.pt"
    builder = tmp_path / "build_payload.py"  # TorchScript compiles from source, so it must be a file
    builder.write_text(_PAYLOAD)
    subprocess.run([sys.executable, str(builder), str(payload)], check=True, capture_output=True)
    builder.unlink()
    control = subprocess.run([sys.executable, "-c", f"import torch; torch.jit.load({str(payload)!r})"],
                             capture_output=True, text=True, check=True)
    assert "PAYLOAD-RAN-AT-LOAD" in control.stdout  # the payload is live: torch.jit.load runs it
    ours = subprocess.run([sys.executable, "-c", _STUDIO_OPENS, str(tmp_path)], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[3])
    assert "PAYLOAD-RAN-AT-LOAD" not in ours.stdout + ours.stderr
    assert "LISTED False Not usable: evil.pt is a TorchScript archive" in ours.stdout
    assert "REFUSED UnsupportedModelError" in ours.stdout and "TorchScript" in ours.stdout


@pytest.mark.slow
def test_plain_weights_files_load_through_the_restricted_reader(tmp_path: Path, weights_dir: Path) -> None:
    from core.models._weights import read_state_dict

    state = core.load_model("realesr-animevideov3", weights_dir).descriptor.model.state_dict()
    torch.save(state, tmp_path / "mine.pth")
    torch.save({"params": state}, tmp_path / "wrapped.pt")  # a nested checkpoint, as BasicSR saves them
    torch.save({"weights": state, "run_dir": Path("/tmp")}, tmp_path / "pickled.pth")
    assert set(read_state_dict(tmp_path / "mine.pth")) == set(state)
    infos = {info.name: info for info in core.list_models(tmp_path)}
    assert infos["mine"].available and infos["wrapped"].available and infos["mine"].scale == 4
    assert not infos["pickled"].available and "not a plain weights file" in infos["pickled"].reason
    upscaler = core.Upscaler.load("wrapped", device="cpu", weights_dir=tmp_path)
    assert upscaler.upscale(np.zeros((8, 8, 3), np.uint8)).image.shape == (32, 32, 3)


def test_two_weights_files_with_one_stem_are_two_models(tmp_path: Path) -> None:
    _tiny_pth(tmp_path / "mine.pth", scale=2)
    save_file(_tiny_state(3), str(tmp_path / "mine.safetensors"))
    infos = {info.name: info for info in core.list_models(tmp_path) if info.kind == "local"}
    assert set(infos) == {"mine.pth", "mine.safetensors"}  # not one "mine" hiding the other
    assert infos["mine.pth"].scale == 2 and infos["mine.safetensors"].scale == 3
    for name, scale in (("mine.pth", 2), ("mine.safetensors", 3)):
        upscaler = core.Upscaler.load(name, device="cpu", weights_dir=tmp_path)
        assert upscaler.upscale(np.zeros((6, 6, 3), np.uint8)).image.shape == (6 * scale, 6 * scale, 3)


def test_bad_weights_files_say_what_is_wrong_and_links_out_of_the_folder_are_not_followed(
        folder: Path, tmp_path: Path) -> None:
    folder.mkdir()
    (folder / "empty.pth").write_bytes(b"")
    (folder / "empty2.safetensors").write_bytes(b"")
    (folder / "cut.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{")
    torch.save({"encoder.blocks.0.weight": torch.zeros(3, 3)}, folder / "unknown-arch.pth")
    (tmp_path / "elsewhere").mkdir()
    outside = _tiny_pth(tmp_path / "elsewhere" / "secret.pth", scale=2)
    (folder / "link.pth").symlink_to(outside)
    (folder / "inside.pth").symlink_to(_tiny_pth(folder / "real.pth", scale=2))  # a link within the folder is fine
    infos = _by_name(core.list_models(folder))
    assert "empty (0 bytes)" in infos["empty"].reason and "empty (0 bytes)" in infos["empty2"].reason
    assert "not a valid .safetensors file" in infos["cut"].reason
    reason = infos["unknown-arch"].reason
    assert "architecture spandrel does not know" in reason and "encoder.blocks.0.weight" in reason
    assert "list index" not in str(infos) and infos["inside"].available
    # issue 38.15: a link out of the folder is listed, unusable, with why (it used to vanish without a word)
    assert not infos["link"].available and f"a link to {outside}, outside the weights folder" in infos["link"].reason
    assert "Copy the file here" in infos["link"].reason
    (folder / "dangling.pth").symlink_to(tmp_path / "gone.pth")
    assert "is a broken link" in _by_name(core.list_models(folder))["dangling"].reason
    with pytest.raises(core.errors.UnsupportedModelError, match="outside the weights folder"):
        core.load_model("link", folder)
    with pytest.raises(core.errors.UnsupportedModelError, match="0 bytes"):
        core.load_model("empty", folder)


def test_an_offline_download_says_so_in_words(tmp_path: Path) -> None:
    """Not "[Errno -2] Name or service not known": the host, and what that means."""
    from core._download import fetch

    with pytest.raises(core.errors.DownloadError) as unknown:
        fetch("http://no-such-host.invalid/RN50.pt", tmp_path / "a.part", timeout=10)
    assert "no-such-host.invalid cannot be found (this machine is offline" in str(unknown.value)
    assert "Errno" not in str(unknown.value)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with pytest.raises(core.errors.DownloadError, match=r"127\.0\.0\.1 does not answer"):
        fetch(f"http://127.0.0.1:{closed}/x", tmp_path / "b.part", timeout=10)
