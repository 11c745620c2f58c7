"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

import core
from core.upscale import AlphaMode


class LegacyRequest(BaseModel):
    """The original ``POST /inference`` body (kept for existing clients)."""

    img_str: str = Field(description="The input image, base64-encoded (a data: URI prefix is accepted).")
    tile: int = Field(0, ge=0, le=4096, description="Tile size; 0 = no tiling (as in the original service).")
    half: bool = Field(False, description="fp16 inference where the device supports it (CUDA); ignored elsewhere.")
    output_dir: str = Field("results", description="Accepted for compatibility and ignored: nothing is written.")


class UpscaleParams(BaseModel):
    """The options of ``POST /v1/upscale``, accepted as query parameters or as form fields (a form
    field wins over the query parameter of the same name)."""

    model: str | None = Field(None, max_length=200, description="A model name of GET /v1/models; default: the "
                              "server's model.")
    outscale: float | None = Field(None, gt=0, le=16, description="Final scale; default: the model's.")
    tile: int | None = Field(None, ge=0, le=4096, description="Tile size in px; 0 = no tiling where it fits; "
                             "default: automatic.")
    precision: core.Precision | None = Field(None, description="Default: auto.")
    alpha: AlphaMode | None = Field(None, description="RGBA inputs: how alpha is upscaled; default: model.")

    def over(self, fallback: UpscaleParams) -> UpscaleParams:
        """These options, with ``fallback``'s where these leave one unset."""
        return UpscaleParams(**{name: value if value is not None else getattr(fallback, name)
                                for name, value in self})


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
    fingerprint: str = Field(description="The weights in use, by content: name@sha256:<digest of the file>")
