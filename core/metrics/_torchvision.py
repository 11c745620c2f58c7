"""ImageNet backbones of learned metrics, through torchvision's own weights API and cache.

A user who already has torchvision's file in ``$TORCH_HOME/hub/checkpoints`` downloads nothing; the
file is fetched on request (its sha256 checked against the 8 hex digits torchvision puts in its
name), and where it is missing the error names the file and where it goes. Shared by LPIPS and DISTS.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision

from .._download import fetch
from .._io import to_unit
from .._settings import default_weights_dir
from ..errors import DownloadError, WeightsMissingError
from ._registry import WeightsFile

__all__ = ["BACKBONES", "Backbone", "backbone_file", "backbone_state", "backbone_weights", "download_backbone",
           "check_tensors", "fetch_published", "read_weights", "refuse_weights", "to_tensor", "verified_fetch",
           "weights_folder"]

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Backbone:
    """A torchvision network, and the sha256 prefix torchvision names its file with and checks."""

    build: str  # torchvision.models function
    weights: str  # torchvision weights enum member, e.g. "AlexNet_Weights.IMAGENET1K_V1"
    sha256_prefix: str

    @property
    def url(self) -> str:
        family, member = self.weights.split(".")
        return getattr(getattr(torchvision.models, family), member).url

    def features(self, state: dict[str, torch.Tensor], source: Path | None = None) -> torch.nn.Sequential:
        """The network's ``features`` part, with the weights of a torchvision checkpoint (read from ``source``).

        Raises:
            WeightsMissingError: the checkpoint lacks a tensor of the network, or has one of another shape.
        """
        features = getattr(torchvision.models, self.build)(weights=None).features
        try:
            features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()
                                      if k.startswith("features.")})
        except RuntimeError as exc:
            where = source or Path(torch.hub.get_dir()) / "checkpoints" / Path(self.url).name
            problem = " ".join(line.strip() for line in str(exc).splitlines()[1:2]) or str(exc)
            refuse_weights(where, f"is not torchvision's {self.build} checkpoint ({problem[:200]})",
                           f"Delete it, and download it again (realesrgan-studio metrics --download) or copy "
                           f"torchvision's {where.name} there.")
        return features


BACKBONES = {
    "alex": Backbone("alexnet", "AlexNet_Weights.IMAGENET1K_V1", "7be5be79"),
    "vgg": Backbone("vgg16", "VGG16_Weights.IMAGENET1K_V1", "397923af"),
}


def backbone_weights(net: str) -> WeightsFile:
    """Torchvision's file of backbone ``net``, for the registry."""
    backbone = BACKBONES[net]
    return WeightsFile(Path(backbone.url).name, backbone.url, backbone.sha256_prefix, "BSD-3-Clause (torchvision)",
                       None)


def backbone_file(net: str) -> Path:
    """Where torchvision keeps backbone ``net`` (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(BACKBONES[net].url).name


def weights_folder(file: WeightsFile) -> Path | None:
    """Where a metric's ``file`` goes when fetched by hand: torchvision's cache for an ImageNet backbone, else
    ``weights/metrics/``; ``None`` for a file another package fetches itself (pyiqa's)."""
    if not file.sha256:
        return None
    if any(Path(b.url).name == file.name for b in BACKBONES.values()):
        return Path(torch.hub.get_dir()) / "checkpoints"
    return default_weights_dir() / "metrics"


def backbone_state(net: str, metric: str, download: str) -> dict[str, torch.Tensor]:
    """The checkpoint of backbone ``net``.

    Raises:
        WeightsMissingError: not in the cache; names the file, the folder, and ``metrics --download DOWNLOAD``.
    """
    cached = backbone_file(net)
    if not cached.is_file():
        raise WeightsMissingError(f"{metric} needs torchvision's ImageNet {BACKBONES[net].build} weights, "
                                  f"{cached.name}, in {cached.parent} (torchvision's cache, $TORCH_HOME): download "
                                  f"them (realesrgan-studio metrics --download {download}), or copy the file there.")
    return read_weights(cached, f"Delete it, and download it again (realesrgan-studio metrics --download {download}) "
                                f"or copy torchvision's {cached.name} there.")


def refuse_weights(path: Path, problem: str, fix: str) -> None:
    """Raise the one-line refusal of a metric's weights file: its path, what is wrong, what to do."""
    raise WeightsMissingError(f"{path} {problem}. {fix}")


def read_weights(path: Path, fix: str) -> dict[str, torch.Tensor]:
    """The tensors of a metric's ``.pth`` / ``.pt`` file, read with PyTorch's restricted unpickler (data, never
    code), refused with its path and ``fix`` where it is empty, cut, not a PyTorch file or not a dict of tensors.

    Raises:
        WeightsMissingError: the file cannot be used.
    """
    if path.stat().st_size == 0:
        refuse_weights(path, "is empty (0 bytes), an interrupted copy or download", fix)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the restricted unpickler and the zip reader raise many kinds
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160] or type(exc).__name__
        refuse_weights(path, f"is not a PyTorch weights file, or is cut short ({first})", fix)
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        kind = type(state).__name__ if not isinstance(state, dict) else "dict holding other things than tensors"
        refuse_weights(path, f"holds a {kind}, not the weights (a dict of tensors)", fix)
    return state


def check_tensors(path: Path, state: dict[str, torch.Tensor], shapes: Mapping[str, tuple[int, ...]], what: str,
                  fix: str) -> None:
    """Refuse ``state`` (read from ``path``) unless it has every tensor of ``shapes`` in that shape."""
    for name, shape in shapes.items():
        if name not in state:
            refuse_weights(path, f"is not {what}: it has no {name}", fix)
        if tuple(state[name].shape) != shape:
            refuse_weights(path, f"is not {what}: {name} has shape {tuple(state[name].shape)}, not {shape}", fix)


def verified_fetch(url: str, target: Path, check: Callable[[str], bool], what: str, progress: Progress | None) -> None:
    """Fetch ``url`` into ``target`` atomically, keeping it only where ``check(sha256)`` holds.

    Raises:
        DownloadError: offline, or a file whose checksum is not ``what``.
    """
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


def fetch_published(url: str, target: Path, sha256: str, progress: Progress | None) -> None:
    """Fetch ``url`` into ``target``, kept only where its sha256 is the published ``sha256``."""
    verified_fetch(url, target, lambda digest: digest == sha256, "the published one", progress)


def _source(net: str) -> str:
    return BACKBONES[net].url


def download_backbone(net: str, progress: Progress | None = None) -> None:
    """Fetch backbone ``net`` into torchvision's cache where it is not there."""
    target = backbone_file(net)
    if not target.is_file():
        prefix = BACKBONES[net].sha256_prefix
        verified_fetch(_source(net), target, lambda digest: digest.startswith(prefix),
                       f"one starting {prefix} (torchvision's)", progress)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """A ``uint8`` / ``uint16`` HWC image as ``(1, 3, H, W)`` float32 in ``[0, 1]``: grey read as RGB, alpha dropped."""
    array = to_unit(image, np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(array[:, :, :3].transpose(2, 0, 1)))[None]
