"""Tile geometry (pure) and the tiled inference loop.

Geometry: an image axis of length ``L`` is cut into ``n`` balanced tiles (count first,
then size) that overlap by at least ``overlap`` pixels. Each tile is fed to the model
with ``pad`` extra pixels of context on each side, clipped at the image border (the
least work). For batches and compiled graphs the context window is instead shifted
inward at the border (``uniform``), so every tile of an image has the same input shape
and tiles stack into one batch. The context is cut off the output, and the overlapping parts of
neighbouring tiles are blended with linear ramps. Blend weights are normalised by their
sum, so any tiling reconstructs the image exactly where tiles agree.

Loop: only the current batch of tiles lives on the device; the output is accumulated on
the CPU in float32. On device out-of-memory the batch is halved, then the tile, and the
failed work is redone in smaller pieces; any other error propagates.

Memory: :func:`tile_for_memory` picks the largest tile whose batch fits a byte budget,
given the model's activation bytes per input pixel (measured on the device).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

from .._cancel import Cancel, cancellable, stepping
from ..errors import CancelledError, OutOfMemoryError

__all__ = ["Network", "StepCount", "Tile", "TilePlan", "TileProgress", "blend_ramp", "plan_axis", "plan_tiles",
           "run_tiled", "tile_for_memory"]

Forward = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[float, int], None]  # (model calls done, in fractions inside a call; total)

MIN_TILE = 16


def plan_axis(length: int, tile: int, overlap: int, *, fixed: bool = False) -> list[tuple[int, int]]:
    """Split ``[0, length)`` into balanced, overlapping ``(start, end)`` intervals.

    ``tile <= 0`` or ``tile >= length`` gives one interval. Otherwise the count is the
    smallest ``n`` for which tiles of at most ``tile`` pixels overlapping by at least
    ``overlap`` cover the axis; all tiles then have the same size (the smallest that
    works, or exactly ``tile`` when ``fixed``, so that every image larger than a tile
    gives the same tile shape), and starts are spread evenly. Consecutive tiles overlap
    by ``>= overlap``.
    """
    if length <= 0:
        raise ValueError("length must be positive")
    if tile <= 0 or tile >= length:
        return [(0, length)]
    overlap = max(0, min(overlap, tile // 2))
    count = math.ceil((length - overlap) / (tile - overlap))
    size = tile if fixed else math.ceil((length + (count - 1) * overlap) / count)
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

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the model input."""
        return self.padded[1] - self.padded[0], self.padded[3] - self.padded[2]


