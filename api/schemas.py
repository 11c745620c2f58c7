"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class LegacyRequest(BaseModel):
    """The original ``POST /inference`` body (kept for existing clients)."""

    img_str: str = Field(description="The input image, base64-encoded (a data: URI prefix is accepted).")
    tile: int = Field(0, ge=0, le=4096, description="Tile size; 0 = no tiling (as in the original service).")
    half: bool = Field(False, description="fp16 inference where the device supports it (CUDA); ignored elsewhere.")
    output_dir: str = Field("results", description="Accepted for compatibility and ignored: nothing is written.")


class ModelOut(BaseModel):
    name: str
    available: bool
    architecture: str
    scale: int
    source: str
    reason: str
    kind: str
    licence: str | None
    url: str | None


class ErrorOut(BaseModel):
    error: str = Field(description="A machine-readable error kind.")
    message: str = Field(description="What went wrong and what to do, for people.")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    ready: bool
    model: str
    device: str
    precision: str
    weights: str
