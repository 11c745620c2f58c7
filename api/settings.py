"""API settings, read once from the environment (``STUDIO_API_*``); tests override them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import core


def _env(name: str, default: str) -> str:
    return os.environ.get(f"STUDIO_API_{name}", default)


@dataclass(frozen=True)
class ApiSettings:
    """Attributes:
        model: the default model (loaded at start-up).
        device / precision: as in :func:`core.resolve_device`.
        max_body_bytes: largest accepted request body (413 above).
        max_running: inference calls running at once (one GPU: 1).
        max_waiting: requests allowed to wait for a slot; more get 503 with Retry-After.
        request_timeout: seconds a request may wait plus run before it is abandoned (503).
        limits: pixel limits of the core.
    """

    model: str = core.DEFAULT_MODEL
    device: str = "auto"
    precision: str = "auto"
    max_body_bytes: int = 64 * 1024 * 1024
    max_running: int = 1
    max_waiting: int = 8
    request_timeout: float = 300.0
    retry_after: int = 5
    limits: core.ImageLimits = field(default_factory=core.ImageLimits)

    @classmethod
    def from_env(cls) -> ApiSettings:
        return cls(
            model=_env("MODEL", core.DEFAULT_MODEL),
            device=_env("DEVICE", "auto"),
            precision=_env("PRECISION", "auto"),
            max_body_bytes=int(_env("MAX_BODY_BYTES", str(64 * 1024 * 1024))),
            max_running=int(_env("MAX_RUNNING", "1")),
            max_waiting=int(_env("MAX_WAITING", "8")),
            request_timeout=float(_env("REQUEST_TIMEOUT", "300")),
        )
