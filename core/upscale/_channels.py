"""The outer layer of an upscale: channels, alpha and the value range.

An edge-convention image (``uint8`` / ``uint16``, grey, RGB or RGBA) becomes float planes in
``[0, 1]``; the colour planes, and the alpha plane where ``alpha="model"``, go through the tile
layer (``run``); grey and RGB are matched to what the network takes; the result is resized to the
requested scale and brought back to the input's dtype. Nothing here knows about tiles or engines.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .._resize import resize
from ..errors import UnsupportedImageError
from ._settings import UpscalePlan
from ._tiling import TileProgress

__all__ = ["PlaneRunner", "check_image", "fit_channels", "upscale_planes"]

# Luma weights used to fold an RGB model output back to one channel (as OpenCV's
# RGB2GRAY and the official Real-ESRGAN script do for grey images and alpha).
_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)

# planes (1, C, H, W) float32 in [0, 1], their share of the progress -> (1, C', sH, sW) float32 in [0, 1]
PlaneRunner = Callable[[torch.Tensor, TileProgress], torch.Tensor]


def check_image(image: np.ndarray) -> np.ndarray:
    """``image`` as ``(H, W, C)`` with ``C`` in 1, 3, 4.

    Raises:
        UnsupportedImageError: another dtype than ``uint8`` / ``uint16``, or another shape.
    """
    if image.dtype not in (np.uint8, np.uint16):
        raise UnsupportedImageError(f"Expected a uint8 or uint16 image, got {image.dtype}.")
    array = image[:, :, None] if image.ndim == 2 else image
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise UnsupportedImageError(f"Expected (H, W, C) with C in 1, 3, 4; got shape {image.shape}.")
    return array


def _luma(planes: torch.Tensor) -> torch.Tensor:
    return (planes * _LUMA).sum(dim=1, keepdim=True)


def fit_channels(planes: torch.Tensor, channels: int) -> torch.Tensor:
    """``planes`` with the ``channels`` (1 or 3) a network takes: RGB folded to luma, grey repeated."""
    if channels == 1 and planes.shape[1] == 3:
        return _luma(planes)
    if channels == 3 and planes.shape[1] == 1:
        return planes.expand(-1, 3, -1, -1)
    return planes


def upscale_planes(array: np.ndarray, plan: UpscalePlan, run: PlaneRunner, net_size: tuple[int, int],
                   out_size: tuple[int, int], progress: TileProgress, total: int) -> np.ndarray:
    """Upscale a checked image (:func:`check_image`) with ``run`` at the network's scale
    (``net_size = (H, W)``), then resize to ``out_size`` (Lanczos up, area down).

    ``total`` is the number of model calls of the whole image (both passes); the colour pass
    reports the first half of the progress, the alpha pass the second.
    """
    channels = array.shape[2]
    top = float(np.iinfo(array.dtype).max)
    planes = torch.from_numpy(array.transpose(2, 0, 1).astype(np.float32)).div_(top)[None]
    colour, alpha = (planes[:, :3], planes[:, 3:]) if channels == 4 else (planes, None)
    # grey with alpha (LA, grey + tRNS, read as RGBA): upscaled as grey is, so it is written grey (encode_png)
    grey_alpha = channels == 4 and torch.equal(colour[:, 0], colour[:, 1]) and torch.equal(colour[:, 1], colour[:, 2])
    result = run(colour[:, :1] if grey_alpha else colour, progress.part(0, total))
    if (channels == 1 or grey_alpha) and result.shape[1] == 3:
        result = _luma(result)
    if grey_alpha:
        result = result.expand(-1, 3, -1, -1)
    out = result[0].permute(1, 2, 0).numpy()
    if alpha is not None and plan.alpha != "drop":
        if plan.alpha == "model":
            up = run(alpha, progress.part(total // 2, total))
            alpha_np = (_luma(up) if up.shape[1] == 3 else up)[0, 0].numpy()[:, :, None]
        else:
            alpha_np = resize(alpha[0, 0].numpy()[:, :, None], net_size, "bicubic")
        out = np.concatenate([out, alpha_np], axis=2)
    if tuple(out_size) != tuple(net_size):
        method = "area" if out_size[0] < net_size[0] else "lanczos"
        out = resize(np.ascontiguousarray(out, dtype=np.float32), out_size, method)
    # in place: `out` is this call's own array, and each copy would be the size of the whole output
    np.multiply(out, top, out=out)
    np.clip(np.rint(out, out=out), 0, top, out=out)
    return out.astype(array.dtype)
