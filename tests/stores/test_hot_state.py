"""Hot state in the real Valkey server (and a one-node Valkey cluster): decay math, caps, TTLs, tags."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from redis.cluster import RedisCluster
from redis.crc import key_slot

from genrec.config import Settings
from genrec.devstack import stack as devstack
from genrec.events import codec
from genrec.events.contracts import INTERACTION
from genrec.events.dedup import EventDeduplicator
from genrec.stores import redis_keys as keys
from genrec.stores.hot_state import REBASE_AFTER_HALF_LIVES, HotState, Interaction, redis_client
from tests.helpers import free_port_base
from tests.stores.conftest import FakeClock

pytestmark = pytest.mark.stack


TEST_DB = 13  # logical database reserved for these tests: the fake clock rewrites the shared global board


@pytest.fixture
def hot(stack: Settings, clock: FakeClock) -> HotState:
    s = stack.model_copy(deep=True)
    s.redis.recent_sequence_cap = 5
    s.redis.url = SecretStr(stack.redis.url.get_secret_value().rsplit("/", 1)[0] + f"/{TEST_DB}")
    state = HotState(s, clock=clock)
    state.r.flushdb()
    return state


def _apply(hot: HotState, user: str, items: Sequence[str | tuple[str, float, float | None]],
           categories: Sequence[str] = (), event_type: str = "view") -> list[bool]:
    """Deliver one new event per item (``item`` or ``(item, weight, ts)``, ts None: now), the way
    feature-update applies them."""
    return hot.apply_interactions_once([
        Interaction("test", uuid.uuid4().hex, user, it, event_type=event_type, categories=tuple(categories))
        if isinstance(it, str) else
        Interaction("test", uuid.uuid4().hex, user, it[0], event_type=event_type, categories=tuple(categories),
                    weight=it[1], ts=it[2])
        for it in items
    ])


def test_popularity_halves_every_half_life(hot: HotState, clock: FakeClock, uid: str) -> None:
    h, cat, user = hot.s.redis.popularity_half_life_s, f"c{uid}", f"{uid}-u"
    a, b = f"{uid}-a", f"{uid}-b"
    _apply(hot, user, [(a, 4.0, None)], categories=[cat])
    assert hot.popularity(a, cat) == pytest.approx(4.0)
    assert hot.popularity(a) == pytest.approx(4.0)  # the global board too
    clock.advance(h)
    assert hot.popularity(a, cat) == pytest.approx(2.0)
    clock.advance(2 * h)
    assert hot.popularity(a, cat) == pytest.approx(0.5)
    _apply(hot, user, [b], categories=[cat])
    assert hot.popular_items(cat) == [(b, pytest.approx(1.0)), (a, pytest.approx(0.5))]
    # a late event counts as of its own time; one from the future counts as now
    _apply(hot, user, [(b, 1.0, clock() - h), (b, 1.0, clock() + 10 * h)], categories=[cat])
    assert hot.popularity(b, cat) == pytest.approx(2.5)


def test_popularity_equals_hand_computed_decay(hot: HotState, clock: FakeClock, uid: str) -> None:
    h, cat, item = hot.s.redis.popularity_half_life_s, f"c{uid}", f"{uid}-x"
    start = clock()
    events = [(0.0, 1.0), (1800.0, 2.0), (7200.0, 0.5), (30000.0, 3.0)]  # (seconds after start, weight)
    for dt, w in events:
        clock.t = start + dt
        _apply(hot, f"{uid}-u", [(item, w, None)], categories=[cat])
    clock.t = start + 40000.0
    expected = sum(w * 0.5 ** ((clock() - (start + dt)) / h) for dt, w in events)
    assert hot.popularity(item, cat) == pytest.approx(expected, rel=1e-12)


def test_a_batch_increments_each_board_once_per_item(hot: HotState, clock: FakeClock, uid: str) -> None:
    """Popular items repeat within a delivered batch: each (board, item) costs one increment,
    and the board holds the same decayed sum as one increment per event."""
    h, cat, user = hot.s.redis.popularity_half_life_s, f"c{uid}", f"{uid}-u"
    a, b = f"{uid}-a", f"{uid}-b"
    now = clock()
    batch = [(a, 1.0, now - h), (b, 2.0, None), (a, 3.0, None), (a, 1.0, now + h), (b, 1.0, now - 2 * h)]
    previous = hot.r.config_get("notify-keyspace-events")["notify-keyspace-events"]
    hot.r.config_set("notify-keyspace-events", "Kz")  # a message per sorted-set write, by key
    listener = hot.r.pubsub()
    try:
        listener.subscribe(f"__keyspace@{TEST_DB}__:{keys.popularity(cat)}")
        assert listener.get_message(timeout=5)["type"] == "subscribe"  # listening before the batch
        _apply(hot, user, batch, categories=[cat])
        writes = []
        while (message := listener.get_message(timeout=0.5)) is not None:
            writes.append(message["data"])
    finally:
        listener.close()
        hot.r.config_set("notify-keyspace-events", previous)
    assert writes == ["zincr", "zincr"]
    assert hot.popularity(a, cat) == pytest.approx(0.5 + 3.0 + 1.0, rel=1e-12)  # the future counts as now
    assert hot.popularity(b, cat) == pytest.approx(2.0 + 0.25, rel=1e-12)


def test_rebase_keeps_decayed_values_and_bounds_stored_scores(hot: HotState, clock: FakeClock, uid: str) -> None:
    h, cat, user = hot.s.redis.popularity_half_life_s, f"c{uid}", f"{uid}-u"
    big, tiny, new = f"{uid}-big", f"{uid}-tiny", f"{uid}-new"
    _apply(hot, user, [(big, 2.0**140, None), (tiny, 1.0, None)], categories=[cat])
    epoch_before = hot.r.get(keys.popularity_epoch(cat))
    clock.advance((REBASE_AFTER_HALF_LIVES + 1) * h)
    _apply(hot, user, [new], categories=[cat])  # triggers the rebase
    assert hot.r.get(keys.popularity_epoch(cat)) != epoch_before
    assert hot.popularity(big, cat) == pytest.approx(2.0 ** (140 - REBASE_AFTER_HALF_LIVES - 1))
    assert hot.r.zscore(keys.popularity(cat), big) < 2.0**20  # stored relative to the new epoch
    assert hot.r.zscore(keys.popularity(cat), tiny) is None  # decayed below PRUNE_BELOW: pruned
    assert [i for i, _ in hot.popular_items(cat)] == [big, new]


def test_recent_sequence_is_capped_and_newest_last(hot: HotState, uid: str) -> None:
    user = f"{uid}-u"
    _apply(hot, user, [f"i{i}" for i in range(4)])
    hot.append_recent_items(user, ["i4", "i5", "i6"])
    _apply(hot, user, ["i7"])
    assert hot.recent_items(user) == ["i3", "i4", "i5", "i6", "i7"]
    assert hot.recent_items(user, 2) == ["i6", "i7"]
    assert 0 < hot.r.ttl(keys.recent_items(user)) <= keys.USER_STATE_TTL_S


def test_an_event_is_applied_once_per_source_until_its_claim_expires(hot: HotState, uid: str) -> None:
    user = f"{uid}-u"
    event = Interaction("web", f"{uid}-e1", user, "a")
    assert hot.apply_interactions_once([event]) == [True]
    assert hot.apply_interactions_once([event]) == [False]
    assert hot.apply_interactions_once([replace(event, source="app")]) == [True]  # another source, another event
    assert 0 < hot.r.ttl(keys.user_claim(user, "web", f"{uid}-e1")) <= hot.s.redis.idempotency_ttl_s
    assert hot.recent_items(user) == ["a", "a"] and hot.user_features(user)["events"] == "2"
    hot.s.redis.idempotency_ttl_s = 1
    short = Interaction("web", f"{uid}-short", user, "b")
    assert hot.apply_interactions_once([short]) == [True]
    time.sleep(1.1)
    assert hot.apply_interactions_once([short]) == [True]  # the claim expired


def test_cached_recommendations_ttl_and_invalidation(hot: HotState, uid: str) -> None:
    user, recs = f"{uid}-u", {"items": ["a", "b"], "model": "v1"}
    hot.cache_recommendations(user, recs)
    assert hot.cached_recommendations(user) == recs
    assert 0 < hot.r.ttl(keys.recommendations(user)) <= hot.s.redis.recommendation_ttl_s
    _apply(hot, user, ["a"])  # new behaviour makes the cached list stale
    assert hot.cached_recommendations(user) is None
    hot.cache_recommendations(user, recs, ttl_s=60)
    assert 0 < hot.r.ttl(keys.recommendations(user)) <= 60
    dislike = Interaction("test", f"{uid}-d", user, "b", event_type="dislike", append=False, weight=0.0)
    assert hot.apply_interactions_once([dislike]) == [True]  # so does a negative signal
    assert hot.cached_recommendations(user) is None


def test_user_features(hot: HotState, uid: str, clock: FakeClock) -> None:
    user = f"{uid}-u"
    _apply(hot, user, ["a"], event_type="click")
    _apply(hot, user, ["b"], event_type="view")
    assert hot.user_features(user) == {"events": "2", "events:click": "1", "events:view": "1", "last_item": "b",
                                       "last_ts": repr(clock())}
    assert 0 < hot.r.ttl(keys.user_features(user)) <= keys.USER_STATE_TTL_S


@pytest.mark.parametrize("user", ["u1", "we{ird}", "}{", "a:b:c"])
def test_a_users_keys_share_one_cluster_slot(user: str) -> None:
    slots = {key_slot(k.encode()) for k in (keys.recommendations(user), keys.recent_items(user),
                                            keys.user_features(user))}
    assert len(slots) == 1
    assert key_slot(keys.popularity("x|y").encode()) == key_slot(keys.popularity_epoch("x|y").encode())


def test_survives_an_empty_script_cache(hot: HotState, uid: str) -> None:
    hot.r.script_flush()  # as after a server restart
    _apply(hot, f"{uid}-u", [f"{uid}-a"], categories=[f"c{uid}"])  # the popularity script is reloaded
    assert hot.popularity(f"{uid}-a", f"c{uid}") == pytest.approx(1.0)
    assert hot.recent_items(f"{uid}-u") == [f"{uid}-a"]


def _delivered_batch(uid: str) -> list[Interaction]:
    """Two users interleaved, one event delivered twice and one negative (not in the sequence)."""
    cat = f"c{uid}"
    return [
        Interaction("src", f"{uid}-1", f"{uid}-u", f"{uid}-a", categories=(cat,)),
        Interaction("src", f"{uid}-2", f"{uid}-v", f"{uid}-a", categories=(cat,), weight=2.0),
        Interaction("src", f"{uid}-3", f"{uid}-u", f"{uid}-b", categories=(cat,)),
        Interaction("src", f"{uid}-1", f"{uid}-u", f"{uid}-a", categories=(cat,)),  # redelivered
        Interaction("src", f"{uid}-4", f"{uid}-u", f"{uid}-c", event_type="dislike", append=False, weight=0.0),
    ]


def check_batch_applied_once_in_order(hot: HotState, uid: str) -> None:
    batch = _delivered_batch(uid)
    assert hot.apply_interactions_once(batch) == [True, True, True, False, True]
    assert hot.apply_interactions_once(batch) == [False] * len(batch)  # the whole batch redelivered
    assert hot.recent_items(f"{uid}-u") == [f"{uid}-a", f"{uid}-b"]
    assert hot.recent_items(f"{uid}-v") == [f"{uid}-a"]
    features = hot.user_features(f"{uid}-u")
    assert (features["events"], features["events:dislike"], features["last_item"]) == ("3", "1", f"{uid}-c")
    assert hot.popularity(f"{uid}-a", f"c{uid}") == pytest.approx(3.0)  # 1 + 2, the redelivery not counted
    assert hot.popularity(f"{uid}-b") == pytest.approx(1.0)
    assert hot.popularity(f"{uid}-c") == 0.0


def test_a_delivered_batch_is_applied_once_and_in_order(hot: HotState, uid: str) -> None:
    hot.r.script_flush()  # as after a server restart: the pipeline loads the script first
    check_batch_applied_once_in_order(hot, uid)


# -- Redis Cluster ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory, stack_env: dict[str, str]) -> Iterator[str]:
    """A one-node Valkey cluster owning all 16384 slots (the local Redis in production's shape):
    enough to enforce cluster rules."""
    s = Settings(stack={"state_dir": tmp_path_factory.mktemp("valkey-cluster"),
                        "port_base": free_port_base(taken=int(stack_env["GENREC_STACK__PORT_BASE"]))},
                 redis={"cluster": True})
    devstack.up(s, ["redis"], on_progress=lambda _m: None)
    try:
        yield s.redis.url.get_secret_value()
    finally:
        devstack.down(s, on_progress=lambda _m: None)


def test_cluster_mode_end_to_end(stack: Settings, cluster_url: str, clock: FakeClock) -> None:
    s = stack.model_copy(deep=True)
    s.redis.url, s.redis.cluster = SecretStr(cluster_url), True
    hot = HotState(s, clock=clock)
    assert isinstance(hot.r, RedisCluster) and isinstance(redis_client(s), RedisCluster)
    first = Interaction("s", "e1", "u1", "a", categories=("x", "x|y"))
    assert hot.apply_interactions_once([first, Interaction("s", "e2", "u1", "b", categories=("x",))]) == [True, True]
    hot.r.script_flush()
    assert hot.apply_interactions_once([Interaction("s", "e3", "u2", "a", categories=("x",))]) == [True]
    clock.advance(s.redis.popularity_half_life_s)
    assert hot.popular_items("x") == [("a", pytest.approx(1.0)), ("b", pytest.approx(0.5))]
    assert hot.popular_items("x|y") == [("a", pytest.approx(0.5))]
    assert hot.recent_items("u1") == ["a", "b"]
    assert hot.user_features("u1")["events"] == "2"
    assert hot.apply_interactions_once([first]) == [False]
    hot.cache_recommendations("u1", [1])
    assert hot.cached_recommendations("u1") == [1]
    hot.r.script_flush()
    check_batch_applied_once_in_order(hot, "batch")


def test_edge_dedup_gives_every_copy_of_an_event_the_time_of_its_first_receipt(stack: Settings) -> None:
    dedup = EventDeduplicator(redis_client(stack, timeout_s=0.5), ttl_s=60)
    tag = uuid.uuid4().hex[:8]
    events = [codec.new_event(INTERACTION, {"user_id": f"u{i}", "item_id": "i", "event_type": "view"},
                              source="shop", event_id=f"{tag}-{i}") for i in range(4)]
    first, resent = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert dedup.claim(events[:2], first) == [first, first]
    # Event capture died after publishing, before marking: the caller resends with two new events.
    assert dedup.claim(events, resent) == [first, first, resent, resent]
    dedup.mark(events)
    assert dedup.claim(events, resent) == [None] * 4
    # The time goes on the event itself, unless the event has its own.
    [untimed] = codec.parse_http({"content-type": "application/cloudevents+json"}, json.dumps(
        {"specversion": "1.0", "id": "untimed", "source": "shop", "type": INTERACTION,
         "data": {"user_id": "u", "item_id": "i", "event_type": "view"}}).encode())
    assert not untimed.time_from_sender
    assert codec.received_at(untimed, first).event.get_time() == first
    own = codec.new_event(INTERACTION, {"user_id": "u", "item_id": "i", "event_type": "view"}, source="shop",
                          time=resent)
    assert codec.received_at(own, first).event.get_time() == resent


def test_edge_dedup_on_a_cluster(stack: Settings, cluster_url: str) -> None:
    # Event capture's client comes from the same factory: on a cluster, its keys span slots.
    s = stack.model_copy(deep=True)
    s.redis.url, s.redis.cluster = SecretStr(cluster_url), True
    dedup = EventDeduplicator(redis_client(s, timeout_s=0.5), ttl_s=60)
    events = [codec.new_event(INTERACTION, {"user_id": f"u{i}", "item_id": "i", "event_type": "view"},
                              source="shop", event_id=f"dedup-{i}") for i in range(20)]
    first, later = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    assert dedup.claim(events, first) == [first] * 20
    dedup.mark(events[:15])
    # Accepted ones are duplicates; the others keep the time of their first receipt.
    assert dedup.claim(events, later) == [None] * 15 + [first] * 5
