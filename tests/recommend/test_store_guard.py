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


def test_an_inline_guard_skips_a_store_whose_client_keeps_timing_out() -> None:
    import redis

    # A real client against a port nobody answers on: each call fails after the client's own timeout.
    client = redis.Redis(host="127.0.0.1", port=1, socket_timeout=0.2, socket_connect_timeout=0.2)
    guard = StoreGuard("Redis", budget_s=None, failures=2, reset_s=60, unavailable=(redis.RedisError,))
    for _ in range(2):
        with pytest.raises(StoreUnavailable, match="Redis failed"):
            guard.call(client.ping)
    started = time.perf_counter()
    with pytest.raises(StoreUnavailable, match="skipped"):
        guard.call(client.ping)
    assert time.perf_counter() - started < 0.05


def test_an_answer_that_is_an_error_closes_a_half_open_breaker() -> None:
    """A trial call that raises something other than an outage (an unknown page token, say) is
    the store answering: the breaker must let calls through again, not wait for a trial forever."""
    clock = [0.0]
    guard = StoreGuard("Redis", budget_s=None, failures=1, reset_s=1.0, unavailable=(ConnectionError,))
    guard.breaker.clock = lambda: clock[0]
    with pytest.raises(StoreUnavailable):
        guard.call(lambda: (_ for _ in ()).throw(ConnectionError("down")))
    clock[0] = 2.0  # half-open: one trial
    with pytest.raises(KeyError):
        guard.call(lambda: {}["unknown token"])
    assert guard.call(lambda: "served") == "served"
