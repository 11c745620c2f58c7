"""DISTS (Ding et al., TPAMI 2020), computed as the authors' ``DISTS_pytorch`` package computes it.

Both images, RGB in ``[0, 1]`` (grey read as RGB, alpha dropped, 16-bit scaled), are normalised with
ImageNet's mean and deviation and go through VGG-16 (torchvision's weights) whose max-pools are
replaced by L2 pooling (a 3x3 Hann window, stride 2, on the squared features). At the image itself
and after each of the five stages, every channel's global mean and (co)variance give a texture term
``(2 mu_x mu_y + c) / (mu_x^2 + mu_y^2 + c)`` and a structure term ``(2 cov + c) / (var_x + var_y + c)``
(``c = 1e-6``), weighted by the learned ``alpha`` and ``beta`` (normalised to sum to one together);
DISTS is one minus their sum. Lower is better; identical images give 0.

Weights, nothing at import time: ``alpha`` / ``beta`` from ``weights/metrics/dists_weights.pt`` (the
authors' ``weights.pt``), else the copy the ``DISTS_pytorch`` package (MIT) installs, in its own folder
or in the environment's root, where its wheel puts it; else fetched on request with the sha256
checked. The backbone goes through torchvision's cache (:mod:`core.metrics._torchvision`).
"""

from __future__ import annotations

import importlib.util
import sys
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
    download_backbone,
    fetch_published,
    read_weights,
    refuse_weights,
    to_tensor,
)

__all__ = ["DistsNet", "dists", "dists_ready", "dists_weights", "download_dists", "load_dists"]

_URL = "https://github.com/dingkeyan93/DISTS/raw/master/DISTS_pytorch/weights.pt"
_SHA256 = "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218"  # as DISTS_pytorch 0.1 ships it
_SIZE = 12288
_FILE = "dists_weights.pt"
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
# VGG-16 ``features`` ranges of the five stages; the max-pool between two stages becomes an L2 pool
_STAGES = ((0, 4), (5, 9), (10, 16), (17, 23), (24, 30))
_CHANNELS = (3, 64, 128, 256, 512, 512)
_C = 1e-6


def dists_weights() -> tuple[WeightsFile, ...]:
    """The files DISTS needs, for the registry (source, checksum, licence, size)."""
    return (WeightsFile(_FILE, _URL, _SHA256, "MIT (DISTS, Ding et al.)", _SIZE), backbone_weights("vgg"))


