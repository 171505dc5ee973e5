"""Per-client token buckets for the public endpoints (the original design's RateLimiter).

In-process per replica: with N replicas behind a load balancer a client gets about N times the
rate, which is the intended horizontal scaling; a global limit belongs in the gateway.
"""

from __future__ import annotations

import threading
import time


class TokenBuckets:
    def __init__(self, rate_per_s: float, burst: float | None = None, max_clients: int = 100_000) -> None:
        self.rate = rate_per_s
        self.burst = burst if burst is not None else max(1.0, 2 * rate_per_s)
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last refill)
        self._lock = threading.Lock()

    def take(self, client: str, now: float | None = None) -> float:
        """0.0 if the request may pass, else the seconds until a token is available."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                if len(self._buckets) >= self.max_clients and client not in self._buckets:
                    self._buckets.clear()  # bounded memory under a flood of distinct clients
                self._buckets[client] = (tokens - 1.0, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate
