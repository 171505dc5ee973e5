"""User events: idempotent inserts into month partitions created on demand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from psycopg_pool import ConnectionPool

from genrec.config import Settings
from genrec.stores.events_repo import EventRepo, UserEvent
from genrec.stores.postgres import connect, month_partition

pytestmark = pytest.mark.stack


def _event(uid: str, n: int, ts: datetime, *, user: str = "u", source: str = "web", **kw) -> UserEvent:
    return UserEvent(f"{uid}-e{n}", source, f"{uid}-{user}", f"{uid}-i{n}", kw.pop("event_type", "click"), ts, **kw)


def test_partitions_are_created_for_out_of_range_timestamps(pool: ConnectionPool, uid: str) -> None:
    repo = EventRepo(pool)
    old, future = datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2031, 2, 28, 12, tzinfo=UTC)
    assert repo.insert_many([_event(uid, 1, old), _event(uid, 2, future, value=2.5, context={"page": "home"})]) == 2
    assert {"user_events_1999_12", "user_events_2031_02"} <= set(repo.partitions())
    got = repo.recent(f"{uid}-u")
    assert [(e.event_id, e.ts) for e in got] == [(f"{uid}-e2", future), (f"{uid}-e1", old)]
    assert got[0].value == 2.5 and got[0].context == {"page": "home"} and got[1].value is None


def test_month_partition_bounds() -> None:
    name, start, end = month_partition(datetime(2030, 12, 31, 23, 0, tzinfo=UTC))
    assert (name, start, end) == ("user_events_2030_12", datetime(2030, 12, 1, tzinfo=UTC),
                                  datetime(2031, 1, 1, tzinfo=UTC))
    # 23:30 on Jan 31 in New York is already February in UTC: partitions follow UTC.
    ny = datetime(2030, 1, 31, 23, 30, tzinfo=ZoneInfo("America/New_York"))
    assert month_partition(ny)[0] == "user_events_2030_02"


def test_duplicate_event_is_applied_once(pool: ConnectionPool, uid: str) -> None:
    repo = EventRepo(pool)
    ts = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    ev = _event(uid, 1, ts)
    assert repo.insert(ev) is True
    assert repo.insert(ev) is False
    # a redelivered batch, with the duplicate inside the same batch too
    assert repo.insert_many([ev, _event(uid, 2, ts), _event(uid, 2, ts)]) == 1
    # same event id from another source is another event
    assert repo.insert(_event(uid, 1, ts, source="app")) is True
    assert len(repo.recent(f"{uid}-u")) == 3


def test_event_sent_again_with_another_time_is_stored_once(pool: ConnectionPool, uid: str) -> None:
    # A caller retries after a 503 whose first attempt reached the broker after all: two records,
    # stamped at two different moments (even in two monthly partitions), are one event.
    repo = EventRepo(pool)
    first = _event(uid, 1, datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC))
    again = _event(uid, 1, datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC))
    assert repo.insert(first) is True
    assert repo.insert(again) is False
    assert [e.ts for e in repo.recent(f"{uid}-u")] == [first.ts]


def test_recent_is_newest_first_with_limit_and_filters(pool: ConnectionPool, uid: str) -> None:
    repo = EventRepo(pool)
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    repo.insert_many(_event(uid, i, t0 + timedelta(hours=i), event_type="view" if i % 2 else "click")
                     for i in range(10))
    repo.insert(_event(uid, 99, t0, user="other"))
    assert [e.event_id for e in repo.recent(f"{uid}-u", 3)] == [f"{uid}-e{i}" for i in (9, 8, 7)]
    assert [e.event_id for e in repo.recent(f"{uid}-u", 2, event_types=["click"])] == [f"{uid}-e8", f"{uid}-e6"]
    assert len(repo.recent(f"{uid}-u", since=t0 + timedelta(hours=5))) == 5


def test_insert_recovers_when_a_known_partition_was_dropped(stack: Settings, pool: ConnectionPool,
                                                            uid: str) -> None:
    repo = EventRepo(pool)
    ts = datetime(1987, 6, 15, tzinfo=UTC)
    assert repo.insert(_event(uid, 1, ts))
    with connect(stack) as conn:
        conn.execute("DROP TABLE user_events_1987_06")
    assert repo.insert(_event(uid, 2, ts))  # the process cache still believed it existed
    assert "user_events_1987_06" in repo.partitions()


def test_naive_timestamps_are_utc(pool: ConnectionPool, uid: str) -> None:
    repo = EventRepo(pool)
    repo.insert(UserEvent(f"{uid}-n", "web", f"{uid}-u", "i", "view", datetime(2026, 7, 31, 23, 30)))
    assert repo.recent(f"{uid}-u")[0].ts == datetime(2026, 7, 31, 23, 30, tzinfo=UTC)


def test_a_batch_is_stored_exactly_as_sent(pool: ConnectionPool, uid: str) -> None:
    """Ids, values and contexts come back byte for byte: what an array's encoding must survive
    (quotes, braces, commas, backslashes, NULLs beside numbers, non-ASCII text, nested JSON)."""
    repo = EventRepo(pool)
    ts = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    odd = ['a,"b"', "{c}", "back\\slash", "NULL", "ünï — 字"]
    sent = [UserEvent(f"{uid}-{text}", "web", f"{uid}-u", text, "rating", ts + timedelta(seconds=i),
                      value=None if i % 2 else i + 0.25, context={"note": text, "n": [i, {"k": None}]})
            for i, text in enumerate(odd)]
    assert repo.insert_many(sent) == len(odd)
    got = sorted(repo.recent(f"{uid}-u", limit=10), key=lambda e: e.ts)
    assert [(e.event_id, e.item_id, e.value, e.ts, e.context) for e in got] == [
        (e.event_id, e.item_id, e.value, e.ts, e.context) for e in sent]


def test_a_bulk_consumers_database_work_runs_at_its_priority(stack: Settings) -> None:
    """PostgreSQL runs a process per connection: a pool given a backend niceness (the dev stack
    gives each workload its own) runs its queries at that priority, not at the server's."""
    import psutil

    from genrec.stores.postgres import make_pool

    niced = stack.model_copy(update={"postgres": stack.postgres.model_copy(update={"backend_niceness": 15})})
    for settings, expected in ((niced, 15), (stack, 0)):
        pool = make_pool(settings, vector=False)
        try:
            with pool.connection() as conn:
                assert psutil.Process(conn.info.backend_pid).nice() == expected
        finally:
            pool.close()
