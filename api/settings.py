"""API settings, read once from the environment (``STUDIO_API_*``, see :mod:`core._settings`); tests
override them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import core
from core.errors import SettingsError


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

    def __post_init__(self) -> None:
        """Every value checked once, so a wrong setting stops the server at start-up with one line (before, a
        ``MAX_RUNNING`` of 0 hung every request and a NaN timeout turned the timeout off)."""
        least = {"max_body_bytes": 1, "max_running": 1, "max_waiting": 0, "retry_after": 0}
        for name, low in least.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SettingsError(f"STUDIO_API_{name.upper()}={value!r} must be a whole number of at least {low}.")
        for name in ("body_timeout", "request_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise SettingsError(f"STUDIO_API_{name.upper()}={value!r} must be a number of seconds above 0.")
        if self.precision not in core.PRECISIONS:
            raise SettingsError(f"STUDIO_API_PRECISION={self.precision!r} must be one of {', '.join(core.PRECISIONS)}.")
        try:
            core.resolve_device(self.device, self.precision)
        except core.errors.DeviceUnavailableError as exc:
            raise SettingsError(f"STUDIO_API_DEVICE={self.device!r} with STUDIO_API_PRECISION={self.precision!r}: "
                                f"{exc}") from None
        try:
            core.model_info(self.model)
        except core.errors.UnknownModelError as exc:
            raise SettingsError(f"STUDIO_API_MODEL={self.model!r}: {exc}") from None

    @classmethod
    def from_env(cls) -> ApiSettings:
        """The defaults above, overridden by ``STUDIO_API_<FIELD>`` (e.g. ``STUDIO_API_MAX_WAITING``), after every
        ``STUDIO_*`` variable is checked (:func:`core.check_environment`).

        Raises:
            SettingsError: the first wrong variable, by name, value and what it should be.
        """
        return core.check_environment(cls, "STUDIO_API_")
