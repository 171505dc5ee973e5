"""Readiness: an app says ready only while the stores it cannot work without answer.

Each app names those stores (``Readiness(s, ("redis", "postgres"))``); ``/readyz`` and
func-python's ``/health/readiness`` ask it. Probes come every few seconds, so a check stays
cheap: one long-lived client per store (its own, with a short timeout, not the app's), one
round trip each, all at once, at most once per ``ttl_s`` (callers in between get the last
answer), and no caller waits longer than ``timeout_s`` for a store that does not answer.

A store whose loss the app survives is not named: an unready replica gets no traffic at
all, which would turn a degraded answer into none (the recommend API serves without Redis,
Milvus or the model server; event-capture's dedup in Redis is an optimisation).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from genrec.config import Settings

log = logging.getLogger("genrec.readiness")

DEFAULT_TTL_S = 2.0
DEFAULT_TIMEOUT_S = 1.0


class Probe:
    """One store's ping over one client, opened on first use and opened again after a failure."""

    def __init__(self, open_client: Callable[[], Any], ping: Callable[[Any], object],
                 close_client: Callable[[Any], object] | None = lambda c: c.close()) -> None:
        """``close_client`` None: a client that heals itself, kept across failures (and only dropped)."""
        self._open, self._ping, self._close = open_client, ping, close_client
        self._client: Any = None

    def __call__(self) -> None:
        """Returns when the store answered, raises otherwise."""
        if self._client is None:
            self._client = self._open()
        try:
            self._ping(self._client)
        except Exception:
            if self._close is not None:
                self.close()
            raise

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._close is not None:
            try:
                self._close(client)
            except Exception as exc:  # closing a broken client may fail too; it is dropped either way
                log.debug("closing a probe client: %s", exc)


def _redis(s: Settings, timeout_s: float) -> Probe:
    from genrec.stores.hot_state import redis_client

    return Probe(lambda: redis_client(s, timeout_s=timeout_s), lambda r: r.ping())


def _postgres(s: Settings, timeout_s: float) -> Probe:
    from genrec.stores.postgres import connect

    # tcp_user_timeout: a server gone silent fails the query instead of holding it for minutes.
    return Probe(lambda: connect(s, autocommit=True, connect_timeout=2, tcp_user_timeout=int(timeout_s * 1000)),
                 lambda conn: conn.execute("SELECT 1"))


def _milvus(s: Settings, timeout_s: float) -> Probe:
    from pymilvus import MilvusClient

    token = s.milvus.token.get_secret_value() if s.milvus.token else ""
    # dedicated: a connection of its own, so closing it never touches the app's shared one
    return Probe(lambda: MilvusClient(uri=s.milvus.uri, token=token, timeout=timeout_s, dedicated=True),
                 lambda client: client.get_server_version(timeout=timeout_s))


def _kafka(s: Settings, timeout_s: float) -> Probe:
    from genrec.events.kafka import admin_client

    # librdkafka reconnects by itself: the client is kept across failures.
    return Probe(lambda: admin_client(s), lambda admin: admin.list_topics(timeout=timeout_s), None)


def _clickhouse(s: Settings, timeout_s: float) -> Probe:
    if s.clickhouse.url is None:  # chDB runs inside the process that owns it: it answers when the process does
        return Probe(lambda: None, lambda _c: None)

    def open_client() -> Any:
        import clickhouse_connect

        return clickhouse_connect.get_client(dsn=s.clickhouse.url.get_secret_value(), connect_timeout=timeout_s,
                                             send_receive_timeout=timeout_s)

    def ping(client: Any) -> None:
        if not client.ping():
            raise ConnectionError("ClickHouse does not answer /ping")

    return Probe(open_client, ping)


PROBES: dict[str, Callable[[Settings, float], Probe]] = {
    "redis": _redis, "postgres": _postgres, "milvus": _milvus, "kafka": _kafka, "clickhouse": _clickhouse,
}


class Readiness:
    """Whether each store an app needs answers, checked at most once per ``ttl_s``."""

    def __init__(self, s: Settings, needs: Sequence[str], *, ttl_s: float = DEFAULT_TTL_S,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        unknown = sorted(set(needs) - PROBES.keys())
        if unknown:
            raise ValueError(f"no readiness probe for {unknown}; known: {sorted(PROBES)}")
        self.needs = tuple(dict.fromkeys(needs))
        self.ttl_s, self.timeout_s = ttl_s, timeout_s
        self._probes = {name: PROBES[name](s, timeout_s) for name in self.needs}  # no client opens yet
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.needs)), thread_name_prefix="readiness")
        self._running: dict[str, Future[None]] = {}
        self._answers: dict[str, bool] = {}
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        return all(self.dependencies().values())

    def dependencies(self) -> dict[str, bool]:
        """Each needed store → whether it answered (the answer at most ``ttl_s`` old)."""
        with self._lock:  # one check at a time; callers meanwhile wait for its answer
            if time.monotonic() - self._checked_at >= self.ttl_s:
                self._check()
                self._checked_at = time.monotonic()
            return dict(self._answers)

    def _check(self) -> None:
        for name, probe in self._probes.items():
            if name not in self._running:  # a ping still out from an earlier check is not sent twice
                self._running[name] = self._pool.submit(probe)
        wait(list(self._running.values()), timeout=self.timeout_s)
        for name, future in list(self._running.items()):
            if not future.done():
                self._record(name, False, f"no answer within {self.timeout_s:g} s")
                continue
            del self._running[name]
            error = future.exception()
            self._record(name, error is None, f"{type(error).__name__}: {error}")

    def _record(self, name: str, ok: bool, why: str) -> None:
        before = self._answers.get(name)
        self._answers[name] = ok
        if ok and before is False:
            log.info("readiness: %s answers again", name)
        elif not ok and before is not False:
            log.warning("readiness: %s does not answer (%s): not ready", name, why)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for probe in self._probes.values():
            probe.close()
