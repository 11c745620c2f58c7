"""Upscaling: the :class:`Upscaler` (channels and alpha -> tiles and memory -> an engine's forward),
its settings and plan, the tile planner, and the process-wide shared upscalers."""

from __future__ import annotations

from ._channels import check_image, fit_channels, upscale_planes
from ._settings import (
    ALPHA_MODES,
    MAX_OUTSCALE,
    MAX_TILE,
    MIN_TILE,
    TILE_STEP,
    AlphaMode,
    UpscalePlan,
    UpscaleResult,
    UpscaleSettings,
    default_overlap,
    default_pad,
    default_tile,
)
from ._shared import clear_shared, shared_keys, shared_upscaler, wait_for_measurements
from ._tiling import (
    Network,
    Tile,
    TilePlan,
    TileProgress,
    blend_ramp,
    plan_axis,
    plan_tiles,
    run_tiled,
    tile_for_memory,
)
from ._upscaler import Upscaler

__all__ = ["ALPHA_MODES", "MAX_OUTSCALE", "MAX_TILE", "MIN_TILE", "TILE_STEP", "AlphaMode", "Network", "Tile",
           "TilePlan", "TileProgress", "UpscalePlan", "UpscaleResult", "UpscaleSettings", "Upscaler", "blend_ramp",
           "check_image", "clear_shared", "default_overlap", "default_pad", "default_tile", "fit_channels",
           "plan_axis", "plan_tiles", "run_tiled", "shared_keys", "shared_upscaler", "tile_for_memory",
           "upscale_planes", "wait_for_measurements"]
