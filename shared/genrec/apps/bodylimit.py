"""The request body limit of every genrec app, enforced on the bytes as they arrive.

A pure ASGI middleware wraps ``receive``: a declared ``Content-Length`` over the limit is
refused before anything is read, and a body without one (chunked) is refused as soon as more
than the limit has arrived, whoever reads it (an endpoint, FastAPI's own body parsing). The
answer is always the 413 of ``error_body("body", ...)``: whatever the app made of the refused
read (FastAPI turns it into a 400 "error parsing the body") is discarded.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genrec.apps.errors import error_body

MAX_BODY_BYTES = 4 * 1024 * 1024


class BodyTooLarge(Exception):
    """Raised into the app by ``receive`` once the body passed the limit."""


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def refusal(self) -> JSONResponse:
        return JSONResponse(error_body("body", f"request body exceeds {self.max_bytes} bytes", "payload_too_large"),
                            status_code=413, headers={"connection": "close"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            await self.refusal()(scope, receive, send)
            return
        received, refused, started = 0, False, False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused and not started:
                return  # the app's answer to a read it could not finish: the 413 replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused or started:
                raise
        if refused and not started:
            await self.refusal()(scope, receive, send)
