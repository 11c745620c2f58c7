"""DISTS: the same numbers as the authors' ``DISTS_pytorch`` package on identical weights, read from the
official files where users keep them (torchvision's cache, ``weights/metrics/``), a clear message without
them, checked downloads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

import core
from core.metrics import _dists, _torchvision
from tests.loopback import LoopbackServer

dists_ref = pytest.importorskip("DISTS_pytorch")
_PACKAGED = Path(dists_ref.__file__).parent / "weights.pt"  # the authors' alpha / beta


@pytest.fixture(scope="module")
def random_vgg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision cache holding a seeded random VGG-16 checkpoint, in torchvision's own file name."""
    home = tmp_path_factory.mktemp("torch")
    torch.manual_seed(11)
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), home / "hub" / "checkpoints" / "vgg16-397923af.pth")
    return home


@pytest.fixture
def torch_home(random_vgg: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(random_vgg))
    monkeypatch.setattr(_dists, "_networks", {})  # built afresh from this test's files
    return random_vgg


def _reference() -> torch.nn.Module:
    """The authors' network, which builds VGG-16 through torchvision's cache (here: the seeded checkpoint)."""
    with pytest.warns(UserWarning):  # their ``pretrained=True``, deprecated by torchvision
        network = dists_ref.DISTS(load_weights=False)
    weights = torch.load(_PACKAGED, map_location="cpu", weights_only=True)
    network.alpha.data, network.beta.data = weights["alpha"], weights["beta"]
    return network.eval()


def _pair(seed: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-50, 51, shape), 0, 255).astype(np.uint8)
    return a, b


def _unit(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]


@pytest.mark.slow
def test_the_maths_and_the_files_equal_the_authors_package(torch_home: Path) -> None:
    reference = _reference()
    assert core.METRICS["dists"].ready()  # the backbone in the cache, alpha / beta from the installed package
    for shape in ((64, 64, 3), (75, 90, 3)):  # odd sizes exercise the L2 pooling's padding
        a, b = _pair(shape[0], shape)
        with torch.inference_mode():
            theirs = float(reference(_unit(b), _unit(a)))
        ours = core.compute_metric("dists", a, b)
        assert 0 < theirs < 1 and ours == pytest.approx(theirs, rel=1e-5), (shape, ours, theirs)
    assert core.compute_metric("dists", a, a) == pytest.approx(0.0, abs=1e-6)  # identical images
    wide = a.astype(np.uint16) * 257
    assert core.compute_metric("dists", wide, b.astype(np.uint16) * 257) == pytest.approx(ours, rel=1e-5)
    assert core.score_images({"x": a}, b)["x"]["dists"] == pytest.approx(ours, rel=1e-6)
    with pytest.raises(ValueError, match="32x32"):
        core.compute_metric("dists", a[:20, :20], b[:20, :20])


def test_weights_dropped_into_the_weights_folder_come_first(torch_home: Path, weights_dir: Path) -> None:
    official = torch.load(_PACKAGED, map_location="cpu", weights_only=True)
    changed = {"alpha": official["alpha"], "beta": official["beta"] * 0}  # texture terms only
    (weights_dir / "metrics").mkdir(exist_ok=True)
    torch.save(changed, weights_dir / "metrics" / "dists_weights.pt")
    try:
        reference = _reference()
        reference.beta.data = reference.beta.data * 0
        a, b = _pair(3, (64, 64, 3))
        with torch.inference_mode():
            expected = float(reference(_unit(b), _unit(a)))
        assert core.compute_metric("dists", a, b) == pytest.approx(expected, rel=1e-5)
    finally:
        (weights_dir / "metrics" / "dists_weights.pt").unlink()


def test_without_the_backbone_the_message_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(_dists, "_networks", {})
    assert not core.METRICS["dists"].ready()
    a, b = _pair(4, (64, 64, 3))
    with pytest.raises(core.errors.WeightsMissingError, match=r"vgg16-397923af\.pth.*--download dists"):
        core.compute_metric("dists", a, b)
    assert "dists" not in core.score_images({"x": a}, b)["x"]


def test_downloads_keep_only_the_published_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(_dists, "_alpha_beta_file", lambda folder: (folder / "metrics" / "dists_weights.pt") if (
        folder / "metrics" / "dists_weights.pt").is_file() else None)  # as without the DISTS_pytorch package
    official = _PACKAGED.read_bytes()
    folder = tmp_path / "weights"
    with LoopbackServer({"/weights.pt": official, "/tampered.pt": official[:-1] + b"x",
                         "/vgg16-397923af.pth": b"not torchvision's file"}) as server:
        monkeypatch.setattr(_torchvision, "_source", lambda net: server.url + "/vgg16-397923af.pth")
        monkeypatch.setattr(_dists, "_URL", server.url + "/tampered.pt")
        with pytest.raises(core.errors.DownloadError, match="not the published one"):
            _dists.download_dists(weights_dir=folder)
        assert not list((folder / "metrics").iterdir())  # nothing kept, no partial file
        monkeypatch.setattr(_dists, "_URL", server.url + "/weights.pt")
        with pytest.raises(core.errors.DownloadError, match="not one starting 397923af"):
            _dists.download_dists(weights_dir=folder)
    assert (folder / "metrics" / "dists_weights.pt").read_bytes() == official
    assert not list((tmp_path / "torch" / "hub" / "checkpoints").iterdir())
