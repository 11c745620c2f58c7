"""MUSIQ (Ke, Wang, Wang, Milanfar and Yang, ICCV 2021): a multi-scale image quality transformer, with
the authors' checkpoints (KonIQ-10k, what papers report, and SPAQ, PaQ-2-PiQ, AVA), as their code
(google-research ``musiq``, JAX / Flax and TensorFlow) computes it.

Preprocessing, as the authors' ``preprocessing.py``: the image (RGB, grey read as RGB, alpha dropped,
16-bit scaled) goes to ``[-1, 1]``; besides the image itself, two copies are made whose longer side is
224 and 384 px (aspect ratio kept, sizes rounded), resampled with TensorFlow's Gaussian kernel
(``tf.image.resize(method="gaussian")``, no antialiasing). Each of the three is cut into 32x32 patches
('SAME' zero padding, centred); a patch carries the index of its place on a 10x10 grid (nearest-neighbour
hashing of its row and column) and of its scale (0, 1, 2 from the smallest).

Network, as the authors' ``multiscale_transformer.py``: each patch goes through a ResNet stem
(weight-standardised 7x7 convolution, GroupNorm, 3x3 max-pool, one bottleneck unit) to an 8x8x256 map,
flattened and projected to 384; hashed spatial and scale embeddings are added, a class token prepended,
and 14 pre-norm transformer layers (6 heads, MLP 1152, tanh-GELU) follow; a dense head on the class
token gives the predicted mean opinion score (higher is better, about 0-100; AVA's head gives a distribution
over 1-10, whose mean is the score). The authors pad each resized
scale's patch sequence to a fixed length and mask the padding out of attention; padded tokens change
nothing the class token sees, so they are not built here.

Weights: the authors' checkpoint (``koniq_ckpt.npz``, ...: their flat Flax names under ``opt/target/``),
dropped into ``weights/metrics/``; or pyiqa's PyTorch conversion of the same checkpoint
(``musiq_koniq_ckpt-e95806b9.pth``, ...), which is what a download fetches, its sha256 checked (the authors
publish none for their ``.npz``). Both are read into the same tensors and give the same numbers.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as func

from .._settings import default_weights_dir
from ..errors import WeightsMissingError
from ._registry import WeightsFile
from ._torchvision import fetch_published, to_tensor, verified_fetch

__all__ = ["CHECKPOINTS", "Checkpoint", "Musiq", "download_musiq", "gaussian_resize", "load_musiq", "musiq",
           "musiq_ready", "musiq_tokens", "musiq_weights", "official_shapes", "read_musiq_checkpoint"]

_PTH_URL = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/{}"
_NPZ_URL = "https://storage.googleapis.com/gresearch/musiq/{}"
_LICENCE = ("Apache-2.0, the licence of the google-research repository that publishes the MUSIQ checkpoints "
            "(Ke et al. 2021; the checkpoints name no other)")

PATCH, GRID, SCALES = 32, 10, (224, 384)
_HIDDEN, _LAYERS, _HEADS, _MLP, _STEM = 384, 14, 6, 1152, 64


@dataclass(frozen=True)
class Checkpoint:
    """One of the authors' published MUSIQ checkpoints: the data set it learned, its files and what it predicts.

    ``sha256``: of pyiqa's ``.pth`` conversion, whole where known, else the 8 hex digits its name carries (checked
    all the same). ``classes``: 1 for a mean opinion score; 10 for AVA, whose score is the mean of the predicted
    distribution over 1-10, as the authors' ``run_predict_image.py`` computes it.
    """

    dataset: str
    title: str
    pth: str
    sha256: str
    size: int | None
    value_range: tuple[float, float]
    classes: int = 1

    @property
    def metric(self) -> str:
        return "musiq" if self.dataset == "koniq" else f"musiq-{self.dataset}"

    @property
    def npz(self) -> str:
        return f"{self.dataset}_ckpt.npz"


CHECKPOINTS = {c.dataset: c for c in (
    Checkpoint("koniq", "KonIQ-10k", "musiq_koniq_ckpt-e95806b9.pth",
               "e95806b9eae5f3814c410f574ba8e552362bd5bc63d758ed5b97860f5d6185aa", 108_610_983, (0.0, 100.0)),
    Checkpoint("spaq", "SPAQ", "musiq_spaq_ckpt-358bb6af.pth", "358bb6af", None, (0.0, 100.0)),
    Checkpoint("paq2piq", "PaQ-2-PiQ", "musiq_paq2piq_ckpt-364c0c84.pth", "364c0c84", None, (0.0, 100.0)),
    Checkpoint("ava", "AVA (aesthetics)", "musiq_ava_ckpt-e8d3f067.pth", "e8d3f067", None, (1.0, 10.0), classes=10),
)}


def musiq_weights(dataset: str = "koniq") -> tuple[WeightsFile, ...]:
    """The file a download fetches (pyiqa's conversion of the authors' checkpoint); the authors' ``.npz`` is read
    instead where it is in ``weights/metrics/``."""
    c = CHECKPOINTS[dataset]
    return (WeightsFile(c.pth, _PTH_URL.format(c.pth), c.sha256, _LICENCE + "; converted to PyTorch by pyiqa",
                        c.size),)


def official_shapes(num_classes: int = 1) -> dict[str, tuple[int, ...]]:
    """Every parameter of the authors' model: its flat Flax name (without ``opt/target/``) and shape."""
    shapes: dict[str, tuple[int, ...]] = {"conv_root/kernel": (7, 7, 3, _STEM),  # GroupNorm's are (1, 1, 1, C)
                                          "gn_root/scale": (1, 1, 1, _STEM), "gn_root/bias": (1, 1, 1, _STEM)}
    unit = "block1/unit1/"
    for conv, shape in (("conv_proj", (1, 1, _STEM, 4 * _STEM)), ("conv1", (1, 1, _STEM, _STEM)),
                        ("conv2", (3, 3, _STEM, _STEM)), ("conv3", (1, 1, _STEM, 4 * _STEM))):
        shapes[unit + conv + "/kernel"] = shape
        norm = unit + conv.replace("conv", "gn")
        shapes[norm + "/scale"] = shapes[norm + "/bias"] = (1, 1, 1, shape[-1])
    shapes |= {"embedding/kernel": (4 * _STEM * (PATCH // 4) ** 2, _HIDDEN), "embedding/bias": (_HIDDEN,),
               "Transformer/posembed_input/pos_embedding": (1, GRID * GRID, _HIDDEN),
               "Transformer/scaleembed_input/scale_embedding": (1, len(SCALES) + 1, _HIDDEN),
               "Transformer/cls": (1, 1, _HIDDEN),
               "Transformer/encoder_norm/scale": (_HIDDEN,), "Transformer/encoder_norm/bias": (_HIDDEN,),
               "head/kernel": (_HIDDEN, num_classes), "head/bias": (num_classes,)}
    depth = _HIDDEN // _HEADS
    for layer in range(_LAYERS):
        block = f"Transformer/encoderblock_{layer}/"
        for norm in ("LayerNorm_0", "LayerNorm_2"):
            shapes[f"{block}{norm}/scale"] = shapes[f"{block}{norm}/bias"] = (_HIDDEN,)
        for name in ("query", "key", "value"):
            shapes[f"{block}MultiHeadDotProductAttention_1/{name}/kernel"] = (_HIDDEN, _HEADS, depth)
            shapes[f"{block}MultiHeadDotProductAttention_1/{name}/bias"] = (_HEADS, depth)
        shapes[f"{block}MultiHeadDotProductAttention_1/out/kernel"] = (_HEADS, depth, _HIDDEN)
        shapes[f"{block}MultiHeadDotProductAttention_1/out/bias"] = (_HIDDEN,)
        shapes[f"{block}MlpBlock_3/Dense_0/kernel"] = (_HIDDEN, _MLP)
        shapes[f"{block}MlpBlock_3/Dense_0/bias"] = (_MLP,)
        shapes[f"{block}MlpBlock_3/Dense_1/kernel"] = (_MLP, _HIDDEN)
        shapes[f"{block}MlpBlock_3/Dense_1/bias"] = (_HIDDEN,)
    return shapes


_RENAMES = (("block1/", "block1/unit1/"), ("/norm1", "/LayerNorm_0"), ("/norm2", "/LayerNorm_2"),
            ("/attention", "/MultiHeadDotProductAttention_1"), ("/mlp/fc1", "/MlpBlock_3/Dense_0"),
            ("/mlp/fc2", "/MlpBlock_3/Dense_1"))
_NORMS = ("gn_root", "/gn", "LayerNorm_", "encoder_norm")


def _from_pyiqa(state: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """pyiqa's PyTorch names and layouts (``musiq_arch.MUSIQ``) back to the authors' flat Flax names and layouts."""
    out: dict[str, np.ndarray] = {}
    depth = _HIDDEN // _HEADS
    for key, tensor in state.items():
        value = tensor.detach().float().cpu().numpy()
        key = key.removeprefix("module.")  # saved from a DataParallel model, as pyiqa's loader allows
        encoder = key.startswith("transformer_encoder.")
        path, _, leaf = key.removeprefix("transformer_encoder.").replace("head.0.", "head.").rpartition(".")
        path = path.replace("transformer.encoderblock_", "encoderblock_").replace(".", "/")
        for old, new in _RENAMES:
            path = path.replace(old, new)
        path = f"Transformer/{path or leaf}" if encoder else path
        if leaf == "position_emb":
            out["Transformer/posembed_input/pos_embedding"] = value
        elif leaf == "scale_emb":
            out["Transformer/scaleembed_input/scale_embedding"] = value[None]
        elif leaf == "cls":
            out["Transformer/cls"] = value
        elif value.ndim == 4:  # convolution (out, in, kh, kw) -> (kh, kw, in, out)
            out[f"{path}/kernel"] = value.transpose(2, 3, 1, 0)
        elif any(norm in path for norm in _NORMS):
            group_norm = path.startswith(("gn_root", "block1"))  # Flax keeps GroupNorm's as (1, 1, 1, C)
            out[f"{path}/{'scale' if leaf == 'weight' else 'bias'}"] = (value.reshape(1, 1, 1, -1) if group_norm
                                                                        else value)
        elif leaf == "bias":
            out[f"{path}/bias"] = value.reshape(_HEADS, depth) if path.endswith(("/query", "/key", "/value")) else value
        else:  # Linear (out, in) -> Dense (in, out), attention split into heads
            kernel = value.T
            if path.endswith(("/query", "/key", "/value")):
                kernel = kernel.reshape(_HIDDEN, _HEADS, depth)
            elif path.endswith("/out"):
                kernel = kernel.reshape(_HEADS, depth, _HIDDEN)
            out[f"{path}/kernel"] = kernel
    return out


def read_musiq_checkpoint(path: Path, classes: int = 1) -> dict[str, np.ndarray]:
    """The authors' parameters from ``path``: their ``.npz`` or pyiqa's ``.pth``, checked against the model
    (with ``classes`` outputs).

    Raises:
        ValueError: a file that is not a MUSIQ KonIQ checkpoint (names the first missing or misshapen array).
    """
    try:
        if path.suffix == ".npz":
            with np.load(path) as archive:
                params = {key.removeprefix("opt/target/"): archive[key] for key in archive.files
                          if not key.startswith("opt/") or key.startswith("opt/target/")}
        else:
            params = _from_pyiqa(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # numpy's and PyTorch's readers raise many kinds (EOFError for an empty file)
        first = (str(exc).splitlines() or [""])[0][:160] or type(exc).__name__
        raise ValueError(f"{path} is not a MUSIQ checkpoint, or is cut short ({first}).") from exc
    shapes = official_shapes(classes)
    for name, shape in shapes.items():
        if name not in params:
            raise ValueError(f"{path} is not a MUSIQ checkpoint with {classes} output(s): it has no {name}.")
        if tuple(params[name].shape) != shape:
            raise ValueError(f"{path} is not a MUSIQ checkpoint with {classes} output(s): {name} has shape "
                             f"{tuple(params[name].shape)}, not {shape}.")
    return {name: np.asarray(params[name], np.float32) for name in shapes}


def _gaussian_weights(size: int, new: int) -> np.ndarray:
    """TensorFlow's ``ScaleAndTranslate`` weights for one axis, Gaussian kernel (radius 1.5, sigma 0.5), no
    antialiasing, in float32 as TensorFlow computes them: output ``x`` samples the input at
    ``(x + 0.5) size / new``, the taps within the radius (a tap exactly on it counts nothing) normalised to one."""
    f32 = np.float32
    inv_scale = f32(1.0 / float(f32(new) / f32(size)))
    weights = np.zeros((new, size), np.float32)
    for x in range(new):
        sample = f32(f32(x + 0.5) * inv_scale)
        start = min(max(math.ceil(f32(f32(sample - f32(1.5)) - f32(0.5))), 0), size - 1)
        end = min(max(math.floor(f32(f32(sample + f32(1.5)) - f32(0.5))), 0), size - 1) + 1
        distance = np.abs((np.arange(start, end) + 0.5).astype(np.float32) - sample)
        kernel = np.where(distance < 1.5, np.exp(-distance.astype(np.float64) ** 2 / 0.5), 0.0).astype(np.float32)
        total = kernel.sum(dtype=np.float32)
        if total > 0:
            weights[x, start:end] = kernel * f32(f32(1.0) / total)
    return weights


def gaussian_resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``tf.image.resize(image, (height, width), method="gaussian")`` of ``(C, H, W)`` (it resamples at its own
    size too, which blurs)."""
    _, h, w = image.shape
    rows = torch.from_numpy(_gaussian_weights(h, height)).to(image)
    cols = torch.from_numpy(_gaussian_weights(w, width)).to(image)
    return rows @ image @ cols.T


def _hash(count: int) -> torch.Tensor:
    """Grid row (or column) of each of ``count`` patches: TF1's nearest-neighbour resize of ``0..GRID-1``."""
    scale = np.float32(GRID) / np.float32(count)
    return torch.tensor([min(int(np.floor(np.float32(i) * scale)), GRID - 1) for i in range(count)])


def _patches(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 32x32 patches of ``(3, H, W)`` ('SAME' zero padding, centred, row-major) and their grid indices."""
    _, h, w = image.shape
    rows, cols = math.ceil(h / PATCH), math.ceil(w / PATCH)
    pad_h, pad_w = rows * PATCH - h, cols * PATCH - w
    padded = func.pad(image, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
    patches = padded.reshape(3, rows, PATCH, cols, PATCH).permute(1, 3, 0, 2, 4).reshape(-1, 3, PATCH, PATCH)
    spatial = (_hash(rows)[:, None] * GRID + _hash(cols)[None, :]).reshape(-1)
    return patches, spatial


def musiq_tokens(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The multi-scale input of ``(3, H, W)`` in ``[-1, 1]``: patches ``(N, 3, 32, 32)``, spatial and scale indices."""
    _, h, w = image.shape
    scaled = []
    for longer in sorted(SCALES):
        ratio = np.float32(longer) / np.float32(max(h, w))  # float32, rounded half to even, as tf.round
        size = (int(np.round(np.float32(h) * ratio)), int(np.round(np.float32(w) * ratio)))
        scaled.append(gaussian_resize(image, *size))
    parts = [_patches(x) for x in (*scaled, image)]
    scales = torch.cat([torch.full((len(p),), k) for k, (p, _) in enumerate(parts)])
    return torch.cat([p for p, _ in parts]), torch.cat([s for _, s in parts]), scales


class Musiq(torch.nn.Module):
    """The authors' network on their parameters (flat Flax names): ``forward`` on one image's tokens gives its score."""

    def __init__(self, params: Mapping[str, np.ndarray]):
        super().__init__()
        self.names = list(params)
        for index, name in enumerate(self.names):
            value = torch.from_numpy(np.ascontiguousarray(params[name]))
            if name.endswith("/kernel") and value.ndim == 4:  # weight standardisation, then (out, in, kh, kw)
                value = value - value.mean(dim=(0, 1, 2), keepdim=True)
                value = value / (value.std(dim=(0, 1, 2), keepdim=True, unbiased=False) + 1e-5)
                value = value.permute(3, 2, 0, 1).contiguous()
            elif name.startswith(("gn_root", "block1")):  # GroupNorm (1, 1, 1, C) -> (C,)
                value = value.reshape(-1)
            elif "MultiHeadDotProductAttention_1" in name:  # heads joined: kernels (384, 384), biases (384,)
                value = value.reshape(_HIDDEN, -1) if name.endswith("/kernel") else value.reshape(-1)
            self.register_buffer(f"p{index}", value)

    def _p(self, name: str) -> torch.Tensor:
        return getattr(self, f"p{self.names.index(name)}")

    def _conv(self, x: torch.Tensor, name: str, stride: int) -> torch.Tensor:
        """A bias-free 'SAME' convolution (TensorFlow puts the odd pixel of padding after)."""
        kernel = self._p(name + "/kernel")
        size = kernel.shape[-1]
        total = max((math.ceil(x.shape[-1] / stride) - 1) * stride + size - x.shape[-1], 0)
        x = func.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2))
        return func.conv2d(x, kernel, stride=stride)

    def _group_norm(self, x: torch.Tensor, name: str, eps: float) -> torch.Tensor:
        return func.group_norm(x, 32, self._p(name + "/scale"), self._p(name + "/bias"), eps)

    def _stem(self, patches: torch.Tensor) -> torch.Tensor:
        x = func.relu(self._group_norm(self._conv(patches, "conv_root", 2), "gn_root", 1e-6))
        x = func.max_pool2d(func.pad(x, (0, 1, 0, 1), value=-math.inf), 3, 2)  # 'SAME': 16 -> 8
        unit = "block1/unit1/"
        residual = self._group_norm(self._conv(x, unit + "conv_proj", 1), unit + "gn_proj", 1e-4)
        x = func.relu(self._group_norm(self._conv(x, unit + "conv1", 1), unit + "gn1", 1e-4))
        x = func.relu(self._group_norm(self._conv(x, unit + "conv2", 1), unit + "gn2", 1e-4))
        x = func.relu(residual + self._group_norm(self._conv(x, unit + "conv3", 1), unit + "gn3", 1e-4))
        return x.permute(0, 2, 3, 1).reshape(len(patches), -1)  # flattened as (h, w, c), as the authors'

    def _dense(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return x @ self._p(name + "/kernel") + self._p(name + "/bias")

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return func.layer_norm(x, (x.shape[-1],), self._p(name + "/scale"), self._p(name + "/bias"), 1e-6)

    def _layer(self, x: torch.Tensor, block: str) -> torch.Tensor:
        y = self._norm(x, block + "LayerNorm_0")
        attention = block + "MultiHeadDotProductAttention_1/"
        q, k, v = (self._dense(y, attention + n).reshape(len(y), -1, _HEADS, _HIDDEN // _HEADS).transpose(1, 2)
                   for n in ("query", "key", "value"))
        y = func.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(len(y), -1, _HIDDEN)
        x = x + self._dense(y, attention + "out")
        y = self._norm(x, block + "LayerNorm_2")
        y = func.gelu(self._dense(y, block + "MlpBlock_3/Dense_0"), approximate="tanh")
        return x + self._dense(y, block + "MlpBlock_3/Dense_1")

    def forward(self, patches: torch.Tensor, spatial: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        x = self._dense(self._stem(patches), "embedding")
        x = x + self._p("Transformer/posembed_input/pos_embedding")[0, spatial]
        x = x + self._p("Transformer/scaleembed_input/scale_embedding")[0, scales]
        x = torch.cat([self._p("Transformer/cls")[0], x])[None]
        for layer in range(_LAYERS):
            x = self._layer(x, f"Transformer/encoderblock_{layer}/")
        x = self._norm(x[0, 0], "Transformer/encoder_norm")
        logits = self._dense(x, "head")
        if len(logits) == 1:
            return logits[0]
        scores = torch.arange(1, len(logits) + 1, dtype=logits.dtype, device=logits.device)
        return (logits.softmax(dim=0) * scores).sum()  # the mean of the predicted distribution, as the authors


def _found(weights_dir: Path, checkpoint: Checkpoint) -> Path | None:
    """The authors' ``.npz`` in ``weights/metrics/``, else pyiqa's ``.pth`` there or in pyiqa's own cache."""
    candidates = (weights_dir / "metrics" / checkpoint.npz, weights_dir / "metrics" / checkpoint.pth,
                  Path(torch.hub.get_dir()) / "pyiqa" / checkpoint.pth)
    return next((path for path in candidates if path.is_file()), None)


def musiq_ready(dataset: str = "koniq", weights_dir: Path | None = None) -> bool:
    """Whether MUSIQ with the ``dataset`` checkpoint can be computed without a download."""
    return _found(weights_dir or default_weights_dir(), CHECKPOINTS[dataset]) is not None


def download_musiq(progress: Callable[[int, int | None], None] | None = None, weights_dir: Path | None = None,
                   dataset: str = "koniq") -> None:
    """Fetch the ``dataset`` checkpoint (pyiqa's conversion, sha256 checked) into ``weights/metrics/`` where none is
    here.

    Raises:
        DownloadError: offline, or a file that is not the published one.
    """
    folder, c = weights_dir or default_weights_dir(), CHECKPOINTS[dataset]
    if _found(folder, c) is None:
        target = folder / "metrics" / c.pth
        if len(c.sha256) == 64:
            fetch_published(_PTH_URL.format(c.pth), target, c.sha256, progress)
        else:
            verified_fetch(_PTH_URL.format(c.pth), target, lambda digest: digest.startswith(c.sha256),
                           f"one starting {c.sha256} (as its name says)", progress)


_networks: dict[tuple[str, str], Musiq] = {}
_lock = threading.Lock()


def load_musiq(device: str = "cpu", *, dataset: str = "koniq", weights_dir: Path | None = None) -> Musiq:
    """MUSIQ with the ``dataset`` checkpoint on ``device``, read once per process, checkpoint and device.

    Raises:
        WeightsMissingError: no checkpoint here, or a file that is not that checkpoint.
    """
    c = CHECKPOINTS[dataset]
    with _lock:
        if (dataset, device) not in _networks:
            folder = weights_dir or default_weights_dir()
            found = _found(folder, c)
            if found is None:
                raise WeightsMissingError(
                    f"MUSIQ ({c.title}) needs the authors' checkpoint: download it (realesrgan-studio metrics "
                    f"--download {c.metric}), or put {c.npz} ({_NPZ_URL.format(c.npz)}) or {c.pth} in "
                    f"{folder / 'metrics'}.")
            try:
                _networks[dataset, device] = Musiq(read_musiq_checkpoint(found, c.classes)).to(device)
            except ValueError as exc:
                raise WeightsMissingError(f"{exc} Replace it with {c.npz} or {c.pth}.") from exc
        return _networks[dataset, device]


def musiq(image: np.ndarray, *, dataset: str = "koniq", device: str = "cpu") -> float:
    """MUSIQ of ``image`` (``uint8`` / ``uint16`` HWC, at least 32x32) with the ``dataset`` checkpoint (KonIQ-10k
    by default, as papers report it); higher is better.

    Raises:
        ValueError: an image under 32 px a side.
        WeightsMissingError: no checkpoint here.
    """
    if min(image.shape[:2]) < PATCH:
        raise ValueError("MUSIQ needs images of at least 32x32 pixels.")
    network = load_musiq(device, dataset=dataset)
    with torch.inference_mode():
        tokens = musiq_tokens(to_tensor(image)[0].to(device) * 2 - 1)
        return float(network(*tokens))
