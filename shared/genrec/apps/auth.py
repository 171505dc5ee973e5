"""Bearer-token / API-key checks shared by the HTTP apps."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from fastapi import Request
from pydantic import SecretStr

from genrec.apps.errors import ApiError


def presented_key(request: Request) -> str | None:
    return presented_in(request.headers)


def presented_in(headers: Mapping[str, str]) -> str | None:
    """The credential in HTTP headers or gRPC metadata (lower-case names): a bearer token or an API key."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return headers.get("x-api-key")


def match_key(presented: str | None, keys: dict[str, SecretStr]) -> str | None:
    """The name of the key that matches (constant-time compare), or None."""
    if not presented:
        return None
    for name, secret in keys.items():
        if hmac.compare_digest(presented.encode(), secret.get_secret_value().encode()):
            return name
    return None


def require_ingest_key(request: Request, keys: dict[str, SecretStr]) -> None:
    """401 unless the request presents one of the ingest ``keys``; none configured: open (the loopback stack)."""
    if keys and match_key(presented_key(request), keys) is None:
        raise ApiError(401, "authorization", "missing or invalid API key", "unauthorized")
