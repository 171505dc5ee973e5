"""PostgreSQL + pgvector: the system of record. Connections, pool, migrations.

psycopg 3 with parameterised SQL only; identifiers that must be formatted (partition
names) go through psycopg.sql.Identifier.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from genrec.config import Settings, get_settings
from genrec.stores.migrations import MIGRATIONS

_MIGRATION_LOCK = 7_241_001  # pg_advisory_lock key: one migrator at a time


def dsn(s: Settings | None = None) -> str:
    return (s or get_settings()).postgres.dsn.get_secret_value()


def connect(s: Settings | None = None, **kwargs) -> psycopg.Connection:
    return psycopg.connect(dsn(s), connect_timeout=5, **kwargs)


def make_pool(s: Settings | None = None) -> ConnectionPool:
    s = s or get_settings()
    pool = ConnectionPool(
        dsn(s), min_size=s.postgres.pool_min_size, max_size=s.postgres.pool_max_size,
        kwargs={"connect_timeout": 5}, open=False,
    )
    pool.open(wait=True, timeout=10)
    return pool


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


def month_partition(ts: datetime) -> tuple[str, datetime, datetime]:
    """Name and [start, end) bounds of the month partition holding ts."""
    ts = ts.astimezone(UTC)
    start = datetime(ts.year, ts.month, 1, tzinfo=UTC)
    end = datetime(ts.year + (ts.month == 12), ts.month % 12 + 1, 1, tzinfo=UTC)
    return f"user_events_{ts.year:04d}_{ts.month:02d}", start, end


def ensure_event_partition(conn: psycopg.Connection, ts: datetime) -> str:
    """Create the month partition for ts if it does not exist yet."""
    name, start, end = month_partition(ts)
    conn.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF user_events FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(name), sql.Literal(start), sql.Literal(end)
        )
    )
    return name