def _ramps(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for i, (start, end) in enumerate(intervals):
        before = intervals[i - 1][1] - start if i > 0 else 0
        after = end - intervals[i + 1][0] if i + 1 < len(intervals) else 0
        out.append((max(before, 0), max(after, 0)))
    return out


def _window(start: int, end: int, length: int, pad: int, uniform: bool) -> tuple[int, int]:
    """The context window of ``[start, end)``: ``pad`` more on each side, clipped to ``[0, length)``,
    or (``uniform``) of full size and shifted inside ``[0, length)``."""
    if not uniform:
        return max(0, start - pad), min(length, end + pad)
    size = min(length, end - start + 2 * pad)
    first = min(max(start - pad, 0), length - size)
    return first, first + size


def plan_tiles(
    height: int, width: int, tile: int, overlap: int, pad: int, *, uniform: bool = False, fixed: bool = False
) -> list[Tile]:
    """Plan the tiles of a ``height x width`` image, row-major.

    ``uniform``: every tile gets the same input ``shape`` (context shifted inward at the
    border instead of clipped). ``fixed``: tiles of exactly ``tile`` pixels (see
    :func:`plan_axis`); implies ``uniform``.
    """
    uniform = uniform or fixed
    rows, cols = plan_axis(height, tile, overlap, fixed=fixed), plan_axis(width, tile, overlap, fixed=fixed)
    row_ramps, col_ramps = _ramps(rows), _ramps(cols)
    tiles = []
    for (y0, y1), (top, bottom) in zip(rows, row_ramps):
        for (x0, x1), (left, right) in zip(cols, col_ramps):
            padded = (*_window(y0, y1, height, pad, uniform), *_window(x0, x1, width, pad, uniform))
            tiles.append(Tile((y0, y1, x0, x1), padded, (top, bottom, left, right)))
    return tiles


def tile_for_memory(
    bytes_per_pixel: float,
    budget_bytes: float,
    *,
    batch: int = 1,
    pad: int = 24,
    multiple: int = 16,
    largest: int = 2048,
) -> int:
    """The largest tile (a multiple of ``multiple``, at most ``largest``) whose batch fits the budget.

    A batch of ``batch`` tiles of ``t`` pixels with ``pad`` context needs about
    ``batch * (t + 2 * pad) ** 2 * bytes_per_pixel`` bytes. Returns at least ``MIN_TILE``
    (the out-of-memory fallback still halves from there if the estimate was too low).
    """
    if bytes_per_pixel <= 0 or budget_bytes <= 0 or batch < 1:
        raise ValueError("bytes_per_pixel, budget_bytes and batch must be positive.")
    side = math.isqrt(int(budget_bytes / (batch * bytes_per_pixel))) - 2 * pad
    return max(MIN_TILE, min(largest, side // multiple * multiple))


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


@dataclass(frozen=True)
class TilePlan:
    """How an image is cut: concrete integers, resolved once per call (see ``Upscaler.resolve``).

    ``tile``: tile size in input pixels (``0``: the whole image at once). ``overlap`` / ``pad``:
    blended overlap and discarded context, input pixels. ``batch``: tiles per model call
    (``> 1`` plans uniform tiles, one shape, so they stack). ``fixed``: tiles of exactly
    ``tile`` pixels, so any image larger than a tile gives the model one input shape (compiled graphs).
    """

    tile: int
    overlap: int
    pad: int
    batch: int = 1
    fixed: bool = False

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError("batch must be >= 1.")
        if min(self.tile, self.overlap, self.pad) < 0:
            raise ValueError("tile, overlap and pad must be >= 0.")

    def tiles(self, height: int, width: int) -> list[Tile]:
        """The tiles of a ``height x width`` image under this plan."""
        return plan_tiles(height, width, self.tile, self.overlap, self.pad, uniform=self.batch > 1, fixed=self.fixed)


@dataclass(frozen=True)
class Network:
    """The model call and where it runs: ``forward`` maps ``(N, C, h, w)`` to ``(N, C_out, h*scale,
    w*scale)``, input and output on ``device`` in ``dtype``."""

    forward: Forward
    scale: int
    device: torch.device
    dtype: torch.dtype


@dataclass
class StepCount:
    """How many counted checkpoints (layers, :func:`core._cancel.stepping`) one model call of an upscaler
    passes: learnt from its calls, the first of which is the 64-px call that times it."""

    per_call: int = 0


@dataclass(frozen=True)
class TileProgress:
    """Progress and cancellation of a tiled run (after chaiNNer's ``sub_progress``).

    ``callback(done, total)`` is called after each model call, ``cancel()`` polled before
    each. ``offset`` / ``total`` place this run inside a larger count (several passes of one
    image reported as one bar); ``total=None``: this run's own tile count. With ``steps`` (what a call
    passes, once known), ``done`` also moves inside a call, in fractions, as the engine passes its layers.
    """

    callback: Progress | None = None
    cancel: Cancel | None = None
    offset: int = 0
    total: int | None = None
    steps: StepCount | None = None

    def part(self, offset: int, total: int) -> TileProgress:
        """The same callbacks for a pass that starts at ``offset`` of ``total`` steps."""
        return replace(self, offset=offset, total=total)

    def check(self) -> None:
        """Raise :class:`CancelledError` if ``cancel()`` says so."""
        if self.cancel is not None and self.cancel():
            raise CancelledError("Cancelled by the user; no output was written.")

    def report(self, done: float, count: int) -> None:
        """``done`` of this run's ``count`` tiles are finished."""
        if self.callback is not None:
            self.callback(self.offset + done, self.total if self.total is not None else count)

    @contextlib.contextmanager
    def call(self, done: int, size: int, count: int) -> Iterator[None]:
        """One model call on ``size`` tiles after ``done`` of ``count``: reports its layers as they pass (up to
        99 % of the call), and learns how many a call passes."""
        if self.steps is None:
            yield
            return
        passed = 0
        expected = self.steps.per_call

        def on_step() -> None:
            nonlocal passed
            passed += 1
            if expected and self.callback is not None and passed % max(1, expected // 50) == 0:
                self.report(done + size * min(passed / expected, 0.99), count)

        with stepping(on_step):
            yield
        if passed:
            self.steps.per_call = passed


NO_PROGRESS = TileProgress()


def _forward_batch(image: torch.Tensor, net: Network, tiles: list[Tile], fill: int = 0) -> list[torch.Tensor]:
    """Run tiles of one shape as one batch; returns each tile's cropped output (float32, CPU).

    ``fill``: run the batch as if it had this many tiles (repeating the last), so that a
    short last batch keeps the shape of the others (compiled graphs, CUDA graphs).
    """
    crops = []
    for tile in tiles + tiles[-1:] * max(0, fill - len(tiles)):
        py0, py1, px0, px1 = tile.padded
        crops.append(image[:, :, py0:py1, px0:px1])
    inp = (crops[0] if len(crops) == 1 else torch.cat(crops)).to(device=net.device, dtype=net.dtype,
                                                                 non_blocking=True)
    out = net.forward(inp)
    return [_crop_core(out[i : i + 1], tile, net.scale).float().cpu() for i, tile in enumerate(tiles)]


def _crop_core(output: torch.Tensor, tile: Tile, scale: int) -> torch.Tensor:
    py0, _, px0, _ = tile.padded
    y0, y1, x0, x1 = tile.core
    return output[:, :, (y0 - py0) * scale : (y1 - py0) * scale, (x0 - px0) * scale : (x1 - px0) * scale]


def _out_of_memory(exc: BaseException) -> bool:
    """CUDA's and the engines' out-of-memory error, Python's and numpy's ``MemoryError``, and
    PyTorch's CPU allocator or oneDNN failing to allocate (plain ``RuntimeError``s)."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    # oneDNN reports a failed workspace allocation as "could not create a primitive"
    return isinstance(exc, RuntimeError) and any(
        marker in str(exc) for marker in ("can't allocate memory", "could not create a primitive"))


@dataclass
class _Fallback:
    """What out-of-memory has forced so far: tiles per batch, and a smaller tile size."""

    batch: int
    tile: int | None = None  # None while the planned tiles fit


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _run_chunk(image: torch.Tensor, net: Network, chunk: list[Tile], plan: TilePlan, state: _Fallback,
               progress: TileProgress) -> list[torch.Tensor]:
    """Run the tiles of ``chunk`` (at most ``state.batch``); returns the outputs of the first ``k >= 0``.

    ``plan.fixed``: keep the batch size of full chunks for a short last one.

    On out-of-memory with several tiles, the batch is halved and nothing is returned (the
    caller retries). With one tile, the tile size is halved and the tile redone in pieces
    (and that size kept for the rest of the image).
    """
    if len(chunk) > 1 or (plan.fixed and state.batch > 1):
        try:
            return _forward_batch(image, net, chunk, state.batch if plan.fixed else 0)
        except (RuntimeError, MemoryError) as exc:  # torch.OutOfMemoryError is a RuntimeError
            if not _out_of_memory(exc):
                raise
            _free(net.device)
            state.batch = max(1, state.batch // 2)
            return []
    item = chunk[0]
    py0, py1, px0, px1 = item.padded
    y0, y1, x0, x1 = item.core
    while True:
        try:
            if state.tile is None:
                return _forward_batch(image, net, [item])
            # A smaller tile size was forced by an earlier out-of-memory: split this tile.
            smaller = TilePlan(tile=state.tile, overlap=plan.overlap, pad=plan.pad)
            sub = run_tiled(image[:, :, py0:py1, px0:px1], net, smaller, TileProgress(cancel=progress.cancel))
            return [_crop_core(sub, item, net.scale)]
        except (RuntimeError, MemoryError) as exc:
            if not _out_of_memory(exc):
                raise
            _free(net.device)
            first = max(y1 - y0, x1 - x0)
            state.tile = (state.tile or first) // 2
            if state.tile < MIN_TILE:
                kind = net.device.type
                advice = ("Close other GPU programs, choose a smaller model, or run on the CPU."
                          if kind == "cuda" else "Close other programs or choose a smaller model.")
                raise OutOfMemoryError(
                    f"Out of {kind.upper()} memory: tiles from {first} px down to {MIN_TILE} px were tried. "
                    + advice) from exc


def _blend_weight(item: Tile, scale: int) -> torch.Tensor:
    y0, y1, x0, x1 = item.core
    top, bottom, left, right = (r * scale for r in item.ramps)
    wy = blend_ramp((y1 - y0) * scale, top, bottom)
    wx = blend_ramp((x1 - x0) * scale, left, right)
    return torch.from_numpy(np.outer(wy, wx))[None, None]


def run_tiled(image: torch.Tensor, net: Network, plan: TilePlan,
              progress: TileProgress = NO_PROGRESS) -> torch.Tensor:
    """Run ``net`` over ``image`` tile by tile as ``plan`` says, and blend the results.

    Args:
        image: ``(1, C, H, W)`` float32 CPU tensor in ``[0, 1]``.
        net: the model call, its scale, device and dtype.
        plan: tile size, overlap, context, batch (:class:`TilePlan`).
        progress: callbacks; ``progress.cancel()`` returning ``True`` raises :class:`CancelledError`.

    Returns:
        ``(1, C_out, H*scale, W*scale)`` float32 CPU tensor.

    Raises:
        CancelledError: ``cancel()`` returned True.
        OutOfMemoryError: out of device memory even at the smallest tile size.
    """
    with cancellable(progress.cancel):
        _, _, height, width = image.shape
        tiles = plan.tiles(height, width)
        state = _Fallback(batch=plan.batch)
        if len(tiles) == 1:  # one tile: nothing to blend
            progress.check()
            with progress.call(0, 1, 1):
                (result,) = _run_chunk(image, net, tiles, replace(plan, fixed=False), state, progress)
            progress.report(1, 1)
            return result
        scale = net.scale
        output: torch.Tensor | None = None
        weight_sum = torch.zeros(1, 1, height * scale, width * scale)
        done = 0
        while done < len(tiles):
            progress.check()
            chunk = tiles[done : done + state.batch]
            with progress.call(done, len(chunk), len(tiles)):
                results = _run_chunk(image, net, chunk, plan, state, progress)
            for item, result in zip(chunk, results):
                if output is None:
                    output = torch.zeros(1, result.shape[1], height * scale, width * scale)
                y0, y1, x0, x1 = item.core
                weight = _blend_weight(item, scale)
                region = (slice(None), slice(None), slice(y0 * scale, y1 * scale), slice(x0 * scale, x1 * scale))
                output[region] += result * weight
                weight_sum[region] += weight
            done += len(results)
            if results:
                progress.report(done, len(tiles))
        assert output is not None
        return output.div_(weight_sum)
