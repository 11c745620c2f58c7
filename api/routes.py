"""API routes: thin: request -> typed settings -> core -> response.

Inference routes are plain ``def`` (FastAPI runs them in its thread pool) and pass
through the app's :class:`~api.gate.WorkGate`, which bounds concurrent device work.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response

import core
from api.gate import BusyError, GaveUpError
from api.middleware import client_gone
from api.schemas import ErrorOut, Health, LegacyRequest, ModelOut, Ready, UpscaleParams
from api.state import Server, ServerState

router = APIRouter()
log = logging.getLogger("studio.api")

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 413, 415, 422, 503)}


def _options(**fields: object) -> core.UpscaleSettings:
    """The request's upscale settings; a combination the core refuses (a 5-px tile) is a 422."""
    try:
        return core.UpscaleSettings(**fields)  # type: ignore[arg-type]
    except ValueError as exc:
        raise HTTPException(422, f"Invalid request: {exc}") from exc


class _Budget:
    """One request's time: the model's load (if it is still loading), the wait for the device and the
    run all count against ``request_timeout``; the client leaving or a shutdown stops it too."""

    def __init__(self, server: ServerState, request: Request) -> None:
        self.state = server
        self.path = request.url.path
        self.timeout = server.settings.request_timeout
        self.deadline = time.monotonic() + self.timeout
        self.gone = client_gone(request.scope)

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def stop(self) -> bool:
        return self.gone.is_set() or time.monotonic() > min(self.deadline, self.state.stop_at)

    def stopped(self, exc: BaseException) -> Exception:
        """The error to answer with once :meth:`stop` turned true (or the gate gave up)."""
        if self.gone.is_set():
            log.info("%s: the client disconnected; its job was cancelled", self.path)
            return core.CancelledError("The client disconnected; the job was cancelled.")
        if time.monotonic() > self.state.stop_at:
            log.info("%s: stopped by the shutdown; answered 503", self.path)
            return BusyError("The server is shutting down; the job was stopped. Retry in a moment.")
        return BusyError(f"The request took longer than {self.timeout:.0f} s.")


def _run(budget: _Budget, upscaler: core.Upscaler, image, settings: core.UpscaleSettings) -> core.UpscaleResult:
    """Wait for the device, then upscale; stop at the time limit, when the client leaves, or at shutdown."""
    try:
        with budget.state.gate.slot(budget.left(), cancelled=budget.stop):
            return upscaler.upscale(image, settings, cancel=budget.stop)
    except (core.CancelledError, GaveUpError) as exc:
        raise budget.stopped(exc) from exc


def _upscaler(server: ServerState, budget: _Budget, model: str | None, precision: str) -> core.Upscaler:
    settings = server.settings
    name = model or settings.model
    if name == settings.model and not server.loaded.wait(budget.left()):  # its load started with the server
        raise BusyError("The default model is still loading.")
    default = server.upscaler
    if default is None and name == settings.model:
        raise core.errors.WeightsMissingError(f"The default model is not loaded: {server.load_error}")
    if name == settings.model and precision == "auto":
        precision = settings.precision  # the default's own copy (with its measured engine, once measured)
    try:  # another model's first load holds up only the requests for that model, within their time limit
        return core.shared_upscaler(name, settings.device, precision, timeout=budget.left(), cancel=budget.stop)
    except TimeoutError as exc:
        raise BusyError(f"{name} is still loading (its first load); it goes on in the background.") from exc
    except core.CancelledError as exc:
        raise budget.stopped(exc) from exc


def _header(value: str) -> str:
    """A header value as HTTP carries it: ASCII as is, anything else percent-encoded (RFC 3986, UTF-8)."""
    return value if value.isascii() and value.isprintable() else quote(value, safe="")


async def _one_file(request: Request) -> None:
    """Refuse a form with several ``file`` parts (which one was meant?) instead of using the last."""
    form = await request.form()  # Starlette keeps the parsed form: this reads nothing twice
    if len(form.getlist("file")) > 1:
        raise HTTPException(422, "Invalid request: send exactly one 'file' part.")


@router.post("/inference", tags=["legacy"], responses=ERRORS,
             summary="Upscale a base64 image (the original contract)",
             response_description="The upscaled image as a base64-encoded PNG string.")
