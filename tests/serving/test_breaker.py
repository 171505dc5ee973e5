"""Circuit breaker: opens after N consecutive failures, half-opens after the reset time,
closes on a successful trial; the client fails fast while it is open."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from genrec.serving.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from genrec.serving.client import InvalidModelRequest, ModelClient, ModelUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_state_machine() -> None:
    clock = Clock()
    b = CircuitBreaker(failures=3, reset_s=5.0, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    assert b.state == CLOSED
    b.record_success()  # a success resets the count: failures must be consecutive
    for _ in range(3):
        assert b.allow()
        b.record_failure()
    assert b.state == OPEN and not b.allow() and b.retry_in() == pytest.approx(5.0)
    clock.now = 5.0
    assert b.state == HALF_OPEN
    assert b.allow() and not b.allow(), "one trial at a time"
    b.record_failure()  # failed trial: open again for another reset period
    assert b.state == OPEN and not b.allow()
    clock.now = 10.0
    assert b.allow()
    b.record_success()
    assert b.state == CLOSED and b.allow()


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_client_fails_fast_when_open_without_a_server() -> None:
    client = ModelClient(url=f"127.0.0.1:{_dead_port()}", timeout_s=0.5, breaker=CircuitBreaker(2, 60.0))
    for _ in range(2):
        with pytest.raises(ModelUnavailable):
            client.infer(np.array([[1, 2]]))
    assert client.breaker.state == OPEN
    t0 = time.perf_counter()
    with pytest.raises(ModelUnavailable, match="circuit open"):
        client.infer(np.array([[1, 2]]))
    assert time.perf_counter() - t0 < 0.01


@pytest.mark.stack
@pytest.mark.slow
def test_breaker_closes_again_once_the_server_answers(model_server) -> None:
    s = model_server["settings"]
    client = ModelClient(s, url=f"127.0.0.1:{_dead_port()}", timeout_s=30.0, breaker=CircuitBreaker(2, 0.3))
    for _ in range(2):
        with pytest.raises(ModelUnavailable):
            client.infer(np.array([[1, 2]]))
    assert client.breaker.state == OPEN
    client.url = str(s.model_server.url)  # the server "comes back"
    client._drop_client()
    time.sleep(0.35)
    assert client.breaker.state == HALF_OPEN
    assert client.infer(np.array([[1, 2]])).items.shape == (1, 50)
    assert client.breaker.state == CLOSED
    # A malformed request is the caller's bug: it does not count against the server.
    for _ in range(3):
        with pytest.raises(InvalidModelRequest):
            client.infer(np.array([[1, -5]]))
    assert client.breaker.state == CLOSED
