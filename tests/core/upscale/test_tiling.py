"""Tile geometry and the tiled loop (fake models: exact, fast, and able to fail on purpose)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F  # noqa: N812

import core
from core import errors, upscale
from core.upscale._tiling import MIN_TILE

CPU = torch.device("cpu")


@pytest.mark.parametrize("length", [1, 7, 48, 100, 257, 1000])
@pytest.mark.parametrize(("tile", "overlap"), [(0, 8), (32, 0), (32, 8), (64, 16), (100, 8)])
@pytest.mark.parametrize("fixed", [False, True])
def test_plan_axis_covers_balanced_and_overlapping(length: int, tile: int, overlap: int, fixed: bool) -> None:
    spans = upscale.plan_axis(length, tile, overlap, fixed=fixed)
    assert spans[0][0] == 0 and spans[-1][1] == length
    sizes = {end - start for start, end in spans}
    assert len(sizes) == 1, f"tiles are not balanced: {spans}"
    if tile and tile < length:
        assert max(sizes) <= tile
        if fixed:
            assert sizes == {tile}
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert end - start >= min(overlap, tile // 2), f"overlap too small in {spans}"
        fewer = len(spans) - 1
        if fewer:  # the count is minimal: one tile fewer cannot cover the axis
            assert fewer * tile - (fewer - 1) * min(overlap, tile // 2) < length
    else:
        assert spans == [(0, length)]


def test_blend_ramps_of_neighbours_sum_to_one() -> None:
    spans = upscale.plan_axis(200, 64, 16)
    total = np.zeros(200)
    ramps = [(spans[i - 1][1] - s if i else 0, e - spans[i + 1][0] if i + 1 < len(spans) else 0)
             for i, (s, e) in enumerate(spans)]
    for (start, end), (a, b) in zip(spans, ramps):
        weights = upscale.blend_ramp(end - start, a, b)
        assert (weights > 0).all()
        total[start:end] += weights
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


@pytest.mark.parametrize(("height", "width", "tile", "pad"), [(100, 150, 64, 10), (70, 45, 20, 3), (40, 300, 64, 24)])
def test_plan_tiles_clips_context_at_borders(height: int, width: int, tile: int, pad: int) -> None:
    tiles = upscale.plan_tiles(height, width, tile, 8, pad)
    for t in tiles:
        y0, y1, x0, x1 = t.core
        assert t.padded == (max(0, y0 - pad), min(height, y1 + pad), max(0, x0 - pad), min(width, x1 + pad))
    assert [t.core for t in tiles] == [t.core for t in upscale.plan_tiles(height, width, tile, 8, pad, uniform=True)]


@pytest.mark.parametrize(("height", "width", "tile", "pad"), [(100, 150, 64, 10), (70, 45, 20, 3), (40, 300, 64, 24)])
def test_uniform_tiles_get_full_context_and_one_shape(height: int, width: int, tile: int, pad: int) -> None:
    tiles = upscale.plan_tiles(height, width, tile, 8, pad, uniform=True)
    assert len({t.shape for t in tiles}) == 1, "tiles of one image must share one input shape"
    for t in tiles:
        y0, y1, x0, x1 = t.core
        py0, py1, px0, px1 = t.padded
        assert 0 <= py0 <= y0 and y1 <= py1 <= height and 0 <= px0 <= x0 and x1 <= px1 <= width
        # at least `pad` pixels of context on each side, except where the image ends first
        assert y0 - py0 >= min(pad, y0) and py1 - y1 >= min(pad, height - y1)
        assert x0 - px0 >= min(pad, x0) and px1 - x1 >= min(pad, width - x1)
        assert t.shape == (min(height, y1 - y0 + 2 * pad), min(width, x1 - x0 + 2 * pad))
    assert len(tiles) == len(upscale.plan_axis(height, tile, 8)) * len(upscale.plan_axis(width, tile, 8))


def _nearest(scale: int):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=scale, mode="nearest")
    return forward


def _run(image: torch.Tensor, forward, **kw) -> torch.Tensor:
    options = {"tile": 32, "overlap": 8, "pad": 4} | kw
    progress = upscale.TileProgress(options.pop("progress", None), options.pop("cancel", None))
    net = upscale.Network(forward, 2, CPU, torch.float32)
    return upscale.run_tiled(image, net, upscale.TilePlan(**options), progress)


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
    total = len(upscale.plan_tiles(64, 64, 32, 8, 4))
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

    with pytest.raises(errors.OutOfMemoryError, match="were tried"):
        _run(torch.rand(1, 3, 4 * MIN_TILE, 4 * MIN_TILE), never, tile=64)


def test_other_errors_propagate_unchanged() -> None:
    def broken(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("shape mismatch in layer 3")

    with pytest.raises(RuntimeError, match="layer 3"):
        _run(torch.rand(1, 3, 40, 40), broken)


@pytest.mark.parametrize("batch", [2, 3, 8])
def test_batched_tiles_give_the_same_image_as_one_at_a_time(batch: int) -> None:
    blur = torch.ones(3, 1, 5, 5) / 25
    sizes: list[int] = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        sizes.append(x.shape[0])
        return _nearest(2)(F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), blur, groups=3))

    image = torch.rand(1, 3, 70, 90)
    single = _run(image, forward, tile=24, overlap=6, pad=3)
    count = len(sizes)
    sizes.clear()
    batched = _run(image, forward, tile=24, overlap=6, pad=3, batch=batch)
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-6)
    assert sum(sizes) == count and max(sizes) == min(batch, count)
    assert len(sizes) == -(-count // batch)


def test_fixed_tiles_keep_one_input_shape_for_every_image_and_batch() -> None:
    shapes: set[tuple[int, ...]] = set()

    def forward(x: torch.Tensor) -> torch.Tensor:
        shapes.add(tuple(x.shape))
        return _nearest(2)(x)

    for height, width in [(70, 90), (100, 61), (57, 57)]:  # 20, 24, 9 tiles: the last two end short
        image = torch.rand(1, 3, height, width)
        out = _run(image, forward, tile=24, overlap=6, pad=3, batch=5, fixed=True)
        torch.testing.assert_close(out, _nearest(2)(image), rtol=0, atol=1e-6)
    assert shapes == {(5, 3, 30, 30)}


def test_batch_progress_counts_tiles_and_cancel_is_polled_per_call() -> None:
    image = torch.rand(1, 3, 64, 64)
    total = len(upscale.plan_tiles(64, 64, 16, 4, 4))
    calls: list[int] = []
    _run(image, _nearest(2), tile=16, overlap=4, pad=4, batch=4, progress=lambda done, _: calls.append(done))
    assert calls == list(range(4, total + 1, 4)) + ([total] if total % 4 else [])
    polled: list[int] = []
    with pytest.raises(core.CancelledError):
        _run(image, _nearest(2), tile=16, overlap=4, pad=4, batch=4, cancel=lambda: polled.append(1) or len(polled) > 1)
    assert len(polled) == 2


def test_out_of_memory_halves_the_batch_before_the_tile() -> None:
    seen: list[tuple[int, int]] = []

    def picky(x: torch.Tensor) -> torch.Tensor:
        seen.append((x.shape[0], max(x.shape[-2:])))
        if x.shape[0] > 2:
            raise torch.OutOfMemoryError("fake CUDA out of memory")
        return _nearest(2)(x)

    image = torch.rand(1, 3, 96, 96)
    out = _run(image, picky, tile=32, overlap=4, pad=4, batch=8)
    torch.testing.assert_close(out, _nearest(2)(image), rtol=0, atol=1e-6)
    tiles = len(upscale.plan_tiles(96, 96, 32, 4, 4))
    assert [b for b, _ in seen] == [8, 4] + [2] * (tiles // 2), "halve 8 -> 4 -> 2, then keep 2"
    assert len({side for _, side in seen}) == 1, "the tile size must not shrink while halving the batch helps"


@pytest.mark.parametrize("bytes_per_pixel", [300.0, 6000.0, 50_000.0])
@pytest.mark.parametrize("batch", [1, 4])
def test_tile_for_memory_is_the_largest_tile_that_fits(bytes_per_pixel: float, batch: int) -> None:
    budget, pad = 4 * 2**30, 24

    def need(tile: int) -> float:
        return batch * (tile + 2 * pad) ** 2 * bytes_per_pixel

    tile = upscale.tile_for_memory(bytes_per_pixel, budget, batch=batch, pad=pad)
    assert tile % 16 == 0 and MIN_TILE <= tile <= 2048
    assert need(tile) <= budget
    assert tile == 2048 or need(tile + 16) > budget
    assert upscale.tile_for_memory(bytes_per_pixel, budget / 4, batch=batch, pad=pad) < tile or tile == MIN_TILE


def test_tile_for_memory_floor_and_bad_input() -> None:
    assert upscale.tile_for_memory(1e9, 1e6) == MIN_TILE  # hopeless budget: smallest tile, OOM fallback decides
    with pytest.raises(ValueError):
        upscale.tile_for_memory(0, 1e9)
