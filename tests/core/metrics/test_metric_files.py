"""Every weights file a learned metric reads (LPIPS heads, DISTS' alpha / beta, MUSIQ's checkpoint, torchvision
backbones) that is empty, cut short, not a PyTorch file, a list, or of the wrong shape is refused with its path
and what to do, never a traceback (issue 38.13)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import core
from cli.main import main
from core.metrics import _dists, _lpips, _musiq
from core.metrics._torchvision import backbone_file


def _torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


BAD: dict[str, Callable[[], bytes]] = {
    "empty": lambda: b"",
    "cut": lambda: _torch_bytes({"x": torch.zeros(1000)})[:300],
    "text": lambda: b"<html>404 Not Found</html>",
    "list": lambda: _torch_bytes([torch.zeros(3)]),
    "wrong shapes": lambda: _torch_bytes({"lin0.model.1.weight": torch.zeros(2, 2), "alpha": torch.zeros(5),
                                          "beta": torch.zeros(5), "features.0.weight": torch.zeros(1)}),
}
# (metric, which file is bad, every file it reads), the good ones an empty dict (never reached) or synthetic
FILES = {
    "lpips-alex heads": ("lpips-alex", lambda w: w / "metrics" / "lpips_v0.1_alex.pth"),
    "alexnet backbone": ("lpips-alex", lambda w: backbone_file("alex")),
    "dists alpha/beta": ("dists", lambda w: w / "metrics" / "dists_weights.pt"),
    "vgg16 backbone": ("dists", lambda w: backbone_file("vgg")),
    "musiq checkpoint": ("musiq", lambda w: w / "metrics" / "musiq_koniq_ckpt-e95806b9.pth"),
}


def _good(name: str, weights: Path) -> None:
    """The metric's other files, valid (synthetic, in the official formats), so only the bad one is refused."""
    torch.manual_seed(0)
    if name == "lpips-alex heads":
        import torchvision
        torch.save(torchvision.models.alexnet(weights=None).state_dict(), backbone_file("alex"))
    if name == "alexnet backbone":
        torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))},
                   weights / "metrics" / "lpips_v0.1_alex.pth")
    if name == "vgg16 backbone":
        torch.save({"alpha": torch.rand(1, 1475, 1, 1), "beta": torch.rand(1, 1475, 1, 1)},
                   weights / "metrics" / "dists_weights.pt")
    if name == "dists alpha/beta":
        import torchvision
        torch.save(torchvision.models.vgg16(weights=None).state_dict(), backbone_file("vgg"))


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    weights = tmp_path / "weights"
    (weights / "metrics").mkdir(parents=True)
    monkeypatch.setenv("STUDIO_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    for module in (_lpips, _dists, _musiq):
        monkeypatch.setattr(module, "_networks", {})
    monkeypatch.setattr(_lpips, "_heads_file", lambda net, folder: (folder / "metrics" / f"lpips_v0.1_{net}.pth")
                        if (folder / "metrics" / f"lpips_v0.1_{net}.pth").is_file() else None)  # no lpips package
    monkeypatch.setattr(_dists, "_alpha_beta_file", lambda folder: (folder / "metrics" / "dists_weights.pt")
                        if (folder / "metrics" / "dists_weights.pt").is_file() else None)
    return weights


@pytest.mark.parametrize("kind", list(BAD))
@pytest.mark.parametrize("name", list(FILES))
def test_a_bad_metric_weights_file_is_refused_with_its_path(places: Path, name: str, kind: str) -> None:
    metric, where = FILES[name]
    path = where(places)
    path.write_bytes(BAD[kind]())
    _good(name, places)
    image = core.load_sample("chelsea")[:64, :64]
    with pytest.raises(core.errors.WeightsMissingError) as caught:
        core.compute_metric(metric, image, image if metric != "musiq" else None)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message, message
    assert "Delete it" in message or "Replace it" in message, message


@pytest.mark.slow
def test_the_cli_says_it_in_one_line(places: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = places / "metrics" / "dists_weights.pt"
    path.write_bytes(b"")
    _good("dists alpha/beta", places)
    image = tmp_path / "a.png"
    core.write_png(image, core.load_sample("chelsea")[:64, :64])
    code = main(["compare", str(image), "--reference", str(image), "--methods", "bicubic", "--metrics", "dists",
                 "-o", str(tmp_path / "page.html")])
    err = capsys.readouterr().err
    assert code != 0 and f"{path} is empty (0 bytes)" in err and "Traceback" not in err, err
