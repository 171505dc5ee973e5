"""Per-client rate limits for the public endpoints: who the client is, and a token bucket each.

A client is the credential it presents *if that credential verifies* (an ingest API key, an
admin token, a valid JWT's subject); an unknown or invalid credential counts as none, so a
fresh made-up header per request buys nothing: such requests are limited by their address.
Authenticated and anonymous clients have their own rates and their own bucket stores, so an
anonymous flood never takes memory or budget from a customer.

In-process per replica: with N replicas behind a load balancer a client gets about N times the
rate, which is the intended horizontal scaling; a global limit belongs in the gateway.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from fastapi import Request

from genrec.apps.admin_auth import principal_for
from genrec.apps.auth import match_key, presented_key
from genrec.config import AuthSettings

MAX_CLIENTS = 100_000  # buckets kept per store (a few MB)


class TokenBuckets:
    """One token bucket per client, in bounded memory, without ever resetting anyone's budget.

    Buckets are kept least recently seen first. At ``max_clients`` a new client may take the
    place of the least recently seen one only if that bucket has refilled completely: dropping
    a full bucket loses nothing (the client would get a full bucket back anyway). While even
    that one is still refilling, every new client shares one overflow bucket, so a flood of
    new names is throttled as a whole and the clients already known keep their budgets."""

    def __init__(self, rate_per_s: float, burst: float | None = None, max_clients: int = MAX_CLIENTS) -> None:
        self.rate = rate_per_s
        self.burst = burst if burst is not None else max(1.0, 2 * rate_per_s)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # client -> [tokens, last refill]
        self._overflow: list[float] | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str, now: float | None = None, n: int = 1) -> float:
        """0.0 if a request costing ``n`` tokens may pass (it takes them), else the seconds until
        they are available (a cost above the burst can never pass: it waits as for the burst)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                bucket = self._admit(client, now)
            else:
                self._buckets.move_to_end(client)
            tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
            if tokens >= n:
                bucket[0] = tokens - n
                return 0.0
            bucket[0] = tokens
            return (min(n, self.burst) - tokens) / self.rate

    def _admit(self, client: str, now: float) -> list[float]:
        if len(self._buckets) >= self.max_clients:
            oldest, (tokens, last) = next(iter(self._buckets.items()))
            if tokens + (now - last) * self.rate < self.burst:
                if self._overflow is None:
                    self._overflow = [self.burst, now]
                return self._overflow
            del self._buckets[oldest]
        bucket = self._buckets[client] = [self.burst, now]
        return bucket


@dataclass(frozen=True)
class Client:
    key: str  # "key:NAME", "token:NAME", "jwt:SUBJECT" or "ip:ADDRESS"
    authenticated: bool


def identify(request: Request, auth: AuthSettings) -> Client:
    """Who is asking, for rate limits: the credential that verifies, else the client address."""
    return verified(presented_key(request), auth) or Client("ip:" + client_address(request, auth.trusted_proxy_hops),
                                                            False)


def verified(presented: str | None, auth: AuthSettings) -> Client | None:
    """The client a presented credential names, if it verifies."""
    if presented:
        name = match_key(presented, auth.ingest_api_keys)
        if name is not None:
            return Client(f"key:{name}", True)
        try:
            principal = principal_for(presented, auth)
        except ValueError:
            pass  # a credential that does not verify is no credential
        else:
            return Client(f"{principal.via}:{principal.name}", True)
    return None


def client_address(request: Request, trusted_hops: int) -> str:
    """The peer address, or behind ``trusted_hops`` proxies the address the outermost one saw
    (each proxy appends its peer to X-Forwarded-For; entries further left are the client's word)."""
    peer = request.client.host if request.client else "unknown"
    if trusted_hops <= 0:
        return peer
    forwarded = [a.strip() for h in request.headers.getlist("x-forwarded-for") for a in h.split(",") if a.strip()]
    return forwarded[-trusted_hops] if len(forwarded) >= trusted_hops else peer


class RateLimiter:
    """The limits of one app: a bucket store per class of client, at that class's rate."""

    def __init__(self, auth: AuthSettings, max_clients: int = MAX_CLIENTS) -> None:
        self.auth = auth
        self.authenticated = TokenBuckets(auth.rate_limit_per_s, max_clients=max_clients)
        self.anonymous = TokenBuckets(auth.anonymous_rate_limit_per_s, max_clients=max_clients)

    def wait_s(self, request: Request) -> float:
        """0.0 if the request may pass, else the seconds its client should wait."""
        return self.take(identify(request, self.auth))

    def take(self, client: Client, n: int = 1) -> float:
        return (self.authenticated if client.authenticated else self.anonymous).take(client.key, n=n)
