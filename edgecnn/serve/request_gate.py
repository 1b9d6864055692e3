"""What every request passes through: the API-key check, request metrics, and JSON errors.

:class:`RequestGate` is plain ASGI middleware (outside routing, so 401s and unknown paths are
counted too); :func:`error_handlers` turns every failure, expected or not, into a JSON answer
``{"error": ..., "kind": ...}``, so a client in any language reads errors the same way.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgecnn.serve.http_errors import ServeError
from edgecnn.serve.metrics import ServeMetrics

log = logging.getLogger("edgecnn.serve")


def error_response(error: ServeError) -> JSONResponse:
    """The JSON answer of a :class:`ServeError`."""
    return JSONResponse(error.payload(), status_code=error.status, headers=error.headers)


class RequestGate:
    """ASGI middleware: refuse requests without the API key, count and time every request."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServeMetrics,
        api_key: str | None,
        open_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self._key = None if api_key is None else api_key.encode()
        self._open = frozenset(open_paths)

    def _authorized(self, scope: Scope) -> bool:
        if self._key is None or scope["path"] in self._open:
            return True
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._key)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_progress.inc()
        try:
            if not self._authorized(scope):
                error = ServeError(
                    "unauthorized",
                    "missing or wrong API key; send 'Authorization: Bearer <key>'",
                    {"WWW-Authenticate": "Bearer"},
                )
                self.metrics.errors.labels(kind=error.kind).inc()
                await error_response(error)(scope, receive, send_status)
                return
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_progress.dec()
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.request_done(endpoint, status, time.perf_counter() - started)


def error_handlers(metrics: ServeMetrics) -> dict[Any, Any]:
    """Starlette exception handlers: ServeError, routing errors (404/405) and crashes (500)."""

    async def serve_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServeError)
        metrics.errors.labels(kind=exc.kind).inc()
        return error_response(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kinds = {404: "not_found", 405: "method_not_allowed"}
        kind = kinds.get(exc.status_code, "bad_request")
        metrics.errors.labels(kind=kind).inc()
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return JSONResponse(
            {"error": message, "kind": kind}, status_code=exc.status_code, headers=exc.headers
        )

    async def crash(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        metrics.errors.labels(kind="internal").inc()
        message = f"internal error: {type(exc).__name__}: {exc}"
        return JSONResponse({"error": message, "kind": "internal"}, status_code=500)

    return {ServeError: serve_error, HTTPException: http_error, Exception: crash}
