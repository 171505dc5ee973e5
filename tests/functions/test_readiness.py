"""A function says ready only while the stores it needs answer, and cheaply: its readiness
follows a store that stops and comes back (a private Redis: the session stack's servers are
shared by the whole suite, so none of them is stopped here)."""

from __future__ import annotations

import importlib.util
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from genrec.apps import recommend
from genrec.apps.knative import AsgiFunction
from genrec.apps.readiness import Readiness
from genrec.config import Settings, get_settings
from genrec.devstack import stack as devstack
from genrec.devstack.services import FUNCTIONS_DIR
from tests.helpers import free_port_base, wait_for

pytestmark = pytest.mark.stack

QUIET = {"on_progress": lambda _m: None}


@pytest.fixture
def private_redis(tmp_path: Path, stack_env: dict[str, str]) -> Iterator[Settings]:
    s = Settings(stack={"state_dir": tmp_path / "state",
                        "port_base": free_port_base(taken=int(stack_env["GENREC_STACK__PORT_BASE"]))})
    devstack.up(s, ["redis"], **QUIET)
    try:
        yield s
    finally:
        devstack.down(s, **QUIET)


@pytest.fixture
def settings_with_private_redis(stack: Settings, private_redis: Settings) -> Iterator[Settings]:
    """The process's settings, as a function reads them from its environment: the session
    stack's (its PostgreSQL, its Kafka) with the private Redis."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENREC_REDIS__URL", private_redis.redis.url.get_secret_value())
        get_settings.cache_clear()
        try:
            yield get_settings()
        finally:
            get_settings.cache_clear()


def _new(name: str) -> AsgiFunction:
    """``new()`` of functions/NAME/function/func.py: the object func-python serves."""
    spec = importlib.util.spec_from_file_location(f"func_{name.replace('-', '_')}",
                                                  FUNCTIONS_DIR / name / "function" / "func.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.new()


def _pings(s: Settings) -> int:
    with redis.Redis.from_url(s.redis.url.get_secret_value()) as client:
        return int(client.info("commandstats").get("cmdstat_ping", {}).get("calls", 0))


def test_a_function_is_unready_while_a_store_it_needs_is_down_and_ready_again_when_it_is_back(
    settings_with_private_redis: Settings, private_redis: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from func_python.http import ASGIApplication  # imported here: importing it configures logging

    # The function's start sets this process's logging and tracer: keep the test process's own.
    monkeypatch.setattr("genrec.logs.configure_logging", lambda *_a, **_k: None)
    monkeypatch.setattr("genrec.tracing.setup_tracing", lambda *_a, **_k: None)
    # func-python runs feature-update as in its container: it starts the function, answers
    # /health/* from the function, and hands every other path to the function's app.
    with TestClient(ASGIApplication(_new("feature-update"))) as runtime:
        def readiness() -> tuple[int, str]:
            resp = runtime.get("/health/readiness")
            return resp.status_code, resp.text

        assert readiness() == (200, "OK")
        resp = runtime.get("/readyz")
        assert resp.status_code == 200
        assert resp.json() == {"status": "ready", "dependencies": {"redis": "ok", "postgres": "ok"}}

        devstack.down(private_redis, ["redis"], **QUIET)
        assert wait_for(lambda: readiness()[0] != 200, timeout_s=10)
        assert readiness() == (500, "not ready: redis not answering")
        resp = runtime.get("/readyz")
        assert resp.status_code == 503
        assert resp.json() == {"status": "not ready", "dependencies": {"redis": "down", "postgres": "ok"}}

        devstack.up(private_redis, ["redis"], **QUIET)
        assert wait_for(lambda: readiness()[0] == 200, timeout_s=10)
        assert readiness() == (200, "OK")
        assert runtime.get("/readyz").status_code == 200


def test_the_recommend_api_stays_ready_without_redis_as_it_answers_without_it(
    settings_with_private_redis: Settings, private_redis: Settings,
) -> None:
    # An unready replica gets no traffic at all: Redis down must not take the fallbacks away.
    app = recommend.create_app(settings_with_private_redis)
    devstack.down(private_redis, ["redis"], **QUIET)
    try:
        resp = TestClient(app).get("/readyz")  # the first check: made now, with Redis down
        assert resp.status_code == 200
        assert resp.json() == {"status": "ready", "dependencies": {"postgres": "ok"}}
    finally:
        app.state.readiness.close()


def test_readiness_asks_a_store_at_most_once_per_ttl_and_waits_at_most_its_timeout(private_redis: Settings) -> None:
    ready = Readiness(private_redis, ("redis",), ttl_s=1.0, timeout_s=0.5)
    try:
        assert ready()  # the first check opens the probe's client (redis-py pings a new connection)
        before = _pings(private_redis)
        time.sleep(1.1)
        assert all(ready() for _ in range(200))  # a burst of probes
        assert _pings(private_redis) - before == 1
        time.sleep(1.1)
        assert ready()
        assert _pings(private_redis) - before == 2  # the answer expired: asked again

        # A store that takes connections but never answers (stopped, not gone) costs a probe
        # no more than the timeout.
        pid = devstack.status(private_redis, ["redis"])[0].pid
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(1.1)
            started = time.monotonic()
            assert ready() is False
            assert time.monotonic() - started < 1.0
            assert ready.dependencies() == {"redis": False}  # cached: no second wait
            assert time.monotonic() - started < 1.0
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(1.1)
        assert wait_for(ready, timeout_s=5)
    finally:
        ready.close()
