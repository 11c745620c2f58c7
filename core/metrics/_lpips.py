"""LPIPS v0.1 (Zhang et al., CVPR 2018), computed as the authors' ``lpips`` package computes it.

Both images, RGB in ``[0, 1]`` (grey read as RGB, alpha dropped, 16-bit scaled), are mapped to
``[-1, 1]`` and shifted and scaled per channel (the package's ``ScalingLayer``). They then go
through an ImageNet backbone (AlexNet or VGG-16, torchvision's weights), cut after five ReLU
stages. Each stage's features are divided by their channel-wise L2 norm (+1e-10); the squared
difference goes through the stage's learned 1x1 linear head, is averaged over the image, and the
five values are summed. Lower is better; identical images give 0.

Weights, nothing at import time:

* the linear heads: a file dropped into ``weights/metrics/`` (the official name, e.g.
  ``lpips_v0.1_alex.pth``), else the copy the ``lpips`` package ships (BSD-2-Clause), else the
  authors' file, fetched on request with its sha256 checked;
* the backbone: torchvision's own weights API and cache (``$TORCH_HOME``), so a user who already has
  them downloads nothing; fetched on request, else an error names the file and where it goes.
"""

from __future__ import annotations

import importlib.resources
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .._settings import default_weights_dir
from ..errors import WeightsMissingError
from ._pixel import check_pair
from ._registry import WeightsFile
from ._torchvision import (
    BACKBONES,
    backbone_file,
    backbone_state,
    backbone_weights,
    check_tensors,
    download_backbone,
    fetch_published,
    read_weights,
    to_tensor,
)

__all__ = ["LpipsNet", "download_lpips", "load_lpips", "lpips", "lpips_ready", "lpips_weights"]

_HEADS_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/{net}.pth"
_HEADS_SHA256 = {"alex": "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
                 "vgg": "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"}
_HEADS_SIZE = {"alex": 6009, "vgg": 7289}
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# the backbone's ``features`` indices the five stages end at, and their channels
_CUTS = {"alex": (2, 5, 8, 10, 12), "vgg": (4, 9, 16, 23, 30)}
_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}


def lpips_weights(net: str) -> tuple[WeightsFile, ...]:
    """The files LPIPS-``net`` needs, for the registry (source, checksum, licence, size)."""
    return (WeightsFile(f"lpips_v0.1_{net}.pth", _HEADS_URL.format(net=net), _HEADS_SHA256[net],
                        "BSD-2-Clause (LPIPS, Zhang et al.)", _HEADS_SIZE[net]),
            backbone_weights(net))


class LpipsNet(torch.nn.Module):
    """The LPIPS network: ``forward(a, b)`` on ``(N, 3, H, W)`` in ``[0, 1]`` gives ``(N,)`` distances."""

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, net: str, backbone_state: dict[str, torch.Tensor], heads_state: dict[str, torch.Tensor]):
        super().__init__()
        features = BACKBONES[net].features(backbone_state)
        cuts = _CUTS[net]
        self.stages = torch.nn.ModuleList(features[a:b] for a, b in zip((0, *cuts[:-1]), cuts))
        heads = [torch.nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS[net]]
        for index, head in enumerate(heads):
            head.weight.data.copy_(heads_state[f"lin{index}.model.1.weight"])
        self.heads = torch.nn.ModuleList(heads)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def _features(self, image: torch.Tensor) -> list[torch.Tensor]:
        h = (2 * image - 1 - self.shift) / self.scale
        out = []
        for stage in self.stages:
            h = stage(h)
            out.append(h / (h.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(a.shape[0], device=a.device)
        for head, fa, fb in zip(self.heads, self._features(a), self._features(b)):
            total = total + head((fa - fb).pow(2)).mean(dim=(1, 2, 3))
        return total


def _heads_file(net: str, weights_dir: Path) -> Path | None:
    """The linear heads here: dropped into ``weights/metrics/``, else the ``lpips`` package's copy."""
    dropped = weights_dir / "metrics" / f"lpips_v0.1_{net}.pth"
    if dropped.is_file():
        return dropped
    try:
        packaged = Path(str(importlib.resources.files("lpips") / "weights" / "v0.1" / f"{net}.pth"))
    except ModuleNotFoundError:
        return None
    return packaged if packaged.is_file() else None


def lpips_ready(net: str, weights_dir: Path | None = None) -> bool:
    """Whether LPIPS-``net`` can be computed without a download."""
    return _heads_file(net, weights_dir or default_weights_dir()) is not None and backbone_file(net).is_file()


def download_lpips(net: str, progress: Callable[[int, int | None], None] | None = None,
                   weights_dir: Path | None = None) -> None:
    """Fetch what LPIPS-``net`` lacks: the linear heads into ``weights/metrics/``, the backbone into
    torchvision's cache.

    Raises:
        DownloadError: offline, or a file that is not the published one.
    """
    folder = weights_dir or default_weights_dir()
    if _heads_file(net, folder) is None:
        fetch_published(_HEADS_URL.format(net=net), folder / "metrics" / f"lpips_v0.1_{net}.pth", _HEADS_SHA256[net],
                        progress)
    download_backbone(net, progress)


def _heads_state(net: str, weights_dir: Path) -> dict[str, torch.Tensor]:
    found = _heads_file(net, weights_dir)
    if found is None:
        raise WeightsMissingError(f"LPIPS-{net} needs its linear heads, lpips_v0.1_{net}.pth: download them "
                                  f"(realesrgan-studio metrics --download lpips-{net}), put the file in "
                                  f"{weights_dir / 'metrics'}, or install the lpips package, which ships them.")
    fix = (f"Delete it, and download the heads again (realesrgan-studio metrics --download lpips-{net}) or put "
           f"the authors' lpips_v0.1_{net}.pth there.")
    state = read_weights(found, fix)
    shapes = {f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate(_CHANNELS[net])}
    check_tensors(found, state, shapes, f"the LPIPS-{net} heads", fix)
    return state


_networks: dict[tuple[str, str], LpipsNet] = {}
_lock = threading.Lock()


def load_lpips(net: str, device: str = "cpu", *, weights_dir: Path | None = None) -> LpipsNet:
    """LPIPS-``net`` on ``device``, built once per process and device.

    Raises:
        WeightsMissingError: a file is missing (the message names it and where it goes).
    """
    with _lock:
        key = (net, device)
        if key not in _networks:
            folder = weights_dir or default_weights_dir()
            state = backbone_state(net, f"LPIPS-{net}", f"lpips-{net}")
            network = LpipsNet(net, state, _heads_state(net, folder))
            _networks[key] = network.to(device)
        return _networks[key]


def lpips(image: np.ndarray, reference: np.ndarray, *, net: str = "alex", device: str = "cpu") -> float:
    """LPIPS v0.1 of ``image`` against ``reference`` (same shape; ``uint8`` / ``uint16`` HWC); lower is better.

    Raises:
        ValueError: other shapes, or an image too small for the backbone (under 32 px a side).
        WeightsMissingError: the network's files are not here.
    """
    check_pair(image, reference)
    if min(image.shape[:2]) < 32:
        raise ValueError("LPIPS needs images of at least 32x32 pixels.")
    network = load_lpips(net, device)
    with torch.inference_mode():
        return float(network(to_tensor(image).to(device), to_tensor(reference).to(device))[0])
