"""What the routes share, as one typed object handed to them by a dependency (``Server``), not read from
``request.app.state`` attribute by attribute."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

import core
from api.gate import WorkGate
from api.metrics import Metrics
from api.settings import ApiSettings

LOADING = "The model is still loading."


@dataclass
class ServerState:
    """Attributes:
        settings: the API's settings.
        gate: the bounded queue in front of the device.
        metrics: request counters for ``/metrics``.
        upscaler: the default model once the lifespan has loaded it (None before, or when it failed).
        load_error: why the default model is not loaded (:data:`LOADING` while it loads).
        loaded: set once the default model's load has ended (loaded, or failed with ``load_error``).
        stop_at: when running jobs stop during a graceful shutdown (``api.serve`` sets it).
    """

    settings: ApiSettings
    gate: WorkGate = field(init=False)
    metrics: Metrics = field(default_factory=Metrics)
    upscaler: core.Upscaler | None = None
    load_error: str = LOADING
    loaded: threading.Event = field(default_factory=threading.Event)
    stop_at: float = math.inf

    def __post_init__(self) -> None:
        self.gate = WorkGate(self.settings.max_running, self.settings.max_waiting)


async def server_state(request: Request) -> ServerState:  # async: no thread-pool hop for an attribute
    return request.app.state.server


Server = Annotated[ServerState, Depends(server_state)]