class _L2Pool(torch.nn.Module):
    """``sqrt(hann3x3 * x^2 + 1e-12)`` per channel, stride 2: the pooling DISTS uses instead of max-pooling."""

    kernel: torch.Tensor

    def __init__(self, channels: int):
        super().__init__()
        window = torch.from_numpy(np.hanning(5)[1:-1]).float()
        kernel = window[:, None] * window[None, :]
        self.register_buffer("kernel", (kernel / kernel.sum()).expand(channels, 1, 3, 3).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.nn.functional.conv2d(x * x, self.kernel, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


class DistsNet(torch.nn.Module):
    """The DISTS network: ``forward(a, b)`` on ``(N, 3, H, W)`` in ``[0, 1]`` gives ``(N,)`` distances."""

    alpha: torch.Tensor
    beta: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, backbone_state: dict[str, torch.Tensor], alpha_beta: dict[str, torch.Tensor]):
        super().__init__()
        features = BACKBONES["vgg"].features(backbone_state)
        stages = [features[a:b] for a, b in _STAGES]
        self.stages = torch.nn.ModuleList(
            [stages[0]] + [torch.nn.Sequential(_L2Pool(c), s) for c, s in zip(_CHANNELS[1:], stages[1:])])
        total = alpha_beta["alpha"].sum() + alpha_beta["beta"].sum()
        self.register_buffer("alpha", (alpha_beta["alpha"] / total).reshape(-1).float())
        self.register_buffer("beta", (alpha_beta["beta"] / total).reshape(-1).float())
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def _features(self, image: torch.Tensor) -> list[torch.Tensor]:
        out, h = [image], (image - self.mean) / self.std
        for stage in self.stages:
            h = stage(h)
            out.append(h)
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        texture = structure = torch.zeros(a.shape[0], device=a.device)
        alphas, betas = self.alpha.split(_CHANNELS), self.beta.split(_CHANNELS)
        for fa, fb, alpha, beta in zip(self._features(a), self._features(b), alphas, betas):
            mean_a, mean_b = fa.mean((2, 3)), fb.mean((2, 3))
            var_a = ((fa - mean_a[..., None, None]) ** 2).mean((2, 3))
            var_b = ((fb - mean_b[..., None, None]) ** 2).mean((2, 3))
            cov = (fa * fb).mean((2, 3)) - mean_a * mean_b
            s1 = (2 * mean_a * mean_b + _C) / (mean_a ** 2 + mean_b ** 2 + _C)
            s2 = (2 * cov + _C) / (var_a + var_b + _C)
            texture = texture + (s1 * alpha).sum(1)
            structure = structure + (s2 * beta).sum(1)
        return 1 - (texture + structure)


def _alpha_beta_file(weights_dir: Path) -> Path | None:
    """``alpha`` / ``beta`` here: dropped into ``weights/metrics/``, else where ``DISTS_pytorch`` installed them."""
    candidates = [weights_dir / "metrics" / _FILE]
    spec = importlib.util.find_spec("DISTS_pytorch")
    if spec is not None and spec.origin:
        candidates += [Path(spec.origin).parent / "weights.pt", Path(sys.prefix) / "weights.pt"]
    return next((path for path in candidates if path.is_file()), None)


def dists_ready(weights_dir: Path | None = None) -> bool:
    """Whether DISTS can be computed without a download."""
    return _alpha_beta_file(weights_dir or default_weights_dir()) is not None and backbone_file("vgg").is_file()


def download_dists(progress: Callable[[int, int | None], None] | None = None, weights_dir: Path | None = None) -> None:
    """Fetch what DISTS lacks: ``alpha`` / ``beta`` into ``weights/metrics/``, VGG-16 into torchvision's cache.

    Raises:
        DownloadError: offline, or a file that is not the published one.
    """
    folder = weights_dir or default_weights_dir()
    if _alpha_beta_file(folder) is None:
        fetch_published(_URL, folder / "metrics" / _FILE, _SHA256, progress)
    download_backbone("vgg", progress)


def _alpha_beta(weights_dir: Path) -> dict[str, torch.Tensor]:
    found = _alpha_beta_file(weights_dir)
    if found is None:
        raise WeightsMissingError(f"DISTS needs its learned weights, {_FILE} (the authors' weights.pt): download them "
                                  f"(realesrgan-studio metrics --download dists), put the file in "
                                  f"{weights_dir / 'metrics'}, or install the DISTS_pytorch package, which ships them.")
    fix = ("Delete it, and download it again (realesrgan-studio metrics --download dists) or put the authors' "
           f"weights.pt there as {_FILE}.")
    state = read_weights(found, fix)
    for name in ("alpha", "beta"):
        if name not in state:
            refuse_weights(found, f"is not DISTS' weights: it has no {name}", fix)
        if state[name].numel() != sum(_CHANNELS):
            refuse_weights(found, f"is not DISTS' weights: {name} has {state[name].numel()} values, not "
                                  f"{sum(_CHANNELS)}", fix)
    return state


_networks: dict[str, DistsNet] = {}
_lock = threading.Lock()


def load_dists(device: str = "cpu", *, weights_dir: Path | None = None) -> DistsNet:
    """DISTS on ``device``, built once per process and device.

    Raises:
        WeightsMissingError: a file is missing (the message names it and where it goes).
    """
    with _lock:
        if device not in _networks:
            alpha_beta = _alpha_beta(weights_dir or default_weights_dir())
            network = DistsNet(backbone_state("vgg", "DISTS", "dists"), alpha_beta)
            _networks[device] = network.to(device)
        return _networks[device]


def dists(image: np.ndarray, reference: np.ndarray, *, device: str = "cpu") -> float:
    """DISTS of ``image`` against ``reference`` (same shape; ``uint8`` / ``uint16`` HWC); lower is better.

    Raises:
        ValueError: other shapes, or an image under 32 px a side.
        WeightsMissingError: the network's files are not here.
    """
    check_pair(image, reference)
    if min(image.shape[:2]) < 32:
        raise ValueError("DISTS needs images of at least 32x32 pixels.")
    network = load_dists(device)
    with torch.inference_mode():
        return float(network(to_tensor(image).to(device), to_tensor(reference).to(device))[0])
