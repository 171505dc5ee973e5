"""feature-update (the freshness path: hot state in Redis) and the event history the analytics
sink stores, through the real broker, bridges and stores: effects, idempotency, no loss."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import httpx
import pytest
from cloudevents.core.formats.json import JSONFormat

from genrec.config import Settings
from genrec.devstack import stack as devstack
from genrec.devstack.process import read_record
from genrec.devstack.watch import StackWatch
from genrec.events.codec import BATCH_CONTENT_TYPE, new_event, to_http_binary
from genrec.events.contracts import INTERACTION
from genrec.events.publisher import EventPublisher
from genrec.stores.hot_state import HotState
from genrec.stores.postgres import connect
from tests.helpers import wait_for

pytestmark = pytest.mark.stack


def _count_events(s: Settings, user_id: str) -> int:
    """The user's events in the history (PostgreSQL), which the analytics sink writes."""
    with connect(s) as conn:
        return conn.execute("SELECT count(*) FROM user_events WHERE user_id = %s", (user_id,)).fetchone()[0]


def _batch(events) -> bytes:
    return json.dumps([json.loads(JSONFormat().write(ev.event)) for ev in events]).encode()


def _interaction(user: str, item: str, event_type: str = "click", event_id: str | None = None):
    return new_event(INTERACTION, {"user_id": user, "item_id": item, "event_type": event_type},
                     source="fu-test", event_id=event_id or uuid.uuid4().hex)


def test_interactions_through_event_capture_update_sequence_popularity_and_record(stack: Settings) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    url = stack.function_url("event_capture") + "/api/v1/events"
    for item, kind in (("a", "view"), ("b", "purchase"), ("c", "skip"), ("d", "click")):
        headers, body = to_http_binary(_interaction(user, f"{user}-{item}", kind))
        assert httpx.post(url, headers=headers, content=body).status_code == 202
    hot = HotState(stack)
    # the skip is recorded but is not part of the sequence the model reads
    assert wait_for(lambda: hot.recent_items(user) == [f"{user}-a", f"{user}-b", f"{user}-d"])
    assert hot.user_features(user)["events:purchase"] == "1"
    assert hot.popularity(f"{user}-b") > hot.popularity(f"{user}-a") > 0
    # the history comes from the bulk consumer, which may lag: niced, in big batches
    assert wait_for(lambda: _count_events(stack, user) == 4, timeout_s=120)


def test_redelivered_event_is_applied_once(stack: Settings) -> None:
    user = f"dup-{uuid.uuid4().hex[:8]}"
    headers, body = to_http_binary(_interaction(user, "x", event_id=f"{user}-e1"))
    url = stack.function_url("feature_update") + "/"
    first = httpx.post(url, headers=headers, content=body)
    second = httpx.post(url, headers=headers, content=body)
    assert first.status_code == second.status_code == 200
    assert first.json()["results"][0] == {"id": f"{user}-e1", "hot_state_applied": True}
    assert second.json()["results"][0] == {"id": f"{user}-e1", "hot_state_applied": False}
    assert HotState(stack).recent_items(user) == ["x"]
    assert _count_events(stack, user) == 0  # the freshness path writes no history: the sink does


def test_redelivered_batch_is_applied_once_in_order(stack: Settings) -> None:
    # The bridge delivers backlogs as CloudEvents batches: Redis per event in order, in one
    # script; a redelivery (the bridge retries a batch after a 503) changes nothing.
    user = f"batch-{uuid.uuid4().hex[:8]}"
    events = [_interaction(user, f"item-{k}", event_id=f"{user}-{k}") for k in range(30)]
    url = stack.function_url("feature_update") + "/"
    headers = {"content-type": BATCH_CONTENT_TYPE}
    first = httpx.post(url, headers=headers, content=_batch(events))
    second = httpx.post(url, headers=headers, content=_batch(events))
    assert first.status_code == second.status_code == 200, first.text
    assert [r["hot_state_applied"] for r in first.json()["results"]] == [True] * 30
    assert [r["hot_state_applied"] for r in second.json()["results"]] == [False] * 30
    assert HotState(stack).recent_items(user) == [f"item-{k}" for k in range(30)][-stack.redis.recent_sequence_cap:]


