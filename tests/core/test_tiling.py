"""Tile geometry and the tiled loop (fake models: exact, fast, and able to fail on purpose)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F  # noqa: N812

import core
from core._tiling import MIN_TILE

CPU = torch.device("cpu")


@pytest.mark.parametrize("length", [1, 7, 48, 100, 257, 1000])
@pytest.mark.parametrize(("tile", "overlap"), [(0, 8), (32, 0), (32, 8), (64, 16), (100, 8)])
def test_plan_axis_covers_balanced_and_overlapping(length: int, tile: int, overlap: int) -> None:
    spans = core.plan_axis(length, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == length
    sizes = {end - start for start, end in spans}
    assert len(sizes) == 1, f"tiles are not balanced: {spans}"
    if tile and tile < length:
        assert max(sizes) <= tile
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert end - start >= min(overlap, tile // 2), f"overlap too small in {spans}"
        fewer = len(spans) - 1
        if fewer:  # the count is minimal: one tile fewer cannot cover the axis
            assert fewer * tile - (fewer - 1) * min(overlap, tile // 2) < length
    else:
        assert spans == [(0, length)]


def test_blend_ramps_of_neighbours_sum_to_one() -> None:
    spans = core.plan_axis(200, 64, 16)
    total = np.zeros(200)
    ramps = [(spans[i - 1][1] - s if i else 0, e - spans[i + 1][0] if i + 1 < len(spans) else 0)
             for i, (s, e) in enumerate(spans)]
    for (start, end), (a, b) in zip(spans, ramps):
        weights = core.blend_ramp(end - start, a, b)
        assert (weights > 0).all()
        total[start:end] += weights
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_plan_tiles_pads_with_context_clipped_at_borders() -> None:
    tiles = core.plan_tiles(100, 150, 64, 8, 10)
    for tile in tiles:
        y0, y1, x0, x1 = tile.core
        py0, py1, px0, px1 = tile.padded
        assert py0 == max(0, y0 - 10) and py1 == min(100, y1 + 10)
        assert px0 == max(0, x0 - 10) and px1 == min(150, x1 + 10)
    assert len(tiles) == len(core.plan_axis(100, 64, 8)) * len(core.plan_axis(150, 64, 8))


def _nearest(scale: int):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=scale, mode="nearest")
    return forward


def _run(image: torch.Tensor, forward, **kw) -> torch.Tensor:
    options = {"tile": 32, "overlap": 8, "pad": 4, "device": CPU, "dtype": torch.float32} | kw
    return core.run_tiled(image, forward, 2, **options)


def test_pointwise_model_is_reproduced_exactly_by_any_tiling() -> None:
    image = torch.rand(1, 3, 70, 45)
    expected = _nearest(2)(image)
    for tile, overlap, pad in [(0, 0, 0), (16, 0, 0), (20, 6, 3), (32, 8, 8)]:
        out = _run(image, _nearest(2), tile=tile, overlap=overlap, pad=pad)
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_context_padding_removes_seams_of_a_model_with_a_receptive_field() -> None:
    blur = torch.ones(3, 1, 5, 5) / 25

    def forward(x: torch.Tensor) -> torch.Tensor:
        return _nearest(2)(F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), blur, groups=3))

    image = torch.rand(1, 3, 64, 64)
    whole = forward(image)
    no_context = _run(image, forward, tile=16, overlap=0, pad=0)
    with_context = _run(image, forward, tile=16, overlap=0, pad=2)
    assert (no_context - whole).abs().max() > 1e-3  # seams without context
    torch.testing.assert_close(with_context, whole, rtol=0, atol=1e-6)


def test_progress_and_cancel() -> None:
    image = torch.rand(1, 3, 64, 64)
    calls: list[tuple[int, int]] = []
    _run(image, _nearest(2), progress=lambda done, total: calls.append((done, total)))
    total = len(core.plan_tiles(64, 64, 32, 8, 4))
    assert calls == [(i, total) for i in range(1, total + 1)]
    polled = []

    def cancel() -> bool:
        polled.append(1)
        return len(polled) > 2

    with pytest.raises(core.CancelledError):
        _run(image, _nearest(2), cancel=cancel)
    assert len(polled) == 3


def test_out_of_memory_halves_the_tile_and_keeps_the_result() -> None:
    seen: list[int] = []

    def picky(x: torch.Tensor) -> torch.Tensor:
        seen.append(max(x.shape[-2:]))
        if max(x.shape[-2:]) > 30:
            raise torch.OutOfMemoryError("fake CUDA out of memory")
        return _nearest(2)(x)

    image = torch.rand(1, 3, 90, 90)
    out = _run(image, picky, tile=64, overlap=4, pad=4)
    torch.testing.assert_close(out, _nearest(2)(image), rtol=0, atol=1e-6)
    assert max(seen) > 30 and seen[-1] <= 30


def test_out_of_memory_at_the_smallest_tile_is_a_typed_error() -> None:
    def never(x: torch.Tensor) -> torch.Tensor:
        raise torch.OutOfMemoryError("fake CUDA out of memory")

    with pytest.raises(core.OutOfMemoryError, match="were tried"):
        _run(torch.rand(1, 3, 4 * MIN_TILE, 4 * MIN_TILE), never, tile=64)


def test_other_errors_propagate_unchanged() -> None:
    def broken(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("shape mismatch in layer 3")

    with pytest.raises(RuntimeError, match="layer 3"):
        _run(torch.rand(1, 3, 40, 40), broken)
