"""PostgreSQL + pgvector: the system of record. Connections, pool, migrations.

psycopg 3 with parameterised SQL only; identifiers that must be formatted (partition
names) go through psycopg.sql.Identifier.

Repositories (catalog_repo, users_repo, events_repo, model_registry) take a ``Db``: a
pool (one transaction per call) or a connection (the call joins the caller's transaction,
as a savepoint when one is open), so a caller can group several writes atomically.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime

import psycopg
from pgvector.psycopg import register_vector
from psycopg import errors, sql
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from genrec.config import Settings, get_settings
from genrec.stores.migrations import MIGRATIONS

_MIGRATION_LOCK = 7_241_001  # pg_advisory_lock key: one migrator at a time

# What PostgreSQL being away (down, restarting, out of connections) looks like to psycopg and its
# pool; any other error is a bug or bad data.
UNAVAILABLE: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout,
                                            PoolClosed)


def dsn(s: Settings | None = None) -> str:
    return (s or get_settings()).postgres.dsn.get_secret_value()


Db = ConnectionPool | psycopg.Connection


def connect(s: Settings | None = None, *, vector: bool = False, **kwargs) -> psycopg.Connection:
    """A new connection; ``vector=True`` maps pgvector columns to/from numpy (needs migration 1)."""
    conn = psycopg.connect(dsn(s), **{"connect_timeout": 5, **kwargs})
    if vector:
        _register_types(conn)
    return conn


def _register_types(conn: psycopg.Connection) -> None:
    register_vector(conn)
    if not conn.autocommit:
        conn.commit()  # the type lookup opened a transaction; pools want idle connections


_LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost")


def _renice_backend(conn: psycopg.Connection, niceness: int) -> None:
    """Give this connection's server process ``niceness`` when the server runs on this machine
    (loopback or a Unix socket); a remote server's process ids are not ours."""
    if niceness and (conn.info.host in _LOCAL_HOSTS or conn.info.host.startswith("/")):
        with suppress(ProcessLookupError, PermissionError):
            os.setpriority(os.PRIO_PROCESS, conn.info.backend_pid, niceness)


def make_pool(s: Settings | None = None, *, vector: bool = True) -> ConnectionPool:
    s = s or get_settings()
    niceness = s.postgres.backend_niceness

    def configure(conn: psycopg.Connection) -> None:
        _renice_backend(conn, niceness)
        if vector:
            _register_types(conn)

    pool = ConnectionPool(
        dsn(s), min_size=s.postgres.pool_min_size, max_size=s.postgres.pool_max_size,
        kwargs={"connect_timeout": 5}, configure=configure, open=False,
    )
    pool.open(wait=True, timeout=10)
    return pool


@contextmanager
def transaction(db: Db) -> Iterator[psycopg.Connection]:
    """Commit on success, roll back on error; nested inside an open transaction it is a savepoint."""
    if isinstance(db, ConnectionPool):
        with db.connection() as conn:
            yield conn
    else:
        with db.transaction():
            yield db


def migrate(s: Settings | None = None) -> list[int]:
    """Apply pending migrations in order; returns the versions applied (idempotent)."""
    s = s or get_settings()
    applied_now = []
    with connect(s, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, name, body in MIGRATIONS:
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(body.format(dim=int(s.postgres.embedding_dim)))
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                    )
                applied_now.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    return applied_now


def applied_migrations(s: Settings | None = None) -> list[tuple[int, str, datetime]]:
    """(version, name, applied_at) of every applied migration; empty before the first migrate."""
    with connect(s) as conn:
        if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
            return []
        return conn.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version").fetchall()


def pending_migrations(s: Settings | None = None) -> list[tuple[int, str]]:
    done = {v for v, _, _ in applied_migrations(s)}
    return [(v, name) for v, name, _ in MIGRATIONS if v not in done]


def month_partition(ts: datetime) -> tuple[str, datetime, datetime]:
    """Name and [start, end) bounds of the month partition holding ts."""
    ts = ts.astimezone(UTC)
    start = datetime(ts.year, ts.month, 1, tzinfo=UTC)
    end = datetime(ts.year + (ts.month == 12), ts.month % 12 + 1, 1, tzinfo=UTC)
    return f"user_events_{ts.year:04d}_{ts.month:02d}", start, end


def ensure_event_partition(conn: psycopg.Connection, ts: datetime) -> str:
    """Create the month partition for ts if it does not exist yet.

    Safe against a concurrent creator: IF NOT EXISTS checks before the parent is locked, so
    the loser of a race gets a duplicate error, which the savepoint absorbs.
    """
    name, start, end = month_partition(ts)
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF user_events FOR VALUES FROM ({}) TO ({})")
                .format(sql.Identifier(name), sql.Literal(start), sql.Literal(end))
            )
    except (errors.DuplicateTable, errors.UniqueViolation):
        pass
    return name


# Partitions this process has already ensured, per database: creating a partition is DDL
# (it locks the parent), so the hot insert path must not attempt it for every batch.
_known_partitions: set[tuple[str, str]] = set()


def ensure_event_partitions(conn: psycopg.Connection, timestamps: Iterable[datetime]) -> list[str]:
    """Ensure the month partitions covering ``timestamps``; cached per process and database."""
    db = f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"
    months: dict[str, datetime] = {}
    for ts in timestamps:
        months.setdefault(month_partition(ts)[0], ts)
    for name, ts in months.items():
        if (db, name) not in _known_partitions:
            ensure_event_partition(conn, ts)
            _known_partitions.add((db, name))
    return sorted(months)


def forget_known_partitions() -> None:
    """Drop the cache (after partitions were detached/dropped, or a creating transaction rolled back)."""
    _known_partitions.clear()
