"""A port of Real-ESRGAN's degradation step (``RealESRGANModel.feed_data``) for tests, in PyTorch.

The official ``realesrgan`` / ``basicsr`` packages do not import with our torchvision, so this
restates their computation, written for this test suite and kept in the official structure:
torch tensors NCHW, ``filter2D`` as reflect padding + ``conv2d``, ``USMSharp``, ``F.interpolate``
(stage 1 by ``scale_factor``), DiffJPEG's compression and decompression written as in BasicSR
(tensordot with the 8x8x8x8 cosine tensor, transposed tables, ``torch.round``), Poisson noise on
the image rounded to 8 bits, and the final clamp-and-round. Random choices are not drawn here:
they come from a :class:`core.degradation.DegradationParams`, and the noise fields are drawn with numpy
from each noise's seed (the same draws the studio makes), so outputs can be compared.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import torch
from torch.nn import functional

import core


def filter2d(img: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    k = kernel.shape[-1]
    weight = torch.from_numpy(kernel.astype(np.float32))[None, None].repeat(img.shape[1], 1, 1, 1)
    padded = functional.pad(img, (k // 2, k // 2, k // 2, k // 2), mode="reflect")
    return functional.conv2d(padded, weight, groups=img.shape[1])


def usm_sharp(img: torch.Tensor, weight: float = 0.5, threshold: float = 10) -> torch.Tensor:
    g = cv2.getGaussianKernel(51, 0)
    kernel = np.dot(g, g.transpose())
    residual = img - filter2d(img, kernel)
    mask = (torch.abs(residual) * 255 > threshold).float()
    soft = filter2d(mask, kernel)
    sharp = torch.clip(img + weight * residual, 0, 1)
    return soft * sharp + (1 - soft) * img


# ---------------------------------------------------------------- DiffJPEG (BasicSR's structure)

_Y = torch.tensor([[16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
                   [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
                   [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
                   [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]],
                  dtype=torch.float32).T
_C = torch.full((8, 8), 99.0)
_C[:4, :4] = torch.tensor([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]],
                          dtype=torch.float32).T


def _cosines(inverse: bool) -> torch.Tensor:
    tensor = np.zeros((8, 8, 8, 8), np.float32)
    for x, y, u, v in itertools.product(range(8), repeat=4):
        if inverse:
            tensor[x, y, u, v] = np.cos((2 * u + 1) * x * np.pi / 16) * np.cos((2 * v + 1) * y * np.pi / 16)
        else:
            tensor[x, y, u, v] = np.cos((2 * x + 1) * u * np.pi / 16) * np.cos((2 * y + 1) * v * np.pi / 16)
    return torch.from_numpy(tensor)


_ALPHA = torch.from_numpy(np.outer(*[np.array([1 / np.sqrt(2)] + [1.0] * 7)] * 2).astype(np.float32))


def _split(plane: torch.Tensor) -> torch.Tensor:  # b x h x w -> b x (h*w/64) x 8 x 8
    b, h, _ = plane.shape
    return plane.view(b, h // 8, 8, -1, 8).permute(0, 1, 3, 2, 4).contiguous().view(b, -1, 8, 8)


def _merge(blocks: torch.Tensor, h: int, w: int) -> torch.Tensor:
    b = blocks.shape[0]
    return blocks.view(b, h // 8, w // 8, 8, 8).permute(0, 1, 3, 2, 4).contiguous().view(b, h, w)


def diff_jpeg(x: torch.Tensor, quality: float) -> torch.Tensor:
    factor = (5000.0 / quality if quality < 50 else 200.0 - quality * 2) / 100.0
    h, w = x.shape[-2:]
    x = functional.pad(x, (0, (16 - w % 16) % 16, 0, (16 - h % 16) % 16), mode="constant", value=0)
    hp, wp = x.shape[-2:]
    image = (x * 255).permute(0, 2, 3, 1)
    matrix = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]).T
    ycbcr = torch.tensordot(image, matrix, dims=1) + torch.tensor([0.0, 128.0, 128.0])
    planes = {"y": ycbcr[..., 0]}
    for i, name in ((1, "cb"), (2, "cr")):
        planes[name] = functional.avg_pool2d(ycbcr[..., i].unsqueeze(1), kernel_size=2, stride=2)[:, 0]
    forward, inverse = _cosines(False), _cosines(True)
    out = {}
    for name, plane in planes.items():
        table = (_Y if name == "y" else _C) * factor
        coefficients = 0.25 * _ALPHA * torch.tensordot(_split(plane) - 128, forward, dims=2)
        quantised = torch.round(coefficients / table) * table
        spatial = 0.25 * torch.tensordot(quantised * _ALPHA, inverse, dims=2) + 128
        size = (hp, wp) if name == "y" else (hp // 2, wp // 2)
        out[name] = _merge(spatial, *size)
    for name in ("cb", "cr"):
        out[name] = out[name].unsqueeze(-1).repeat(1, 1, 2, 2).view(-1, hp, wp)
    merged = torch.stack([out["y"], out["cb"], out["cr"]], dim=3) + torch.tensor([0.0, -128.0, -128.0])
    back = torch.tensor([[1.0, 0.0, 1.402], [1, -0.344136, -0.714136], [1, 1.772, 0]]).T
    rgb = torch.tensordot(merged, back, dims=1).permute(0, 3, 1, 2)
    return (torch.clamp(rgb, 0, 255) / 255)[:, :, :h, :w]


# ---------------------------------------------------------------- noise with the studio's draws


def gaussian(img: torch.Tensor, noise: core.degradation.NoiseParams) -> torch.Tensor:
    rng = np.random.default_rng(noise.seed)
    _, c, h, w = img.shape
    shape = (h, w, 1) if noise.grey else (h, w, c)
    field = rng.standard_normal(shape, dtype=np.float32) * np.float32(noise.level / 255.0)
    return torch.clamp(img + torch.from_numpy(field).permute(2, 0, 1)[None], 0, 1)


def poisson(img: torch.Tensor, noise: core.degradation.NoiseParams) -> torch.Tensor:
    rng = np.random.default_rng(noise.seed)
    source = img
    if noise.grey:
        source = (img * torch.tensor([0.2989, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    rounded = torch.clamp((source * 255.0).round(), 0, 255) / 255.0
    vals = 2 ** np.ceil(np.log2(len(torch.unique(rounded))))
    lam = rounded[0].permute(1, 2, 0).numpy() * vals
    counts = torch.from_numpy(rng.poisson(lam).astype(np.float32)).permute(2, 0, 1)[None]
    return torch.clamp(img + (counts / vals - rounded) * noise.level, 0, 1)


def _noise(img: torch.Tensor, noise: core.degradation.NoiseParams | None) -> torch.Tensor:
    if noise is None:
        return img
    return gaussian(img, noise) if noise.kind == "gaussian" else poisson(img, noise)


# ---------------------------------------------------------------- feed_data


def degrade(hr: np.ndarray, params: core.degradation.DegradationParams) -> np.ndarray:
    """The official LR of ``hr`` (uint8 HWC RGB) for the choices in ``params`` (uint8 HWC)."""
    gt = torch.from_numpy(hr.astype(np.float32) / 255).permute(2, 0, 1)[None]
    ori_h, ori_w = gt.shape[2:]
    scale = params.scale
    out = usm_sharp(gt)
    first, second, final = params.first, params.second, params.final
    if first.kernel is not None:
        out = filter2d(out, core.degradation.make_kernel(first.kernel))
    out = functional.interpolate(out, scale_factor=first.resize_factor, mode=first.resize_mode)
    out = _noise(out, first.noise)
    out = diff_jpeg(torch.clamp(out, 0, 1), first.jpeg_quality)
    if second.kernel is not None:
        out = filter2d(out, core.degradation.make_kernel(second.kernel))
    size = (int(ori_h / scale * second.resize_factor), int(ori_w / scale * second.resize_factor))
    out = functional.interpolate(out, size=size, mode=second.resize_mode)
    out = _noise(out, second.noise)
    sinc = core.degradation.make_kernel(final.sinc) if final.sinc is not None else np.array([[1.0]])

    def resize_back(x: torch.Tensor) -> torch.Tensor:
        x = functional.interpolate(x, size=(ori_h // scale, ori_w // scale), mode=final.resize_mode)
        return filter2d(x, sinc)

    if final.sinc_first:
        out = diff_jpeg(torch.clamp(resize_back(out), 0, 1), final.jpeg_quality)
    else:
        out = resize_back(diff_jpeg(torch.clamp(out, 0, 1), final.jpeg_quality))
    lq = torch.clamp((out * 255.0).round(), 0, 255)
    return lq[0].permute(1, 2, 0).numpy().astype(np.uint8)
