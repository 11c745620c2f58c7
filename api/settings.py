"""API settings, read once from the environment (``STUDIO_API_*``, see :mod:`core._settings`); tests
override them."""

from __future__ import annotations

from dataclasses import dataclass, field

import core


@dataclass(frozen=True)
class ApiSettings:
    """Attributes:
        model: the default model (loaded at start-up).
        device / precision: as in :func:`core.resolve_device`.
        max_body_bytes: largest accepted request body (413 above).
        body_timeout: seconds a request body may stall between two chunks before it is answered 408
            (a client that declares a body and never sends it holds no connection for long).
        max_running: inference calls running at once (one GPU: 1).
        max_waiting: requests allowed to wait for a slot; more get 503 with Retry-After.
        request_timeout: seconds a request may wait plus run before it is abandoned (503).
        limits: pixel limits of the core.
    """

    model: str = core.DEFAULT_MODEL
    device: str = "auto"
    precision: str = "auto"
    max_body_bytes: int = 64 * 1024 * 1024
    body_timeout: float = 30.0
    max_running: int = 1
    max_waiting: int = 8
    request_timeout: float = 300.0
    retry_after: int = 5
    limits: core.ImageLimits = field(default_factory=core.ImageLimits)

    @classmethod
    def from_env(cls) -> ApiSettings:
        """The defaults above, overridden by ``STUDIO_API_<FIELD>`` (e.g. ``STUDIO_API_MAX_WAITING``)."""
        return core.settings_from_env(cls, "STUDIO_API_")
