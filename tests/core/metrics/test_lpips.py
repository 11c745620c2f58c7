"""LPIPS v0.1: the same numbers as the authors' ``lpips`` package on identical weights, the official file
formats loaded from where users keep them, a clear message without them, checked downloads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

import core
from core.metrics import _lpips, _torchvision
from tests.loopback import LoopbackServer

lpips_ref = pytest.importorskip("lpips")


def _reference(net: str, seed: int) -> torch.nn.Module:
    """The authors' network: a seeded random backbone (offline) and the official v0.1 linear heads."""
    torch.manual_seed(seed)
    return lpips_ref.LPIPS(net=net, pnet_rand=True, verbose=False).eval()


def _torchvision_state(reference: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The reference's backbone as torchvision's checkpoint names it (``features.IDX.weight``)."""
    state = {}
    for key, value in reference.net.state_dict().items():
        _, index, param = key.split(".")  # slice1.0.weight
        state[f"features.{index}.{param}"] = value
    return state


def _pair(seed: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, shape), 0, 255).astype(np.uint8)
    return a, b


def _unit(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]


@pytest.mark.slow
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_the_maths_equals_the_authors_package_on_identical_weights(net: str) -> None:
    reference = _reference(net, seed=3)
    ours = _lpips.LpipsNet(net, _torchvision_state(reference), reference.state_dict())
    for shape in ((64, 64, 3), (96, 80, 3)):
        a, b = _pair(1, shape)
        with torch.inference_mode():
            theirs = float(reference(_unit(a), _unit(b), normalize=True).flatten()[0])
            mine = float(ours(_unit(a), _unit(b))[0])
        assert theirs > 0 and mine == pytest.approx(theirs, rel=1e-5, abs=1e-7), (shape, mine, theirs)
        assert float(ours(_unit(a), _unit(a))[0]) == 0.0  # identical images


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(_lpips, "_networks", {})  # built afresh from this test's files
    return tmp_path / "torch"


def test_official_files_where_users_keep_them_are_loaded_and_scored(torch_home: Path, weights_dir: Path) -> None:
    """A torchvision checkpoint in $TORCH_HOME and the heads in weights/metrics/ (their official formats)."""
    reference = _reference("alex", seed=5)
    torch.manual_seed(5)
    checkpoint = torchvision.models.alexnet(weights=None).state_dict()  # a whole torchvision checkpoint
    checkpoint.update(_torchvision_state(reference))
    (torch_home / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(checkpoint, torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth")
    heads = {k: v * 1.5 for k, v in reference.state_dict().items() if k.startswith("lin")}  # not the packaged ones
    (weights_dir / "metrics").mkdir(exist_ok=True)
    torch.save(heads, weights_dir / "metrics" / "lpips_v0.1_alex.pth")
    try:
        assert core.METRICS["lpips-alex"].ready()
        a, b = _pair(2, (64, 72, 3))
        with torch.inference_mode():
            expected = 1.5 * float(reference(_unit(a), _unit(b), normalize=True).flatten()[0])  # heads are linear
        assert core.compute_metric("lpips-alex", a, b) == pytest.approx(expected, rel=1e-5)
        grey = a[:, :, :1]
        assert core.compute_metric("lpips-alex", grey, grey) == 0.0  # grey is read as RGB
        wide = a.astype(np.uint16) * 257
        assert core.compute_metric("lpips-alex", wide, b.astype(np.uint16) * 257) == pytest.approx(expected, rel=1e-5)
        assert core.score_images({"x": a}, b)["x"]["lpips-alex"] == pytest.approx(expected, rel=1e-5)
    finally:
        (weights_dir / "metrics" / "lpips_v0.1_alex.pth").unlink()


def test_without_the_backbone_every_entry_point_says_what_is_missing(torch_home: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    from cli.main import main

    assert not core.METRICS["lpips-vgg"].ready()
    a, b = _pair(4, (64, 64, 3))
    with pytest.raises(core.errors.WeightsMissingError, match=r"vgg16-397923af\.pth.*hub/checkpoints"):
        core.compute_metric("lpips-vgg", a, b)
    assert "lpips-vgg" not in core.score_images({"x": a}, b)["x"]  # the page shows the others
    core.write_png(tmp_path / "hr" / "a.png", a)
    with pytest.raises(core.errors.WeightsMissingError, match="metrics --download lpips-vgg"):
        core.evaluate(core.open_dataset(tmp_path / "hr", 4), ["bicubic"], ["psnr", "lpips-vgg"])  # before any row
    assert main(["evaluate", "--dataset", str(tmp_path / "hr"), "--methods", "bicubic", "--metrics",
                 "psnr,lpips-vgg", "--out", str(tmp_path / "run"), "-q"]) == 2
    assert "lpips-vgg" in capsys.readouterr().err and not (tmp_path / "run" / "results.json").exists()
    assert main(["metrics"]) == 0
    assert "missing (--download lpips-vgg)" in capsys.readouterr().out


def test_downloads_keep_only_the_published_files(torch_home: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    official = (Path(lpips_ref.__file__).parent / "weights" / "v0.1" / "alex.pth").read_bytes()  # the authors' file
    fake_backbone = b"not torchvision's file"
    folder = tmp_path / "weights"
    with LoopbackServer({"/alex.pth": official, "/tampered.pth": official + b"x",
                         "/alexnet-owt-7be5be79.pth": fake_backbone}) as server:
        monkeypatch.setattr(_lpips, "_heads_file", lambda net, weights_dir: (
            weights_dir / "metrics" / f"lpips_v0.1_{net}.pth") if (
            weights_dir / "metrics" / f"lpips_v0.1_{net}.pth").is_file() else None)  # as without the lpips package
        monkeypatch.setattr(_torchvision, "_source", lambda net: server.url + "/alexnet-owt-7be5be79.pth")
        monkeypatch.setattr(_lpips, "_HEADS_URL", server.url + "/tampered.pth")
        with pytest.raises(core.errors.DownloadError, match="not the published one"):
            _lpips.download_lpips("alex", weights_dir=folder)
        assert not list((folder / "metrics").iterdir())  # nothing kept, no partial file
        monkeypatch.setattr(_lpips, "_HEADS_URL", server.url + "/{net}.pth")
        with pytest.raises(core.errors.DownloadError, match="not one starting 7be5be79"):
            _lpips.download_lpips("alex", weights_dir=folder)
    assert (folder / "metrics" / "lpips_v0.1_alex.pth").read_bytes() == official  # the heads passed their check
    assert not (torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth").exists()
    assert not [p for p in (torch_home / "hub" / "checkpoints").iterdir()]
