"""Faults on the real local stack: a server stops, and nothing accepted is lost, nothing is
applied twice, and the public API keeps answering without server errors."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from genrec.config import Settings
from genrec.devstack import stack as devstack
from genrec.events.codec import BATCH_CONTENT_TYPE
from genrec.events.contracts import INTERACTION
from genrec.stores.postgres import connect
from tests.helpers import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.fault]
QUIET = {"on_progress": lambda _m: None}


def _events(user: str, items: list[str], tag: str) -> list[dict]:
    return [{"specversion": "1.0", "id": f"{tag}-{k}", "source": "fault-test", "type": INTERACTION,
             "data": {"user_id": user, "item_id": item, "event_type": "click"}} for k, item in enumerate(items)]


def _send(s: Settings, events: list[dict]) -> httpx.Response:
    return httpx.post(s.function_url("event_capture") + "/api/v1/events", content=json.dumps(events),
                      headers={"content-type": BATCH_CONTENT_TYPE}, timeout=60)


def _stored(s: Settings, user: str) -> list[tuple[str, int]]:
    """(event id, copies) of the user's stored events."""
    try:
        with connect(s) as conn:
            return conn.execute("SELECT event_id, count(*) FROM user_events WHERE user_id = %s GROUP BY event_id",
                                (user,)).fetchall()
    except Exception:  # PostgreSQL still restarting
        return []


def test_recommend_never_answers_5xx_while_redis_is_down(stack: Settings) -> None:
    user, tag = f"redis-down-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    hot_items = [f"{tag}-hot-{k}" for k in range(3)]
    assert _send(stack, _events(user, hot_items * 3, tag)).status_code == 202
    assert wait_for(lambda: sum(n for _, n in _stored(stack, user)) == 9, 60)
    base = stack.function_url("recommend") + "/api/v1/recommend"
    devstack.down(stack, ["redis"], **QUIET)
    try:
        answers = [
            httpx.get(f"{base}/user/{user}", params={"count": 5}, timeout=30),
            httpx.get(f"{base}/user/someone-new-{tag}", params={"count": 5}, timeout=30),
            httpx.post(f"{base}/generate", json={"user_id": user, "count": 5}, timeout=30),
            httpx.post(f"{base}/session", json={"items": hot_items[:1], "count": 5}, timeout=30),
            httpx.get(f"{base}/popular", params={"count": 5}, timeout=30),
        ]
        for resp in answers:
            assert resp.status_code == 200, (resp.request.url, resp.text)
            assert resp.json()["served_by"] in ("vector", "popularity"), resp.text
        # The popularity of last resort comes from the events in PostgreSQL.
        assert httpx.get(f"{base}/popular", params={"count": 50}, timeout=30).status_code == 200
    finally:
        devstack.up(stack, ["redis"], **QUIET)


def test_events_accepted_around_a_broker_restart_are_stored_exactly_once(stack: Settings) -> None:
    user, tag = f"broker-restart-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    before = _events(user, [f"item-{k}" for k in range(20)], f"{tag}-a")
    assert _send(stack, before).status_code == 202
    devstack.down(stack, ["kafka"], **QUIET)
    during = _events(user, ["item-during"], f"{tag}-b")
    try:
        # Not accepted while the broker is away: the caller is told to retry.
        assert _send(stack, during).status_code == 503
    finally:
        devstack.up(stack, ["kafka"], **QUIET)
    after = _events(user, [f"item-{k}" for k in range(20, 40)], f"{tag}-c")
    # The caller's retry of the refused event, then new events, once the producer reconnected.
    assert wait_for(lambda: _send(stack, during).status_code == 202, 60, 1.0)
    assert _send(stack, after).status_code == 202
    want = {ev["id"] for ev in before + during + after}
    rows: list = []

    def all_stored() -> bool:
        nonlocal rows
        rows = _stored(stack, user)
        return {r[0] for r in rows} == want

    assert wait_for(all_stored, 120, 1.0), f"{len(rows)} of {len(want)} stored"
    assert all(n == 1 for _, n in rows)


def test_postgres_outage_delays_events_but_loses_and_duplicates_none(stack: Settings) -> None:
    from genrec.stores.hot_state import HotState

    user, tag = f"pg-down-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    events = _events(user, [f"{tag}-item-{k}" for k in range(15)], tag)
    devstack.down(stack, ["postgres"], **QUIET)
    try:
        # Event capture needs only the broker (and Redis for de-duplication): still accepted.
        assert _send(stack, events).status_code == 202
    finally:
        devstack.up(stack, ["postgres"], **QUIET)
    rows: list = []

    def all_stored() -> bool:
        nonlocal rows
        rows = _stored(stack, user)
        return len(rows) == len(events)

    assert wait_for(all_stored, 120, 1.0), f"{len(rows)} of {len(events)} stored"
    assert all(n == 1 for _, n in rows)
    # Redeliveries while PostgreSQL was away did not apply the clicks twice to the hot state.
    assert HotState(stack).recent_items(user, 100) == [ev["data"]["item_id"] for ev in events][-20:]
