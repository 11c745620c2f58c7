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

import hashlib
import importlib.resources
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision

from .._download import fetch
from .._io import to_unit
from .._settings import default_weights_dir
from ..errors import DownloadError, WeightsMissingError
from ._pixel import check_pair
from ._registry import WeightsFile

__all__ = ["BACKBONES", "LpipsNet", "load_lpips", "lpips", "lpips_ready", "lpips_weights"]

_HEADS_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/{net}.pth"
_HEADS_SHA256 = {"alex": "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
                 "vgg": "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"}
_HEADS_SIZE = {"alex": 6009, "vgg": 7289}
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


@dataclass(frozen=True)
class Backbone:
    """A torchvision network cut into five stages after the layers ``cuts`` name (its ``features`` indices)."""

    build: str  # torchvision.models function
    weights: str  # torchvision weights enum member, e.g. "AlexNet_Weights.IMAGENET1K_V1"
    cuts: tuple[int, ...]
    channels: tuple[int, ...]
    sha256_prefix: str  # torchvision names its files with their sha256's first 8 hex digits, and checks them

    def enum(self):  # the torchvision weights entry
        family, member = self.weights.split(".")
        return getattr(getattr(torchvision.models, family), member)


BACKBONES = {
    "alex": Backbone("alexnet", "AlexNet_Weights.IMAGENET1K_V1", (2, 5, 8, 10, 12), (64, 192, 384, 256, 256),
                     "7be5be79"),
    "vgg": Backbone("vgg16", "VGG16_Weights.IMAGENET1K_V1", (4, 9, 16, 23, 30), (64, 128, 256, 512, 512),
                    "397923af"),
}


def lpips_weights(net: str) -> tuple[WeightsFile, ...]:
    """The files LPIPS-``net`` needs, for the registry (source, checksum, licence, size)."""
    backbone = BACKBONES[net]
    return (WeightsFile(f"lpips_v0.1_{net}.pth", _HEADS_URL.format(net=net), _HEADS_SHA256[net],
                        "BSD-2-Clause (LPIPS, Zhang et al.)", _HEADS_SIZE[net]),
            WeightsFile(Path(backbone.enum().url).name, backbone.enum().url, backbone.sha256_prefix,
                        "BSD-3-Clause (torchvision)", None))


class LpipsNet(torch.nn.Module):
    """The LPIPS network: ``forward(a, b)`` on ``(N, 3, H, W)`` in ``[0, 1]`` gives ``(N,)`` distances."""

    def __init__(self, net: str, backbone_state: dict[str, torch.Tensor], heads_state: dict[str, torch.Tensor]):
        super().__init__()
        spec = BACKBONES[net]
        features = getattr(torchvision.models, spec.build)(weights=None).features
        features.load_state_dict({k.removeprefix("features."): v for k, v in backbone_state.items()
                                  if k.startswith("features.")})
        starts = (0, *spec.cuts[:-1])
        self.stages = torch.nn.ModuleList(features[a:b] for a, b in zip(starts, spec.cuts))
        self.heads = torch.nn.ModuleList(torch.nn.Conv2d(c, 1, 1, bias=False) for c in spec.channels)
        for index, head in enumerate(self.heads):
            head.weight.data.copy_(heads_state[f"lin{index}.model.1.weight"])
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


def _backbone_url(net: str) -> str:
    return BACKBONES[net].enum().url


def _backbone_file(net: str) -> Path:
    """Where torchvision keeps the backbone's weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(BACKBONES[net].enum().url).name


def lpips_ready(net: str, weights_dir: Path | None = None) -> bool:
    """Whether LPIPS-``net`` can be computed without a download."""
    return _heads_file(net, weights_dir or default_weights_dir()) is not None and _backbone_file(net).is_file()


def _verified(url: str, target: Path, check: Callable[[str], bool], what: str,
              progress: Callable[[int, int | None], None] | None) -> None:
    """Fetch ``url`` into ``target`` atomically, keeping it only where ``check(sha256)`` holds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        fetch(url, part, progress=progress)
        digest = hashlib.sha256(part.read_bytes()).hexdigest()
        if not check(digest):
            raise DownloadError(f"{target.name} from {url} has sha256 {digest}, not {what}; nothing was kept.")
        part.replace(target)
    finally:
        part.unlink(missing_ok=True)


def download_lpips(net: str, progress: Callable[[int, int | None], None] | None = None,
                   weights_dir: Path | None = None) -> None:
    """Fetch what LPIPS-``net`` lacks: the linear heads into ``weights/metrics/``, the backbone into
    torchvision's cache.

    Raises:
        DownloadError: offline, or a file that is not the published one.
    """
    folder = weights_dir or default_weights_dir()
    if _heads_file(net, folder) is None:
        _verified(_HEADS_URL.format(net=net), folder / "metrics" / f"lpips_v0.1_{net}.pth",
                  lambda digest: digest == _HEADS_SHA256[net], "the published one", progress)
    target = _backbone_file(net)
    if not target.is_file():
        prefix = BACKBONES[net].sha256_prefix
        _verified(_backbone_url(net), target, lambda digest: digest.startswith(prefix),
                  f"one starting {prefix} (torchvision's)", progress)


def _heads_state(net: str, weights_dir: Path) -> dict[str, torch.Tensor]:
    found = _heads_file(net, weights_dir)
    if found is None:
        raise WeightsMissingError(f"LPIPS-{net} needs its linear heads, lpips_v0.1_{net}.pth: download them "
                                  f"(realesrgan-studio metrics --download lpips-{net}), put the file in "
                                  f"{weights_dir / 'metrics'}, or install the lpips package, which ships them.")
    return torch.load(found, map_location="cpu", weights_only=True)


def _backbone_state(net: str) -> dict[str, torch.Tensor]:
    cached = _backbone_file(net)
    if not cached.is_file():
        raise WeightsMissingError(f"LPIPS-{net} needs torchvision's ImageNet {BACKBONES[net].build} weights, "
                                  f"{cached.name}, in {cached.parent} (torchvision's cache, $TORCH_HOME): download "
                                  f"them (realesrgan-studio metrics --download lpips-{net}), or copy the file there.")
    return torch.load(cached, map_location="cpu", weights_only=True)


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
            network = LpipsNet(net, _backbone_state(net), _heads_state(net, folder))
            _networks[key] = network.to(device)
        return _networks[key]


def _tensor(image: np.ndarray) -> torch.Tensor:
    array = to_unit(image, np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)  # grey read as RGB
    return torch.from_numpy(np.ascontiguousarray(array[:, :, :3].transpose(2, 0, 1)))[None]


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
        return float(network(_tensor(image).to(device), _tensor(reference).to(device))[0])