def test_redelivered_batch_is_stored_in_the_history_once(stack: Settings) -> None:
    # The analytics sink stores the history: one INSERT per batch, and a redelivered batch (the
    # bridge retries after a 503, say from ClickHouse after PostgreSQL took it) adds no row.
    user = f"hist-{uuid.uuid4().hex[:8]}"
    events = [_interaction(user, f"item-{k}", event_id=f"{user}-{k}") for k in range(30)]
    url = stack.function_url("analytics_sink") + "/events"
    headers = {"content-type": BATCH_CONTENT_TYPE}
    first = httpx.post(url, headers=headers, content=_batch(events), timeout=60)
    second = httpx.post(url, headers=headers, content=_batch(events), timeout=60)
    assert first.status_code == second.status_code == 200, first.text
    assert [r["stored"] for r in first.json()["results"]] == [True] * 30
    assert [r["stored"] for r in second.json()["results"]] == [False] * 30
    assert _count_events(stack, user) == 30


def test_a_batch_counts_each_item_in_its_categories_popularity(stack: Settings) -> None:
    # The items' categories come from the catalogue (one query per batch); an item it does not
    # know counts only in the global board.
    from genrec.stores.catalog_repo import CatalogRepo, Item
    from genrec.stores.categories import category_levels
    from genrec.stores.redis_keys import GLOBAL_CATEGORY

    tag = uuid.uuid4().hex[:8]
    known, unknown, path = f"cat-{tag}-a", f"cat-{tag}-missing", f"Home{tag}|Lamps"
    with connect(stack, vector=True) as conn:
        CatalogRepo(conn).upsert_many([Item(known, "A lamp", category_path=path)])
        conn.commit()
    user = f"cat-{tag}"
    events = [_interaction(user, item, "purchase", event_id=f"{user}-{k}") for k, item in enumerate((known, unknown))]
    resp = httpx.post(stack.function_url("feature_update") + "/", headers={"content-type": BATCH_CONTENT_TYPE},
                      content=_batch(events))
    assert resp.status_code == 200, resp.text
    hot = HotState(stack)
    for level in category_levels(path):
        assert hot.popularity(known, level) > 0, level
        assert hot.popularity(unknown, level) == 0.0, level
    assert hot.popularity(known, GLOBAL_CATEGORY) > 0 and hot.popularity(unknown, GLOBAL_CATEGORY) > 0


def test_wrong_event_type_is_refused(stack: Settings) -> None:
    ev = new_event("dev.genrec.item.upserted.v1", {"item_id": "i", "title": "t"}, source="t")
    headers, body = to_http_binary(ev)
    resp = httpx.post(stack.function_url("feature_update") + "/", headers=headers, content=body)
    assert resp.status_code == 400 and resp.json()["field"] == "type"


def test_killing_feature_update_mid_stream_loses_no_event(stack: Settings, stack_watch: StackWatch) -> None:
    users = [f"kill-{uuid.uuid4().hex[:6]}-{i}" for i in range(4)]
    n_per_user = 60
    events = [_interaction(u, f"item-{k}") for k in range(n_per_user) for u in users]
    pub = EventPublisher(stack)
    pub.publish_sync(events)
    pub.close()
    hot = HotState(stack)

    def applied() -> int:
        return sum(len(hot.recent_items(u)) for u in users)

    assert wait_for(lambda: applied() >= 20)
    record = read_record(devstack.paths_for(stack).pid("feature-update"))
    stack_watch.expect_exit("feature-update")
    os.kill(record.pid, signal.SIGKILL)  # no graceful shutdown
    time.sleep(0.5)
    devstack.up(stack, ["feature-update"], on_progress=lambda _m: None)
    assert wait_for(lambda: applied() == len(users) * n_per_user, timeout_s=90)
    for u in users:  # per-user order survives the crash and the redelivery
        assert hot.recent_items(u) == [f"item-{k}" for k in range(n_per_user)]
