"""How to upscale one image: the settings a caller gives, the plan an upscaler resolves them to, and
the result; the defaults of tiling (tile, context, blend) for each device and kind of network."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from .._io import ImageLimits
from ._tiling import TilePlan

__all__ = ["ALPHA_MODES", "LARGEST_PAD", "MAX_OUTSCALE", "MAX_TILE", "MEMORY_SHARE", "MIN_TILE",
           "SHALLOW_ARCHITECTURES", "TILE_STEP", "AlphaMode", "UpscalePlan", "UpscaleResult", "UpscaleSettings",
           "default_overlap", "default_pad", "default_tile", "passes"]

AlphaMode = Literal["model", "bicubic", "drop"]
ALPHA_MODES: tuple[str, ...] = get_args(AlphaMode)  # the one list every front end offers

MAX_OUTSCALE = 16.0
# Tile sizes a caller may ask for. Below 32 px the context around each tile costs more than the
# tile (a 1-px tile runs (1 + 2 * 24)^2 = 2401 px per output pixel) and one call holds a worker
# for minutes; the out-of-memory fallback may still go lower on its own.
MIN_TILE = 32
MAX_TILE = 8192
# Automatic tiles are multiples of this: free memory drifts by a few per cent between calls,
# and a coarse step keeps the tile (and the sidebar's figure) from changing with every drift.
TILE_STEP = 64
# Share of the free device memory (or available RAM) the tiles of one call may use.
MEMORY_SHARE = 0.5


def default_tile(device: str) -> int:
    """Default tile size in input pixels: bounded memory, small overhead on each device.

    This is an upper bound: :meth:`Upscaler.tile_for` lowers it to what fits in free GPU
    memory (CUDA) or available RAM (CPU).
    """
    return 512 if device.startswith("cuda") else 384


# Architectures whose receptive field is a few tens of pixels (a plain stack of 3x3 convolutions):
# 16 px of context already gives tiles that equal untiled output to > 87 dB (benchmarks/seams.py).
SHALLOW_ARCHITECTURES = frozenset({"Compact"})


def default_pad(tile: int, *, shallow: bool = False) -> int:
    """Default context per tile side, in input pixels (see :func:`default_overlap`).

    Deep networks (ESRGAN's 23 RRDB blocks, transformers) see far beyond a tile's edge. On the
    bundled photos with texture across the seams (benchmarks/seams.py, x4plus), 16 px of context
    with an 8 px blend left the seam band at 40.3 dB against untiled output (128 px tiles) and
    42.0 dB (256 px tiles), the image at 48.0 / 53.5 dB; 24 px with a 16 px blend gives 44.2 /
    45.9 dB in the band and 51.1 / 57.8 dB over the image, at 1.26x the untiled time with 256 px
    tiles. Tiles below 128 px, whose seams are dense, get 8 px more. ``shallow``
    (:data:`SHALLOW_ARCHITECTURES`) models need 16 px (8 px more below 128 px tiles)."""
    small = 0 < tile < 128
    if shallow:
        return 24 if small else 16
    return 32 if small else 24


def default_overlap(*, shallow: bool = False) -> int:
    """Default blended overlap between tiles: 16 px for deep networks (the blend ramp halves what
    is left of a seam; benchmarks/seams.py), 8 px for shallow ones."""
    return 8 if shallow else 16


LARGEST_PAD = default_pad(1)  # the memory estimate of an automatic tile assumes the largest default


@dataclass(frozen=True)
class UpscaleSettings:
    """How to upscale one image. Frozen and hashable, so caches can key on it.

    Attributes:
        outscale: final scale in ``(0, 16]``; ``None`` means the model's own scale. The
            model runs at its native scale, then the result is resized to the exact size
            ``round(H * outscale) x round(W * outscale)`` (Lanczos up, area down).
        tile: tile size in input pixels (:data:`MIN_TILE` to :data:`MAX_TILE`); ``None`` = the
            device's default, lowered to what fits in free memory (:meth:`Upscaler.tile_for`);
            ``0`` = no tiling where the whole image fits in memory, else the largest tile that does.
        batch: tiles per model call (they share one shape); ``None`` = 1. Batches help
            where one tile leaves the GPU idle; on out-of-memory the batch is halved first.
        tile_overlap: blended overlap between tiles, input pixels; ``None`` =
            :func:`default_overlap` of the model (16 px, 8 px for shallow networks).
        tile_pad: extra context given to each tile and cut off its output, input pixels;
            ``None`` = :func:`default_pad` of the tile and model (24 px for deep networks,
            16 px for shallow ones; 8 px more below 128 px tiles).
        alpha: RGBA only: ``model`` (alpha upscaled by the model as a grey image),
            ``bicubic`` (alpha resized with bicubic) or ``drop`` (RGB output).
        limits: input / output pixel limits.
    """

    outscale: float | None = None
    tile: int | None = None
    batch: int | None = None
    tile_overlap: int | None = None
    tile_pad: int | None = None
    alpha: AlphaMode = "model"
    limits: ImageLimits = field(default_factory=ImageLimits)

    def __post_init__(self) -> None:
        if self.outscale is not None and not 0 < self.outscale <= MAX_OUTSCALE:
            raise ValueError(f"outscale must be in (0, {MAX_OUTSCALE:g}], got {self.outscale}.")
        if self.tile is not None and self.tile != 0 and not MIN_TILE <= self.tile <= MAX_TILE:
            raise ValueError(f"tile must be 0 (no tiling where it fits) or between {MIN_TILE} and {MAX_TILE} px, "
                             f"got {self.tile}.")
        if self.batch is not None and not 1 <= self.batch <= 64:
            raise ValueError("batch must be between 1 and 64.")
        if (self.tile_overlap is not None and self.tile_overlap < 0) or (self.tile_pad is not None
                                                                          and self.tile_pad < 0):
            raise ValueError("tile_overlap and tile_pad must be >= 0.")
        if self.alpha not in ALPHA_MODES:
            raise ValueError(f"alpha must be model, bicubic or drop, got {self.alpha!r}.")


@dataclass(frozen=True)
class UpscalePlan:
    """:class:`UpscaleSettings` resolved for one upscaler (:meth:`Upscaler.resolve`): every
    choice concrete. Resolve once, then count tiles and upscale with the plan, so both agree
    even if free memory changes in between.

    ``tile=0``: the image runs as one tile. ``fixed``: tiles of exactly ``tile`` pixels
    (a compiled graph sees one input shape).
    """

    outscale: float | None
    tile: int
    batch: int
    tile_overlap: int
    tile_pad: int
    alpha: AlphaMode
    limits: ImageLimits
    fixed: bool = False

    @property
    def tiling(self) -> TilePlan:
        return TilePlan(self.tile, self.tile_overlap, self.tile_pad, self.batch, self.fixed)

    def passes(self, channels: int) -> int:
        return passes(channels, self.alpha)


@dataclass(frozen=True)
class UpscaleResult:
    """An upscaled image and how it was made."""

    image: np.ndarray
    model: str
    device: str
    precision: str
    seconds: float
    tile: int  # 0 where the image ran as one tile
    batch: int = 1


def passes(channels: int, alpha: str) -> int:
    """Model passes per image: two for RGBA with ``alpha="model"`` (colour, then alpha), else one."""
    return 2 if channels == 4 and alpha == "model" else 1
