"""The request path's guard around a store: a stalled store costs a request its budget, no more,
and a failing one costs nothing once the breaker is open."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from genrec.recommend.guard import StoreGuard, StoreUnavailable
from genrec.stores.postgres import UNAVAILABLE


def test_a_stalled_call_is_abandoned_at_the_budget_and_the_breaker_then_skips_the_store() -> None:
    guard = StoreGuard("PostgreSQL", budget_s=0.1, failures=2, reset_s=60)
    release = threading.Event()
    calls = 0

    def stalled() -> str:
        nonlocal calls
        calls += 1
        release.wait(5)
        return "late"

    try:
        for _ in range(2):
            started = time.perf_counter()
            with pytest.raises(StoreUnavailable, match=r"did not answer within 0\.10s"):
                guard.call(stalled)
            assert time.perf_counter() - started < 1.0
        started = time.perf_counter()
        with pytest.raises(StoreUnavailable, match="skipped"):
            guard.call(stalled)
        assert time.perf_counter() - started < 0.05 and calls == 2  # the open breaker did not call it
    finally:
        release.set()
        guard.close()


def test_a_real_connection_failure_is_unavailable_and_a_bug_is_raised_as_itself() -> None:
    guard = StoreGuard("PostgreSQL", budget_s=5, unavailable=UNAVAILABLE)
    try:
        # A real driver error: nothing listens on port 1.
        with pytest.raises(StoreUnavailable) as caught:
            guard.call(lambda: psycopg.connect("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2))
        assert isinstance(caught.value.__cause__, psycopg.OperationalError)
        with pytest.raises(ZeroDivisionError):
            guard.call(lambda: 1 / 0)
        assert guard.call(lambda: "answer") == "answer"
    finally:
        guard.close()
