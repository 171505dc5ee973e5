"""Migrations: apply from an empty database, then a second run applies nothing and changes nothing."""

from __future__ import annotations

import pytest

from genrec.config import Settings
from genrec.stores.migrations import MIGRATIONS
from genrec.stores.postgres import applied_migrations, connect, migrate, pending_migrations

pytestmark = pytest.mark.stack

_SCHEMA_QUERIES = {
    "columns": """SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default
                  FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2""",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
    "constraints": """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
                      WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "triggers": """SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
                   WHERE NOT tgisinternal ORDER BY 1, 2""",
    "extensions": "SELECT extname FROM pg_extension ORDER BY 1",
    "partitioned": "SELECT relname FROM pg_class WHERE relkind = 'p' ORDER BY 1",
}


def _schema(s: Settings) -> dict[str, list[tuple]]:
    with connect(s) as conn:
        return {k: conn.execute(q).fetchall() for k, q in _SCHEMA_QUERIES.items()}


def test_migrations_apply_from_empty_then_are_idempotent(empty_db: Settings) -> None:
    assert applied_migrations(empty_db) == []
    assert [v for v, _ in pending_migrations(empty_db)] == [v for v, _, _ in MIGRATIONS]

    assert migrate(empty_db) == [v for v, _, _ in MIGRATIONS]
    first = _schema(empty_db)
    assert {"items", "users", "user_events", "model_versions", "schema_migrations"} <= {
        t for t, *_ in first["columns"]}
    assert ("user_events",) in first["partitioned"]
    assert any(name == "items_embedding_hnsw_idx" and "hnsw" in d for name, d in first["indexes"])
    assert {name for _, name, _ in first["triggers"]} >= {"items_touch_updated_at", "users_touch_updated_at"}
    # Every stored event pays a B-tree insert per index of the history: the guard table
    # (user_event_ids) keeps it once, so the history holds only the index its reads use.
    assert [name for name, _ in first["indexes"] if name.startswith("user_events")] == ["user_events_user_ts_idx"]
    assert ("user_event_ids", "user_event_ids_pkey", "PRIMARY KEY (source, event_id)") in first["constraints"]

    assert migrate(empty_db) == []
    assert _schema(empty_db) == first
    assert pending_migrations(empty_db) == []
    assert [v for v, _, _ in applied_migrations(empty_db)] == [v for v, _, _ in MIGRATIONS]


def test_migration_versions_are_unique_and_ordered() -> None:
    versions = [v for v, _, _ in MIGRATIONS]
    assert versions == sorted(set(versions))
