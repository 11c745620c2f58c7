"""HTTP API (FastAPI + uvicorn): the original ``POST /inference`` and the modern ``/v1`` routes."""

from __future__ import annotations

from api.app import create_app
from api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