def inference(body: LegacyRequest, request: Request, server: Server) -> str:
    text = "".join(body.img_str.split())  # as `base64` prints it: line breaks every 76 characters
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise core.errors.ImageDecodeError("img_str is not valid base64.") from exc
    settings = server.settings
    budget = _Budget(server, request)
    decoded = core.decode_with_profile(data, settings.limits)
    default = server.upscaler
    precision = "fp16" if body.half and default is not None and default.choice.device.startswith("cuda") else "auto"
    upscaler = _upscaler(server, budget, None, precision)
    # the original service took any tile: raise tiny ones to the minimum instead of refusing them
    tile = body.tile if body.tile == 0 else max(body.tile, core.MIN_TILE)
    result = _run(budget, upscaler, decoded.pixels, _options(tile=tile, limits=settings.limits))
    return base64.b64encode(core.encode_png(result.image, icc_profile=decoded.icc_profile)).decode("ascii")


@router.post(
    "/v1/upscale", tags=["v1"],
    responses={200: {"content": {"image/png": {}}, "description": "The upscaled image (PNG, bit depth, alpha and ICC "
                     "profile kept), with X-Model (percent-encoded where not ASCII), X-Device, X-Precision, "
                     "X-Input-Size, X-Output-Size, X-Tile, "
                     "X-Elapsed-Seconds."},
               **ERRORS},
    response_class=Response, summary="Upscale an uploaded image, get a PNG back",
    dependencies=[Depends(_one_file)],
)
def upscale(
    request: Request,
    server: Server,
    file: Annotated[UploadFile, File(description="PNG, JPEG, WebP, BMP, TIFF or GIF (first frame)")],
    query: Annotated[UpscaleParams, Query()],
    form: Annotated[UpscaleParams, Form()],
) -> Response:
    kind = (file.content_type or "").split(";")[0].strip().lower()
    if kind and not kind.startswith("image/") and kind != "application/octet-stream":
        raise core.errors.UnsupportedImageError(f"Uploads must be images; got {kind}.")
    params = form.over(query)
    settings = server.settings
    budget = _Budget(server, request)
    decoded = core.decode_with_profile(file.file.read(), settings.limits)
    image = decoded.pixels
    upscaler = _upscaler(server, budget, params.model, params.precision or "auto")
    options = _options(outscale=params.outscale, tile=params.tile, alpha=params.alpha or "model",
                       limits=settings.limits)
    result = _run(budget, upscaler, image, options)
    out = result.image
    headers = {
        "X-Model": _header(result.model), "X-Device": result.device, "X-Precision": result.precision,
        "X-Input-Size": f"{image.shape[1]}x{image.shape[0]}", "X-Output-Size": f"{out.shape[1]}x{out.shape[0]}",
        "X-Tile": str(result.tile),
        "X-Elapsed-Seconds": f"{result.seconds:.3f}",
    }
    return Response(core.encode_png(out, icc_profile=decoded.icc_profile), media_type="image/png", headers=headers)


@router.get("/v1/models", tags=["v1"], summary="Models and their availability")
def models() -> list[ModelOut]:
    return [ModelOut(name=i.name, available=i.available, architecture=i.architecture, scale=i.scale,
                     source=i.source, reason=i.reason, kind=i.kind,
                     licence=i.spec.licence if i.spec else None, url=i.spec.url if i.spec else None)
            for i in core.list_models()]


@router.get("/healthz", tags=["ops"], summary="Liveness")
def healthz() -> Health:
    return Health()


@router.get("/readyz", tags=["ops"], summary="Readiness: the default model is loaded", response_model=Ready,
            responses={503: {"model": ErrorOut}})
def readyz(server: Server) -> Ready | JSONResponse:
    upscaler = server.upscaler
    if upscaler is None:
        return JSONResponse({"error": "not_ready", "message": server.load_error}, status_code=503,
                            headers={"Retry-After": "5"})
    return Ready(ready=True, model=upscaler.info.name, device=upscaler.choice.device,
                 precision=upscaler.choice.precision, weights=upscaler.info.source,
                 fingerprint=upscaler.info.fingerprint)


@router.get("/metrics", tags=["ops"], response_class=PlainTextResponse, summary="Prometheus metrics")
def metrics(server: Server) -> PlainTextResponse:
    gate = server.gate
    return PlainTextResponse(server.metrics.render(gate.depth, gate.running),
                             media_type="text/plain; version=0.0.4")
