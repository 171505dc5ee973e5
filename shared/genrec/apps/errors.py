"""The one shape of an error answer from every genrec HTTP app: ``{"error", "field", "message"}``.

``field`` names what to fix (``weight``, ``data.user_id``, ``page_token``, ``authorization``;
empty when nothing in the request is at fault) and ``error`` says what kind of failure it was.
Code raises ``ApiError`` anywhere below an endpoint (a dependency, a client, a helper) and the
handler every app installs (``genrec.apps.common.create_base_app``) answers it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from fastapi import Request
from fastapi.responses import JSONResponse

from genrec.events.codec import EventError


def error_body(field: str, message: str, error: str = "invalid_request") -> dict[str, str]:
    return {"error": error, "field": field, "message": message}


class ApiError(Exception):
    """An error answered with ``error_body(field, message, error)``, ``status`` and ``headers``."""

    def __init__(self, status: int, field: str, message: str, error: str = "invalid_request",
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.field, self.message, self.error = status, field, message, error
        self.headers = dict(headers or {})

    @classmethod
    def unavailable(cls, message: str, error: str = "unavailable") -> ApiError:
        """A dependency is down: 503, and the client may retry in a second."""
        return cls(503, "", message, error, headers={"retry-after": "1"})

    @classmethod
    def rate_limited(cls, wait_s: float, field: str = "", message: str = "rate limit exceeded; slow down") -> ApiError:
        """429: the client may try again in ``wait_s`` seconds (``retry-after``, whole seconds, at least 1)."""
        return cls(429, field, message, "rate_limited", headers={"retry-after": str(max(1, math.ceil(wait_s)))})

    @classmethod
    def from_event(cls, exc: EventError, status: int = 400) -> ApiError:
        """An event that breaks its contract (``EventError.to_json``'s body)."""
        return cls(status, exc.field, exc.message, "invalid_event")

    def body(self) -> dict[str, str]:
        return error_body(self.field, self.message, self.error)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers or None)


async def on_api_error(_request: Request, exc: ApiError) -> JSONResponse:
    """The exception handler: ``raise ApiError(...)`` anywhere in a request becomes its answer."""
    return exc.response()
