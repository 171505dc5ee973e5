"""What every genrec app does around each HTTP request: its id, its rate limit, its span, its metrics.

A pure ASGI middleware: starlette's ``@app.middleware("http")`` (BaseHTTPMiddleware) runs the app in
a task group behind memory streams, which cost a recommend request more CPU than its own Redis calls.
"""

from __future__ import annotations

import time
import uuid

from prometheus_client import Counter, Histogram
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genrec.apps.errors import ApiError
from genrec.apps.ratelimit import RateLimiter
from genrec.logs import REQUEST_ID
from genrec.tracing import server_span

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics", "/health/liveness", "/health/readiness"})  # never limited


class Observe:
    """The caller's ``x-request-id`` (or a new one) in every log line and on the response; the
    client's rate limit (``limits``; a 429 answered here); a server span joined to the caller's
    trace; latency and status counted by route."""

    def __init__(self, app: ASGIApp, *, service: str, requests: Counter, latency: Histogram,
                 limits: RateLimiter | None = None) -> None:
        self.app, self.service, self.limits = app, service, limits
        self.requests, self.latency = requests, latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        request_id = (request.headers.get("x-request-id") or uuid.uuid4().hex)[:128]
        scope.setdefault("state", {})["request_id"] = request_id
        REQUEST_ID.set(request_id)  # this request's task context only: every log line carries it
        if self.limits is not None and scope["path"] not in EXEMPT:
            wait_s = self.limits.wait_s(request)
            if wait_s > 0:
                refused = ApiError.rate_limited(wait_s).response()
                refused.headers["x-request-id"] = request_id
                await refused(scope, receive, send)
                return
        status = 500  # what the server's error middleware answers when the app raises
        id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        start = time.perf_counter()
        with server_span(f"{request.method} {scope['path']}", request.headers) as span:
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                path = getattr(scope.get("route"), "path", "unmatched")  # the router sets it on this scope
                span.update_name(f"{request.method} {path}")
                span.set_attribute("http.response.status_code", status)
                self.latency.labels(self.service, path).observe(time.perf_counter() - start)
                self.requests.labels(self.service, path, str(status)).inc()
