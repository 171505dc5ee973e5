"""The admin API's two outbound clients: event capture (every write is an event, so the admin
path exercises exactly what upstream systems do) and the recommend API (the inspector and
the shopper page show what real shoppers get)."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel

from genrec.apps.errors import ApiError
from genrec.config import Settings
from genrec.events.codec import new_event, to_http_binary

ADMIN_SOURCE = "genrec-admin"


def _ingest_headers(s: Settings) -> dict[str, str]:
    """The deployment's first ingest key: event capture wants it, and recommend limits its holder as a client of its
    own (not as one more anonymous caller from the admin API's address)."""
    key = next(iter(s.auth.ingest_api_keys.values()), None)
    return {"authorization": f"Bearer {key.get_secret_value()}"} if key else {}


def _upstream_error(what: str, resp: httpx.Response) -> ApiError:
    """A 4xx from a downstream service keeps its field and status; anything else is a 502/503."""
    try:
        body = resp.json()
    except ValueError:
        body = {}
    field = body.get("field", "") if isinstance(body, dict) else ""
    message = body.get("message") if isinstance(body, dict) else None
    if 400 <= resp.status_code < 500 and resp.status_code not in (401, 403):
        return ApiError(resp.status_code, field, f"{what}: {message or resp.text[:200]}",
                        body.get("error", "invalid_request") if isinstance(body, dict) else "invalid_request")
    status = 503 if resp.status_code in (502, 503, 504) else 502
    return ApiError(status, field, f"{what} answered {resp.status_code}: {message or resp.text[:200]}",
                    "upstream_error")


class EventSender:
    def __init__(self, s: Settings, timeout_s: float = 10.0) -> None:
        self.url = s.function_url("event_capture") + "/api/v1/events"
        self.headers = _ingest_headers(s)
        self.client = httpx.AsyncClient(timeout=timeout_s)

    async def send(self, event_type: str, data: BaseModel | dict[str, Any], source: str = ADMIN_SOURCE) -> str:
        """Publish one event through event capture; returns its id once the broker has it."""
        ev = new_event(event_type, data, source=source)
        headers, body = to_http_binary(ev)
        try:
            resp = await self.client.post(self.url, headers={**headers, **self.headers}, content=body)
        except httpx.HTTPError as exc:
            raise ApiError(503, "", f"event capture unavailable: {exc}", "unavailable") from None
        if resp.status_code != 202:
            raise _upstream_error("event capture", resp)
        return ev.id

    async def close(self) -> None:
        await self.client.aclose()


class RecommendClient:
    def __init__(self, s: Settings, timeout_s: float = 10.0) -> None:
        self.client = httpx.AsyncClient(base_url=s.function_url("recommend") + "/api/v1/recommend",
                                        headers=_ingest_headers(s), timeout=timeout_s)

    async def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                   expect: tuple[int, ...] = (200,)) -> dict[str, Any]:
        try:
            resp = await self.client.request(method, path, json=json,
                                             params={k: v for k, v in (params or {}).items() if v not in (None, "")})
        except httpx.HTTPError as exc:
            raise ApiError(503, "", f"recommend service unavailable: {exc}", "unavailable") from None
        if resp.status_code not in expect:
            raise _upstream_error("recommend service", resp)
        return resp.json()

    async def close(self) -> None:
        await self.client.aclose()
