"""User interaction events in PostgreSQL, range-partitioned by month on ``ts``.

Inserts are idempotent on (source, event_id), whatever the timestamp: the insert stores only the
events it could add to ``user_event_ids``, so a redelivered event is a no-op. The month
partition for any timestamp (1999, 2031, ...) is created on demand before the insert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg import errors
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from genrec.stores.postgres import Db, ensure_event_partitions, forget_known_partitions, transaction


@dataclass
class UserEvent:
    event_id: str
    source: str
    user_id: str
    item_id: str
    event_type: str
    ts: datetime  # naive values are taken as UTC
    value: float | None = None
    context: dict[str, Any] = field(default_factory=dict)
    received_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None:
            self.ts = self.ts.replace(tzinfo=UTC)


# The arrays go in binary (%b): psycopg escapes every element of a text-format array with a
# regular expression, which cost the bulk consumer 19 us of CPU per event against 7 now.
_INSERT = """
WITH batch AS (
    SELECT DISTINCT ON (source, event_id) *
    FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::float8[],
                %b::timestamptz[], %b::jsonb[])
         AS b(event_id, source, user_id, item_id, event_type, value, ts, context)
), fresh AS (
    INSERT INTO user_event_ids (source, event_id) SELECT source, event_id FROM batch
    ON CONFLICT DO NOTHING RETURNING source, event_id
)
INSERT INTO user_events (event_id, source, user_id, item_id, event_type, value, ts, context)
SELECT b.event_id, b.source, b.user_id, b.item_id, b.event_type, b.value, b.ts, b.context
FROM batch b JOIN fresh f ON f.source = b.source AND f.event_id = b.event_id
RETURNING source, event_id
"""


class EventRepo:
    def __init__(self, db: Db) -> None:
        self.db = db

    def insert(self, event: UserEvent) -> bool:
        """True when the event is new, False when it was already stored."""
        return self.insert_many([event]) == 1

    def insert_many(self, events: Iterable[UserEvent]) -> int:
        """Insert a batch in one statement; returns how many were new (duplicates are skipped)."""
        return len(self.insert_new(events))

    def insert_new(self, events: Iterable[UserEvent]) -> set[tuple[str, str]]:
        """Insert a batch in one statement; returns the (source, event_id) pairs that were new."""
        batch = list(events)
        if not batch:
            return set()
        columns = list(zip(*(
            (e.event_id, e.source, e.user_id, e.item_id, e.event_type, e.value, e.ts, Jsonb(e.context))
            for e in batch
        ), strict=True))
        with transaction(self.db) as conn:
            for attempt in (0, 1):
                ensure_event_partitions(conn, (e.ts for e in batch))
                try:
                    with conn.transaction():  # savepoint: a failed try leaves the caller's transaction usable
                        return set(conn.execute(_INSERT, [list(c) for c in columns]).fetchall())
                except errors.CheckViolation:
                    # "no partition of relation found": a cached partition was dropped or its
                    # creating transaction rolled back. Forget the cache and create it again.
                    if attempt:
                        raise
                    forget_known_partitions()
        raise AssertionError("unreachable")

    def recent(self, user_id: str, limit: int = 50, *, event_types: Sequence[str] | None = None,
               since: datetime | None = None) -> list[UserEvent]:
        """The user's latest events, newest first."""
        with transaction(self.db) as conn, conn.cursor(row_factory=class_row(UserEvent)) as cur:
            return cur.execute(
                """
                SELECT event_id, source, user_id, item_id, event_type, ts, value, context, received_at
                FROM user_events
                WHERE user_id = %s AND (%s::text[] IS NULL OR event_type = ANY(%s::text[]))
                  AND (%s::timestamptz IS NULL OR ts >= %s)
                ORDER BY ts DESC, event_id DESC LIMIT %s
                """,
                (user_id, event_types, event_types, since, since, limit),
            ).fetchall()

    def top_items(self, limit: int, since: datetime) -> list[tuple[str, float]]:
        """Items with the most events received since ``since``: the popularity board of last
        resort when Redis is unavailable (callers cache it; it scans recent events)."""
        with transaction(self.db) as conn:
            rows = conn.execute(
                """
                SELECT item_id, count(*)::float8 FROM user_events WHERE received_at >= %s
                GROUP BY item_id ORDER BY 2 DESC, item_id LIMIT %s
                """,
                (since, limit),
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def partitions(self) -> list[str]:
        with transaction(self.db) as conn:
            rows = conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'user_events'::regclass ORDER BY c.relname"
            ).fetchall()
        return [r[0] for r in rows]
