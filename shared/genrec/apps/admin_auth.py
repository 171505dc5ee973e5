"""Admin API authentication: static bearer tokens or HS256 JWTs, and two roles.

viewer reads everything; operator may also change things (canary weights, promotion,
item upserts, test interactions). A JWT carries ``sub``, ``role`` and ``exp`` (required, at most
``auth.jwt_max_lifetime_s`` after ``iat``, or after now without one) and is signed with
``settings.auth.jwt_secret``; the HS256 check is a few lines of stdlib, which avoids a dependency
and leaves no room for "alg: none" style confusion.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request

from genrec.apps.auth import match_key, presented_key
from genrec.apps.errors import ApiError
from genrec.config import AuthSettings, Settings

Role = Literal["viewer", "operator"]
ROLE_RANK: dict[str, int] = {"viewer": 0, "operator": 1}
CLOCK_SKEW_S = 30


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    via: Literal["token", "jwt"]

    def can(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_jwt(claims: dict[str, Any], secret: str) -> str:
    """An HS256 JWT (used by tests and tooling to mint short-lived admin tokens: set `exp`)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    sig = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(sig)}"


def decode_jwt(token: str, secret: str, *, max_lifetime_s: float, now: float | None = None) -> dict[str, Any]:
    """Verified claims of an HS256 JWT that expires within `max_lifetime_s`; ValueError says why it was refused."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("malformed token")
    try:
        header = json.loads(_unb64url(parts[0]))
        claims = json.loads(_unb64url(parts[1]))
        sig = _unb64url(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("malformed token") from exc
    # Only HS256: the algorithm is fixed by the server, never chosen by the token.
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise ValueError("unsupported token algorithm")
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(sig, expected):
        raise ValueError("bad token signature")
    if not isinstance(claims, dict):
        raise ValueError("malformed token")
    t = time.time() if now is None else now
    exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
    if exp is None:
        raise ValueError("token has no expiry (exp); tokens must expire")
    if not _is_time(exp) or t > exp + CLOCK_SKEW_S:
        raise ValueError("token expired")
    if nbf is not None and (not _is_time(nbf) or t < nbf - CLOCK_SKEW_S):
        raise ValueError("token not yet valid")
    if iat is not None and not _is_time(iat):
        raise ValueError("malformed token: iat is not a time")
    # A stolen token is good until exp: bound how long that is, from its issue (else from now).
    lifetime = exp - (iat if iat is not None else t)
    if lifetime > max_lifetime_s:
        raise ValueError(f"token lifetime of {lifetime:.0f} s exceeds the {max_lifetime_s:.0f} s allowed "
                         f"(auth.jwt_max_lifetime_s)")
    return claims


def _is_time(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def unauthorized(message: str) -> ApiError:
    """401: no valid credential (the answer says which scheme to present)."""
    return ApiError(401, "authorization", message, "unauthorized", headers={"www-authenticate": "Bearer"})


def principal_for(presented: str, auth: AuthSettings) -> Principal:
    """Whom a presented admin token or JWT verifies as; ValueError says why it does not."""
    name = match_key(presented, auth.admin_tokens)
    if name is not None:
        return Principal(name, auth.admin_roles.get(name, "viewer"), "token")
    if presented.count(".") != 2:
        raise ValueError("invalid token")
    claims = decode_jwt(presented, auth.jwt_secret.get_secret_value(), max_lifetime_s=auth.jwt_max_lifetime_s)
    role = claims.get("role", "viewer")
    if role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r} in token")
    return Principal(str(claims.get("sub", "jwt")), role, "jwt")


def authenticate(request: Request, s: Settings) -> Principal:
    """Who is calling; raises 401 ApiError when no valid credential was presented."""
    presented = presented_key(request)
    if not presented:
        raise unauthorized("missing bearer token")
    try:
        return principal_for(presented, s.auth)
    except ValueError as exc:
        raise unauthorized(str(exc)) from None


def require(role: Role):
    """A FastAPI dependency: the caller, who must hold at least ``role`` (else 401/403)."""

    def dependency(request: Request) -> Principal:
        principal = authenticate(request, request.app.state.settings)
        if not principal.can(role):
            raise ApiError(403, "authorization", f"role {principal.role!r} may not do this; needs {role!r}",
                           "forbidden")
        return principal

    return dependency
