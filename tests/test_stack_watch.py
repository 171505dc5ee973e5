"""A local server that dies or breaks while the stack is in use is reported at once, by name,
with the end of its log; one stopped on purpose is not."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from genrec.config import Settings
from genrec.devstack import stack as devstack
from genrec.devstack.process import read_record
from genrec.devstack.watch import ServerCrashed, StackWatch, crash_guard
from tests.helpers import free_port_base

pytestmark = pytest.mark.stack

QUIET = {"on_progress": lambda _m: None}


def _private_stack(tmp_path: Path, stack_env: dict[str, str], names: list[str]) -> Iterator[Settings]:
    s = Settings(stack={"state_dir": tmp_path / "state",
                        "port_base": free_port_base(taken=int(stack_env["GENREC_STACK__PORT_BASE"]))})
    devstack.up(s, names, **QUIET)
    try:
        yield s
    finally:
        devstack.down(s, **QUIET)


@pytest.fixture
def redis_only(tmp_path: Path, stack_env: dict[str, str]) -> Iterator[Settings]:
    yield from _private_stack(tmp_path, stack_env, ["redis"])


@pytest.fixture
def postgres_only(tmp_path: Path, stack_env: dict[str, str]) -> Iterator[Settings]:
    yield from _private_stack(tmp_path, stack_env, ["postgres"])


def _kill(s: Settings, name: str) -> None:
    os.kill(read_record(devstack.paths_for(s).pid(name)).pid, signal.SIGKILL)


def test_a_killed_server_interrupts_a_wait_at_once_naming_it(redis_only: Settings) -> None:
    started = time.monotonic()
    crashed = pytest.raises(ServerCrashed, match=r"'redis' .* exited unexpectedly.*last lines")
    with crashed as crash, crash_guard(redis_only):
        _kill(redis_only, "redis")
        time.sleep(60)  # stands for any long wait on the dead server
    assert time.monotonic() - started < 10
    assert str(devstack.paths_for(redis_only).log("redis")) in str(crash.value)


def test_a_server_stopped_or_restarted_on_purpose_is_not_a_crash(redis_only: Settings) -> None:
    seen: list[ServerCrashed] = []
    watch = StackWatch(redis_only, seen.append, interval_s=0.1).start()
    try:
        devstack.down(redis_only, ["redis"], **QUIET)
        time.sleep(0.5)
        devstack.up(redis_only, ["redis"], **QUIET)
        watch.expect_exit("redis")
        _kill(redis_only, "redis")
        time.sleep(0.5)
    finally:
        watch.stop()
    assert seen == []


def test_a_postgres_backend_killed_by_a_signal_is_reported_though_the_server_lives_on(
    postgres_only: Settings,
) -> None:
    # What a pgvector built for the wrong CPU does (SIGILL in a backend): the postmaster survives
    # and goes into recovery, so only its log says what happened.
    seen: list[ServerCrashed] = []
    watch = StackWatch(postgres_only, seen.append, interval_s=0.1).start()
    try:
        conn = psycopg.connect(postgres_only.postgres.dsn.get_secret_value())
        os.kill(conn.execute("SELECT pg_backend_pid()").fetchone()[0], signal.SIGKILL)
        with contextlib.suppress(psycopg.Error):
            conn.close()
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        watch.stop()
    assert len(seen) == 1
    assert "'postgres'" in str(seen[0]) and "was terminated by signal 9" in str(seen[0])


def test_a_client_error_from_a_crashed_server_is_reported_as_the_crash(redis_only: Settings) -> None:
    # The client sees the dropped connection before the watcher's next poll: the guard still
    # names the server instead of passing on the client's error.
    import redis

    client = redis.Redis.from_url(redis_only.redis.url.get_secret_value())
    client.ping()
    with pytest.raises(ServerCrashed, match="'redis'") as crash, crash_guard(redis_only):
        _kill(redis_only, "redis")
        time.sleep(0.05)
        client.ping()
    assert isinstance(crash.value.__cause__, redis.ConnectionError)
