"""Pure ASGI middleware: body limit (413), request metrics, and client-disconnect detection.

They are plain ASGI callables rather than ``@app.middleware("http")`` functions: Starlette's
``BaseHTTPMiddleware`` hands the route a receive channel that never reports the client going
away, so work for a closed connection could not be cancelled.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from importlib import resources
from typing import cast

import anyio
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import CLIENT_CLOSED

CLIENT_GONE = "studio.client_gone"  # scope key: a threading.Event set when the client disconnects


def client_gone(scope: Scope) -> threading.Event:
    """The request's disconnect event (a never-set one outside :class:`Observe`)."""
    return scope.get(CLIENT_GONE) or threading.Event()


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, declared or streamed (chunked), and bodies
    that stall for ``idle_timeout`` seconds between two chunks with 408.

    A streamed body is cut off by raising from ``receive``; whoever reads the body may turn
    that into its own error (FastAPI's form parser answers 400), so the response is replaced
    by the 413 (or 408) on its way out. Once the body is complete, ``receive`` waits without a
    limit (:class:`Observe` waits on it for the client leaving).
    """

    def __init__(self, app: ASGIApp, limit: int, idle_timeout: float = 30.0) -> None:
        self.app, self.limit, self.idle_timeout = app, limit, idle_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large()({"type": "http"}, _empty_receive, send)
            return
        seen = 0
        complete = answered = False
        refusal: JSONResponse | None = None

        async def counted() -> Message:
            nonlocal seen, complete, refusal
            if complete:
                return await receive()
            try:
                with anyio.fail_after(self.idle_timeout):
                    message = await receive()
            except TimeoutError:
                refusal = _refusal(408, "timeout", f"The request body stalled for {self.idle_timeout:g} s; "
                                                   "send it in one go.")
                raise _BodyRefusedError from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if seen > self.limit:
                    refusal = self._too_large()
                    raise _BodyRefusedError
            return message

        async def guarded(message: Message) -> None:
            nonlocal answered
            if refusal is None:
                await send(message)
            elif not answered:
                answered = True
                await refusal({"type": "http"}, _empty_receive, send)

        with contextlib.suppress(_BodyRefusedError):
            await self.app(scope, counted, guarded)
        if refusal is not None and not answered:
            await refusal({"type": "http"}, _empty_receive, send)

    def _too_large(self) -> JSONResponse:
        return _refusal(413, "too_large", f"The request body is over {self.limit // 2**20} MB.")


def _refusal(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": kind, "message": message}, status_code=status)


class _BodyRefusedError(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


Observer = Callable[[str, str, int, float], None]


class Observe:
    """Time API requests for the metrics, and watch for the client leaving.

    Once the app has read the whole request body, a watcher task waits on the connection;
    when the client disconnects it sets the scope's :data:`CLIENT_GONE` event, which the
    inference routes poll (from their worker thread) to cancel the job. Later reads of the
    app get the watcher's message, so nothing is received twice.
    """

    def __init__(self, app: ASGIApp, observe: Observer) -> None:
        self.app, self.observe = app, observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gone = threading.Event()
        scope[CLIENT_GONE] = gone
        status = 500
        start = time.perf_counter()
        after_body: Message | None = None
        received = anyio.Event()

        async def watch() -> None:
            nonlocal after_body
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            after_body = message
            received.set()

        watching = False
        async with anyio.create_task_group() as tasks:

            async def wrapped_receive() -> Message:
                nonlocal watching
                if watching:  # the watcher owns the channel now: hand on what it got
                    await received.wait()
                    return after_body  # type: ignore[return-value]
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                elif not message.get("more_body", False):
                    watching = True
                    tasks.start_soon(watch)
                return message

            async def wrapped_send(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, wrapped_receive, wrapped_send)
            finally:
                tasks.cancel_scope.cancel()
                path = getattr(scope.get("route"), "path", None)
                if path is not None:  # API routes only (not the dashboard's assets)
                    # a client that left got no answer: its own outcome, not the 503 we could not send
                    outcome = CLIENT_CLOSED if gone.is_set() else status
                    self.observe(scope["method"], path, outcome, time.perf_counter() - start)


DOCS_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'")


class DocsPolicy:
    """A same-origin Content-Security-Policy on the API docs pages: whatever a future bundle points at, the
    browser fetches nothing from outside (see also :class:`LocalRedocBundle`)."""

    def __init__(self, app: ASGIApp, paths: tuple[str, ...] = ("/docs", "/redoc")) -> None:
        self.app, self.paths = app, paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return

        async def with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"content-security-policy", DOCS_POLICY.encode())]}
            await send(message)

        await self.app(scope, receive, with_policy)


REDOC_BUNDLE = "/static-offline-docs/redoc.standalone.js"
REDOC_LOGO = b'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"'


class LocalRedocBundle:
    """ReDoc's packaged bundle without its one outside reference: the footer's logo on cdn.redoc.ly. Its
    ``src`` becomes ``data:,``, which fails to load, and ReDoc then draws no logo. The docs ask for nothing
    outside the server, rather than a request the policy has to block."""

    def __init__(self, app: ASGIApp) -> None:
        self.app, self._body = app, cast("bytes | None", None)

    def body(self) -> bytes:
        if self._body is None:
            bundle = resources.files("fastapi_offline") / "static" / "redoc.standalone.js"
            self._body = bundle.read_bytes().replace(REDOC_LOGO, b'src:"data:,"')
        return self._body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != REDOC_BUNDLE or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        body = self.body()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/javascript; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()),
                                (b"cache-control", b"public, max-age=86400")]})
        await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})
