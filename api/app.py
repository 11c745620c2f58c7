"""The FastAPI application factory: lifespan-loaded upscaler, limits, error mapping, routes.

``create_app()`` builds the API alone; ``create_app(dashboard=True)`` also serves the
Streamlit dashboard from the same process (mounted at ``/`` after the API routes), so the
dashboard and the API share one model in device memory (see ``docs/deploy-aws.md``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

import core
from api.gate import BusyError
from api.middleware import BodyLimit, DocsPolicy, LocalRedocBundle, Observe
from api.routes import router
from api.settings import ApiSettings
from api.state import ServerState
from api.studies import router as studies_router

log = logging.getLogger("studio.api")
ROOT = Path(__file__).resolve().parent.parent


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": kind, "message": message}, status_code=status, headers=headers)


# HTTP status of each core error (the most specific class wins; anything else is a 400).
STATUS: dict[type[core.StudioError], int] = {
    core.errors.ImageDecodeError: 400,
    core.errors.UnsupportedImageError: 415,
    core.errors.ImageTooLargeError: 413,
    core.errors.UnknownModelError: 404,
    core.errors.UnsupportedModelError: 415,
    core.errors.WeightsMissingError: 409,  # not 503: retrying does not help until someone adds the weights
    core.errors.ConversionError: 503,
    core.errors.DownloadError: 503,
    core.errors.DeviceUnavailableError: 400,
    core.errors.OutOfMemoryError: 503,
    core.CancelledError: 503,  # cancelled by a shutdown; a client that left gets no answer
    core.errors.DatasetError: 400,
    core.errors.ConfigError: 400,
    core.errors.SettingsError: 400,
    core.errors.UnknownNameError: 400,
    core.errors.DamagedFileError: 500,  # a file the server wrote earlier: not the client's fault
}


def status_of(exc: core.StudioError) -> int:
    return next((STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS), 400)


def _install_handlers(app: FastAPI, settings: ApiSettings) -> None:
    @app.exception_handler(core.StudioError)
    async def studio_error(request: Request, exc: core.StudioError) -> JSONResponse:
        status = status_of(exc)
        headers = {"Retry-After": str(settings.retry_after)} if status == 503 else None
        return _error(status, exc.code, str(exc), headers)

    @app.exception_handler(BusyError)
    async def busy(request: Request, exc: BusyError) -> JSONResponse:
        return _error(503, "busy", f"{exc} Retry in {settings.retry_after} s.",
                      {"Retry-After": str(settings.retry_after)})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors())
        return _error(422, "validation", f"Invalid request: {details}"[:1000])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "validation" if exc.status_code == 422 else "http"  # our own 422s read like FastAPI's
        return _error(exc.status_code, kind, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return _error(500, "internal", "Internal error; it has been logged.")


def create_app(settings: ApiSettings | None = None, *, dashboard: bool = False) -> FastAPI:
    """Build the API (and optionally the dashboard in the same process)."""
    settings = settings or ApiSettings.from_env()
    streamlit_app = None
    if dashboard:
        import streamlit as st

        streamlit_app = st.App(str(ROOT / "dashboard" / "app.py"))

    server = ServerState(settings)

    def load_default() -> None:
        """The default model, loaded while the server already listens: /healthz answers, /readyz says
        "loading", and requests for the default model wait for it within their time limit."""
        start = time.perf_counter()
        log.info("loading the default model %s (device %s)…", settings.model, settings.device)
        try:
            server.upscaler = core.shared_upscaler(settings.model, settings.device, settings.precision)
        except core.StudioError as exc:  # stay up (healthz) and say why in readyz / 503s
            server.upscaler = None
            server.load_error = str(exc)
            log.error("default model not loaded: %s", exc)
        else:
            log.info("default model ready in %.1f s: %s", time.perf_counter() - start, server.upscaler.describe())
        finally:
            server.loaded.set()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=load_default, daemon=True, name="studio-default-model").start()
        if streamlit_app is not None:
            async with streamlit_app.lifespan()(app):
                yield
        else:
            yield

    app = FastAPIOffline(  # /docs and /redoc from packaged assets: no CDN, works offline
        title="Real-ESRGAN studio API",
        version="1.0",
        description="Super-resolution with Real-ESRGAN. `POST /inference` keeps the original JSON + base64 "
                    "contract; `POST /v1/upscale` takes a multipart upload and returns `image/png`.",
        lifespan=lifespan,
    )
    app.state.server = server  # the routes get it through the `Server` dependency (api/state.py)
    _install_handlers(app, settings)

    app.include_router(router)
    app.include_router(studies_router)
    app.add_middleware(Observe, observe=server.metrics.observe)
    app.add_middleware(DocsPolicy)
    app.add_middleware(LocalRedocBundle)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, idle_timeout=settings.body_timeout)
    if streamlit_app is not None:
        app.mount("/", streamlit_app)
    return app
