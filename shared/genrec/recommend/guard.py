"""A store call on the request path that cannot hold the request: a time budget and a breaker.

A store that is down fails fast on its own; one that stalls (a paused server, a full pool, a
network partition: the connection is accepted and nothing comes back) would hold every request
for as long as the driver waits, and PostgreSQL's driver has no client-side read timeout at all.
So the call runs on a few threads of its own and the request waits at most ``budget_s``; after
``failures`` misses in a row the breaker opens and requests skip the store (at once) until a
trial call gets through. A call that timed out keeps its thread until the store answers; with
the breaker open no new ones pile up behind it. A store whose client bounds every call itself
(Redis: a socket timeout) is called inline (``budget_s=None``), behind the breaker alone.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from genrec.serving.breaker import CircuitBreaker

T = TypeVar("T")


class StoreUnavailable(RuntimeError):
    """The store failed, took longer than the budget, or its breaker is open."""

    def __init__(self, store: str, why: str) -> None:
        super().__init__(f"{store} {why}")
        self.store = store  # as genrec.apps.outages names it: "Redis", "PostgreSQL"


class StoreGuard:
    def __init__(self, name: str, budget_s: float | None, *, workers: int = 4, failures: int = 3,
                 reset_s: float = 2.0, unavailable: tuple[type[BaseException], ...] = (Exception,)) -> None:
        self.name, self.budget_s, self.unavailable = name, budget_s, unavailable
        self.breaker = CircuitBreaker(failures, reset_s)
        self._pool = (ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"guard-{name}")
                      if budget_s is not None else None)

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()``'s result, or StoreUnavailable (the store's own error as its cause). Any other
        exception is the store's answer (a bad query, an unknown token): it is raised as itself."""
        if not self.breaker.allow():
            raise StoreUnavailable(self.name, f"skipped: it failed repeatedly; retry in "
                                              f"{self.breaker.retry_in():.1f}s")
        try:
            result = fn() if self._pool is None else self._within_budget(fn)
        except StoreUnavailable:
            raise
        except self.unavailable as exc:
            self.breaker.record_failure()
            raise StoreUnavailable(self.name, f"failed: {type(exc).__name__}") from exc
        except BaseException:
            self.breaker.record_success()
            raise
        self.breaker.record_success()
        return result

    def _within_budget(self, fn: Callable[[], T]) -> T:
        try:
            return self._pool.submit(fn).result(timeout=self.budget_s)
        except FutureTimeout:
            self.breaker.record_failure()
            raise StoreUnavailable(self.name, f"did not answer within {self.budget_s:.2f}s") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
