"""Tile geometry (pure) and the tiled inference loop.

Geometry: an image axis of length ``L`` is cut into ``n`` balanced tiles (count first,
then size) that overlap by at least ``overlap`` pixels. Each tile is fed to the model
with ``pad`` extra pixels of context on each side (clipped at the image border); the
context is cut off the output, and the overlapping parts of neighbouring tiles are
blended with linear ramps. Blend weights are normalised by their sum, so any tiling
reconstructs the image exactly where tiles agree.

Loop: only the current tile lives on the device; the output is accumulated on the CPU
in float32. On device out-of-memory the tile is halved and the failed tile is redone
in smaller pieces; any other error propagates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ._errors import CancelledError, OutOfMemoryError

__all__ = ["Tile", "blend_ramp", "plan_axis", "plan_tiles", "run_tiled"]

Forward = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]

MIN_TILE = 16


def plan_axis(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Split ``[0, length)`` into balanced, overlapping ``(start, end)`` intervals.

    ``tile <= 0`` or ``tile >= length`` gives one interval. Otherwise the count is the
    smallest ``n`` for which tiles of at most ``tile`` pixels overlapping by at least
    ``overlap`` cover the axis; all tiles then have the same size (the smallest that
    works), and starts are spread evenly. Consecutive tiles overlap by ``>= overlap``.
    """
    if length <= 0:
        raise ValueError("length must be positive")
    if tile <= 0 or tile >= length:
        return [(0, length)]
    overlap = max(0, min(overlap, tile // 2))
    count = math.ceil((length - overlap) / (tile - overlap))
    size = math.ceil((length + (count - 1) * overlap) / count)
    starts = [round(i * (length - size) / (count - 1)) for i in range(count)]
    return [(s, s + size) for s in starts]


@dataclass(frozen=True)
class Tile:
    """One tile: ``core`` is the area it contributes, ``padded`` what the model sees.

    Both are ``(y0, y1, x0, x1)`` in input pixels; ``padded`` contains ``core``.
    ``ramps`` gives the blend lengths (input pixels) at the top, bottom, left, right
    edges: the overlap with the neighbour on that side, 0 at the image border.
    """

    core: tuple[int, int, int, int]
    padded: tuple[int, int, int, int]
    ramps: tuple[int, int, int, int]


def _ramps(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for i, (start, end) in enumerate(intervals):
        before = intervals[i - 1][1] - start if i > 0 else 0
        after = end - intervals[i + 1][0] if i + 1 < len(intervals) else 0
        out.append((max(before, 0), max(after, 0)))
    return out


def plan_tiles(height: int, width: int, tile: int, overlap: int, pad: int) -> list[Tile]:
    """Plan the tiles of a ``height x width`` image, row-major."""
    rows, cols = plan_axis(height, tile, overlap), plan_axis(width, tile, overlap)
    row_ramps, col_ramps = _ramps(rows), _ramps(cols)
    tiles = []
    for (y0, y1), (top, bottom) in zip(rows, row_ramps):
        for (x0, x1), (left, right) in zip(cols, col_ramps):
            padded = (max(0, y0 - pad), min(height, y1 + pad), max(0, x0 - pad), min(width, x1 + pad))
            tiles.append(Tile((y0, y1, x0, x1), padded, (top, bottom, left, right)))
    return tiles


def blend_ramp(length: int, start_ramp: int, end_ramp: int) -> np.ndarray:
    """1-D blend weights of a tile of ``length`` pixels, float32, all ``> 0``.

    The first ``start_ramp`` and last ``end_ramp`` pixels rise from ``0.5/ramp`` to
    ``1 - 0.5/ramp``; two neighbours' ramps over the same overlap sum to exactly 1.
    """
    weights = np.ones(length, np.float32)
    if start_ramp:
        n = min(start_ramp, length)
        weights[:n] = np.minimum(weights[:n], (np.arange(n) + 0.5) / start_ramp)
    if end_ramp:
        n = min(end_ramp, length)
        weights[length - n :] = np.minimum(weights[length - n :], (np.arange(n)[::-1] + 0.5) / end_ramp)
    return weights


def _forward_tile(
    image: torch.Tensor,
    forward: Forward,
    scale: int,
    tile: Tile,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    py0, py1, px0, px1 = tile.padded
    inp = image[:, :, py0:py1, px0:px1].to(device=device, dtype=dtype, non_blocking=True)
    return _crop_core(forward(inp), tile, scale).float().cpu()


def _crop_core(output: torch.Tensor, tile: Tile, scale: int) -> torch.Tensor:
    py0, _, px0, _ = tile.padded
    y0, y1, x0, x1 = tile.core
    return output[:, :, (y0 - py0) * scale : (y1 - py0) * scale, (x0 - px0) * scale : (x1 - px0) * scale]


def _run_one(
    image: torch.Tensor,
    forward: Forward,
    scale: int,
    item: Tile,
    current: int | None,
    overlap: int,
    pad: int,
    device: torch.device,
    dtype: torch.dtype,
    cancel: Cancel | None,
) -> tuple[torch.Tensor, int | None]:
    """Run one tile; on out-of-memory redo it in tiles of half the size (and keep that size).

    ``current`` is ``None`` while planned tiles fit, else the reduced tile size forced by an
    earlier out-of-memory. Returns the tile's output and the ``current`` to use from now on.
    """
    py0, py1, px0, px1 = item.padded
    y0, y1, x0, x1 = item.core
    while True:
        try:
            if current is None:
                return _forward_tile(image, forward, scale, item, device, dtype), None
            # A smaller tile size was forced by an earlier out-of-memory: split this tile.
            sub = run_tiled(
                image[:, :, py0:py1, px0:px1], forward, scale, tile=current, overlap=overlap,
                pad=pad, device=device, dtype=dtype, cancel=cancel,
            )
            return _crop_core(sub, item, scale), current
        except torch.OutOfMemoryError as exc:
            if device.type == "cuda":
                torch.cuda.empty_cache()
            first = max(y1 - y0, x1 - x0)
            current = (current or first) // 2
            if current < MIN_TILE:
                raise OutOfMemoryError(
                    f"Out of device memory: tiles from {first} px down to {MIN_TILE} px were tried. Close other "
                    "GPU programs, choose a smaller model, or run on the CPU."
                ) from exc


def run_tiled(
    image: torch.Tensor,
    forward: Forward,
    scale: int,
    *,
    tile: int,
    overlap: int,
    pad: int,
    device: torch.device,
    dtype: torch.dtype,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    progress_offset: int = 0,
    progress_total: int | None = None,
) -> torch.Tensor:
    """Run ``forward`` over ``image`` tile by tile and blend the results.

    Args:
        image: ``(1, C, H, W)`` float32 CPU tensor in ``[0, 1]``.
        forward: the model call; input and output on ``device`` in ``dtype``.
        scale: the model's integer scale.
        tile: tile size in input pixels (``0``: the whole image at once).
        overlap / pad: blended overlap and discarded context, in input pixels.
        progress: called with ``(tiles done, tiles total)`` after each tile.
        cancel: polled before each tile; ``True`` raises :class:`CancelledError`.
        progress_offset / progress_total: to report several passes as one count.

    Returns:
        ``(1, C_out, H*scale, W*scale)`` float32 CPU tensor.

    Raises:
        CancelledError: ``cancel()`` returned True.
        OutOfMemoryError: out of device memory even at the smallest tile size.
    """
    _, _, height, width = image.shape
    tiles = plan_tiles(height, width, tile, overlap, pad)
    total = progress_total if progress_total is not None else len(tiles)
    if len(tiles) == 1:  # one tile: nothing to blend
        if cancel is not None and cancel():
            raise CancelledError("Cancelled by the user; no output was written.")
        result, _ = _run_one(image, forward, scale, tiles[0], None, overlap, pad, device, dtype, cancel)
        if progress is not None:
            progress(progress_offset + 1, total)
        return result
    output: torch.Tensor | None = None
    weight_sum = torch.zeros(1, 1, height * scale, width * scale)
    current: int | None = None
    for index, item in enumerate(tiles):
        if cancel is not None and cancel():
            raise CancelledError("Cancelled by the user; no output was written.")
        result, current = _run_one(image, forward, scale, item, current, overlap, pad, device, dtype, cancel)
        if output is None:
            output = torch.zeros(1, result.shape[1], height * scale, width * scale)
        y0, y1, x0, x1 = item.core
        top, bottom, left, right = (r * scale for r in item.ramps)
        wy = blend_ramp((y1 - y0) * scale, top, bottom)
        wx = blend_ramp((x1 - x0) * scale, left, right)
        weight = torch.from_numpy(np.outer(wy, wx))[None, None]
        region = (slice(None), slice(None), slice(y0 * scale, y1 * scale), slice(x0 * scale, x1 * scale))
        output[region] += result * weight
        weight_sum[region] += weight
        if progress is not None:
            progress(progress_offset + index + 1, total)
    assert output is not None
    return output.div_(weight_sum)
