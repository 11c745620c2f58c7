"""CLIP-IQA (Wang, Chan and Loy, AAAI 2023): how much more an image resembles "Good photo." than
"Bad photo." to CLIP, with no training of its own.

The image (RGB in ``[0, 1]``, grey read as RGB, alpha dropped, 16-bit scaled, any size) is
normalised with CLIP's mean and deviation and embedded by CLIP RN50's image tower, whose attention
pool runs without its positional embedding (it fits 224x224 only). Each antonym pair of prompts is
embedded by the text tower; the score is the softmax, over the pair, of CLIP's scaled cosine
similarities, taken for the positive prompt and averaged over the pairs. Higher is better, in
``[0, 1]``.

Two prompt sets are registered:

* ``clipiqa``: the authors' pair, "Good photo." / "Bad photo." (as ``piq.CLIPIQA`` computes it);
* ``clipiqa-ensemble``: the five pairs pyiqa's ``clipiqa`` averages (good / bad image, sharp /
  blurry image, sharp / blurry edges, high / low resolution image, noise-free / noisy image), which
  is what super-resolution papers that score with pyiqa report. The values differ from ``clipiqa``.

Weights: OpenAI's published CLIP RN50 checkpoint (MIT), ``RN50.pt``, from ``weights/metrics/`` or
the caches other tools keep it in (``~/.cache/clip``, ``$TORCH_HOME/hub/clip``), else fetched on
request with its sha256 checked. The prompts are stored as CLIP BPE token ids (the test checks them
against CLIP's tokenizer), so no vocabulary is needed at run time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .._settings import default_weights_dir
from ..errors import WeightsMissingError
from ._clip import ClipRN50, clip_state_dict
from ._registry import WeightsFile
from ._torchvision import fetch_published, to_tensor

__all__ = ["PROMPTS", "clip_ready", "clip_weights", "clipiqa", "download_clip", "load_clipiqa"]

_SHA256 = "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762"
_URL = f"https://openaipublic.azureedge.net/clip/models/{_SHA256}/RN50.pt"
_FILE = "RN50.pt"
_MEAN = (0.48145466, 0.4578275, 0.40821073)
_STD = (0.26862954, 0.26130258, 0.27577711)
_START, _END = 49406, 49407

# positive / negative prompts, as CLIP BPE ids between the start and end tokens
PROMPTS: dict[str, tuple[tuple[str, tuple[int, ...]], ...]] = {
    "clipiqa": (("Good photo.", (886, 1125, 269)), ("Bad photo.", (2103, 1125, 269))),
    "clipiqa-ensemble": (
        ("Good image", (886, 2867)), ("bad image", (2103, 2867)),
        ("Sharp image", (8157, 2867)), ("blurry image", (21977, 2867)),
        ("sharp edges", (8157, 20938)), ("blurry edges", (21977, 20938)),
        ("High resolution image", (1400, 9977, 2867)), ("low resolution image", (1042, 9977, 2867)),
        ("Noise-free image", (9307, 268, 1139, 2867)), ("noisy image", (33495, 2867)),
    ),
}


def clip_weights() -> tuple[WeightsFile, ...]:
    """The file CLIP-IQA needs, for the registry (source, checksum, licence)."""
    return (WeightsFile(_FILE, _URL, _SHA256, "MIT (OpenAI CLIP)", None),)


def _found(weights_dir: Path) -> Path | None:
    """CLIP RN50 here: dropped into ``weights/metrics/``, else where openai-clip, piq or pyiqa keep it."""
    candidates = (weights_dir / "metrics" / _FILE, Path.home() / ".cache" / "clip" / _FILE,
                  Path(torch.hub.get_dir()) / "clip" / _FILE)
    return next((path for path in candidates if path.is_file()), None)


def clip_ready(weights_dir: Path | None = None) -> bool:
    """Whether CLIP-IQA can be computed without a download."""
    return _found(weights_dir or default_weights_dir()) is not None


def download_clip(progress: Callable[[int, int | None], None] | None = None, weights_dir: Path | None = None) -> None:
    """Fetch CLIP RN50 into ``weights/metrics/`` where it is not here.

    Raises:
        DownloadError: offline, or a file that is not the published one.
    """
    folder = weights_dir or default_weights_dir()
    if _found(folder) is None:
        fetch_published(_URL, folder / "metrics" / _FILE, _SHA256, progress)


class ClipIqa(torch.nn.Module):
    """CLIP-IQA with one prompt set: ``forward`` on ``(N, 3, H, W)`` in ``[0, 1]`` gives ``(N,)`` scores."""

    anchors: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, clip: ClipRN50, prompts: str):
        super().__init__()
        self.clip = clip
        pairs = PROMPTS[prompts]
        tokens = torch.zeros(len(pairs), max(len(ids) for _, ids in pairs) + 2, dtype=torch.long)
        for row, (_, ids) in enumerate(pairs):
            tokens[row, : len(ids) + 2] = torch.tensor([_START, *ids, _END])
        with torch.inference_mode():
            anchors = clip.encode_text(tokens)
        self.register_buffer("anchors", anchors / anchors.norm(dim=-1, keepdim=True))
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.clip.encode_image((image - self.mean) / self.std)
        features = features / features.norm(dim=-1, keepdim=True)
        logits = self.clip.logit_scale.exp() * features @ self.anchors.t()
        return logits.reshape(len(image), -1, 2).softmax(dim=-1)[..., 0].mean(dim=1)


_clips: dict[str, ClipRN50] = {}
_networks: dict[tuple[str, str], ClipIqa] = {}
_lock = threading.Lock()


def load_clipiqa(prompts: str = "clipiqa", device: str = "cpu", *, weights_dir: Path | None = None) -> ClipIqa:
    """CLIP-IQA with the ``prompts`` set on ``device``; CLIP is read once per process and device.

    Raises:
        WeightsMissingError: CLIP RN50 is not here, or the file is not CLIP RN50.
    """
    with _lock:
        if (prompts, device) not in _networks:
            if device not in _clips:
                folder = weights_dir or default_weights_dir()
                found = _found(folder)
                if found is None:
                    raise WeightsMissingError(
                        f"CLIP-IQA needs OpenAI's CLIP RN50 weights, {_FILE}: download them (realesrgan-studio metrics "
                        f"--download {prompts}) or put the file in {folder / 'metrics'}.")
                try:
                    _clips[device] = ClipRN50(clip_state_dict(found)).to(device)
                except ValueError as exc:
                    raise WeightsMissingError(f"{exc} Replace it with OpenAI's {_FILE}.") from exc
            _networks[prompts, device] = ClipIqa(_clips[device], prompts).to(device)
        return _networks[prompts, device]


def clipiqa(image: np.ndarray, *, prompts: str = "clipiqa", device: str = "cpu") -> float:
    """CLIP-IQA of ``image`` (``uint8`` / ``uint16`` HWC, any size of at least 32x32); higher is better.

    Raises:
        ValueError: an image under 32 px a side.
        WeightsMissingError: CLIP RN50 is not here.
    """
    if min(image.shape[:2]) < 32:
        raise ValueError("CLIP-IQA needs images of at least 32x32 pixels.")
    network = load_clipiqa(prompts, device)
    with torch.inference_mode():
        return float(network(to_tensor(image).to(device))[0])
