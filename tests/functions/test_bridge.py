"""The local eventing bridge keeps KafkaSource's contract: deliver, commit after 2xx, retry and
dead-letter under the same delivery policy as production."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from itertools import pairwise

import pytest
from confluent_kafka import Message
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from genrec.config import Settings, TopicSettings
from genrec.events.bridge import Bridge, ConsumerLagCollector
from genrec.events.codec import from_kafka, new_event, parse_http, to_kafka
from genrec.events.contracts import INTERACTION
from genrec.events.delivery import DeliveryPolicy
from genrec.events.kafka import consumer, consumer_lag, ensure_topics, producer
from genrec.events.publisher import EventPublisher
from genrec.events.subscriptions import Subscription
from tests.helpers import ThreadedServer, read_topic, wait_for

pytestmark = pytest.mark.stack


class Subscriber:
    """A function stand-in that records what it receives and fails on demand. Like a real
    function it takes one CloudEvent or a batch, and refuses a batch with a bad record whole."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.received: dict[str, list[str]] = defaultdict(list)  # user → item ids, in arrival order
        self.attempts: dict[str, int] = defaultdict(int)  # deliveries of the record on its own
        self.attempted_at: dict[str, list[float]] = defaultdict(list)  # when (monotonic)
        self.batches = 0  # requests that carried more than one record
        self.unavailable_for = 0  # answer 503 to this many requests first
        self.lock = threading.Lock()
        self.app = FastAPI()

        @self.app.post("/")
        async def receive(request: Request) -> JSONResponse:
            events = parse_http(request.headers, await request.body())
            with self.lock:
                if len(events) == 1:
                    self.attempts[events[0].id] += 1
                    self.attempted_at[events[0].id].append(time.monotonic())
                else:
                    self.batches += 1
                if self.unavailable_for > 0:
                    self.unavailable_for -= 1
                    return JSONResponse({"error": "busy"}, status_code=503)
            ours = [ev for ev in events if ev.id.startswith(self.marker)]
            if any(ev.data.item_id == "poison" for ev in ours):
                return JSONResponse({"error": "cannot process"}, status_code=500)
            if any(ev.data.item_id == "invalid" for ev in ours):  # a record that can never succeed
                return JSONResponse({"error": "invalid_event"}, status_code=422)
            with self.lock:
                for ev in ours:
                    self.received[ev.data.user_id].append(ev.data.item_id)
            return JSONResponse({}, status_code=200)

    def count(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.received.values())


def _events(marker: str, users: int, per_user: int, poison_at: int | None = None, poison: str = "poison"):
    out = []
    for u in range(users):
        for i in range(per_user):
            item = poison if (u == 0 and i == poison_at) else f"item-{i}"
            out.append(new_event(INTERACTION, {"user_id": f"{marker}-u{u}", "item_id": item, "event_type": "view"},
                                 source="bridge-test", event_id=f"{marker}-{u}-{i}"))
    return out




def _distinct(a: Subscriber, b: Subscriber, marker: str) -> int:
    return sum(len(set(a.received[f"{marker}-u{u}"]) | set(b.received[f"{marker}-u{u}"])) for u in range(4))


def _bridge(stack: Settings, sub: Subscription, url: str) -> Bridge:
    return Bridge(stack, url_for=lambda _name: url, subscriptions=(sub,))


def _policy(retry: int, backoff_delay_s: float = 0.05) -> DeliveryPolicy:
    """The production policy's shape with short waits, so a test can spend it in seconds."""
    return DeliveryPolicy(retry=retry, backoff_policy="linear", backoff_delay_s=backoff_delay_s, timeout_s=10.0)


def _own_topic(stack: Settings, marker: str) -> tuple[Settings, str]:
    """Settings with a fresh one-partition topic (and its dead-letter topic) that holds only
    this test's records: a new consumer group on a shared topic starts with every earlier
    test's records, and an outage would dead-letter some of those too."""
    s = stack.model_copy(deep=True)
    key = f"bridge_test_{marker}"
    s.kafka.topics[key] = TopicSettings(name=f"bridge-test-{marker}")
    ensure_topics(s)
    return s, key


def _publish(s: Settings, topic: str, events) -> None:
    out = producer(s)
    for ev in events:
        _, msg = to_kafka(ev, s)
        out.produce(topic, key=msg.key, value=msg.value, headers=list(msg.headers.items()))
    assert out.flush(10) == 0


def _dead_letters(s: Settings, topic: str, until: int, timeout_s: float = 15.0) -> list[tuple[str, dict]]:
    """(event id, headers) of the records on a dead-letter topic, once ``until`` are there
    (and any more that arrive within a second)."""
    cons = consumer(s, group_id=f"test-reader-{uuid.uuid4().hex}")
    cons.subscribe([topic])
    found: list[tuple[str, dict]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            msg = cons.poll(0.2)
            if msg is not None and msg.error() is None:
                found.append((from_kafka(msg.headers(), msg.key(), msg.value()).id, dict(msg.headers() or [])))
            elif len(found) >= until:
                deadline = min(deadline, time.monotonic() + 1.0)
    finally:
        cons.close()
    return found


def test_delivers_in_order_dead_letters_poison_and_continues(stack: Settings) -> None:
    marker = uuid.uuid4().hex[:12]
    policy = _policy(retry=2, backoff_delay_s=0.2)
    sub = Subscription(f"test-{marker}", "user_events", (INTERACTION,), delivery=policy)
    subscriber = Subscriber(marker)
    events = _events(marker, users=3, per_user=5, poison_at=2)
    pub = EventPublisher(stack)
    pub.publish_sync(events)
    pub.close()
    with ThreadedServer(subscriber.app) as server:
        bridge = _bridge(stack, sub, server.url).start()
        try:
            assert wait_for(lambda: subscriber.count() == 14), subscriber.received
        finally:
            bridge.stop()
    # per-user order is preserved, and the stream went on past the poison record
    assert subscriber.received[f"{marker}-u0"] == ["item-0", "item-1", "item-3", "item-4"]
    for u in (1, 2):
        assert subscriber.received[f"{marker}-u{u}"] == [f"item-{i}" for i in range(5)]
    assert subscriber.batches >= 1  # the backlog went in batches; the poison one was split up
    # a 5xx is retried as the policy says, waiting the policy's backoff (linear: d, 2d) between
    assert subscriber.attempts[f"{marker}-0-2"] == policy.attempts == 3
    times = subscriber.attempted_at[f"{marker}-0-2"]
    for n, (before, after) in enumerate(pairwise(times), start=1):
        assert after - before >= policy.delay_s(n) * 0.9, (n, after - before)
    dlq = read_topic(stack, stack.kafka.dead_letter_topic("user_events"), until=1,
                     match=lambda ev: ev.id.startswith(marker))
    assert [ev.id for ev in dlq] == [f"{marker}-0-2"]


def test_function_unavailable_within_the_policy_window_is_retried_without_loss(stack: Settings) -> None:
    marker = uuid.uuid4().hex[:12]
    sub = Subscription(f"test-{marker}", "user_events", (INTERACTION,), delivery=_policy(retry=8))
    subscriber = Subscriber(marker)
    subscriber.unavailable_for = 6  # an outage shorter than the policy's 9 attempts
    pub = EventPublisher(stack)
    pub.publish_sync(_events(marker, users=2, per_user=3))
    pub.close()
    with ThreadedServer(subscriber.app) as server:
        bridge = _bridge(stack, sub, server.url).start()
        gauge = ConsumerLagCollector(bridge)
        try:
            # records waiting on an unavailable function show as consumer lag on /metrics
            assert wait_for(lambda: _lag_metric(gauge) > 0)
            assert wait_for(lambda: subscriber.count() == 6), subscriber.received
            assert wait_for(lambda: _lag_metric(gauge) == 0, 30)
        finally:
            bridge.stop()
    assert bridge.stats.dead_lettered == 0 and bridge.stats.retries >= 6


def _lag_metric(gauge: ConsumerLagCollector) -> float:
    (family,) = gauge.collect()
    return sum(sample.value for sample in family.samples)


def test_offsets_committed_only_after_success_survive_a_restart(stack: Settings) -> None:
    marker = uuid.uuid4().hex[:12]
    sub = Subscription(f"test-{marker}", "user_events", (INTERACTION,))
    first = Subscriber(marker)
    events = _events(marker, users=4, per_user=10)
    pub = EventPublisher(stack)
    pub.publish_sync(events)
    pub.close()
    topic = sub.topic(stack)

    def lag() -> int | None:  # what genrec_bridge_consumer_lag reports for this subscription
        return consumer_lag(stack, {sub.group_id: [topic]})[(sub.group_id, topic)]

    assert wait_for(lambda: (lag() or 0) >= 40, 30)  # a group that never committed lags by the whole topic
    with ThreadedServer(first.app) as server:
        bridge = _bridge(stack, sub, server.url).start()
        wait_for(lambda: first.count() >= 10)
        bridge.stop()  # mid-stream
    delivered_first = first.count()
    second = Subscriber(marker)
    with ThreadedServer(second.app) as server:
        bridge = _bridge(stack, sub, server.url).start()
        try:
            assert wait_for(lambda: _distinct(first, second, marker) == 40)
            assert wait_for(lambda: lag() == 0, 30), lag()  # everything delivered is committed
        finally:
            bridge.stop()
    # at-least-once: every event arrives; the restart resumes from the committed offset,
    # so it does not start over from the beginning
    for u in range(4):
        user = f"{marker}-u{u}"
        assert set(first.received[user]) | set(second.received[user]) == {f"item-{i}" for i in range(10)}
    assert second.count() < 40 or delivered_first == 0


def test_a_record_whose_partition_was_taken_away_does_not_stop_the_worker(stack: Settings) -> None:
    # Under load a broker may answer heartbeats late; the group then moves the partition to
    # another member while a batch is being delivered. Storing its offset fails: the worker
    # must carry on (the new owner redelivers from the commit), not die with the exception.
    sub = Subscription(f"test-{uuid.uuid4().hex[:12]}", "user_events", (INTERACTION,))
    worker = _bridge(stack, sub, "http://127.0.0.1:9").workers[0]  # never subscribed: owns no partition
    try:
        worker._store(Message(topic=sub.topic(stack), partition=0, offset=5))
        assert worker.next_offsets == {}  # nothing counted as delivered for a partition it lost
    finally:
        worker.consumer.close()


def test_outage_longer_than_the_policy_dead_letters_the_head_and_the_stream_goes_on(stack: Settings) -> None:
    # What KafkaSource does with the same policy: a record is retried for the policy's window
    # whatever the failure, then dead-lettered; the records behind it start their own window.
    marker = uuid.uuid4().hex[:12]
    s, key = _own_topic(stack, marker)
    policy = _policy(retry=2)
    sub = Subscription(f"test-{marker}", key, (INTERACTION,), delivery=policy)
    subscriber = Subscriber(marker)
    subscriber.unavailable_for = policy.attempts  # down for exactly the first record's whole policy
    _publish(s, sub.topic(s), _events(marker, users=1, per_user=3))
    with ThreadedServer(subscriber.app) as server:
        bridge = _bridge(s, sub, server.url).start()
        try:
            assert wait_for(lambda: subscriber.count() == 2), subscriber.received
        finally:
            bridge.stop()
    assert subscriber.received[f"{marker}-u0"] == ["item-1", "item-2"]
    ((dead_id, headers),) = _dead_letters(s, s.kafka.dead_letter_topic(key), until=1)
    assert dead_id == f"{marker}-0-0"
    assert headers["genrec-dlq-reason"].startswith(b"HTTP 503")
    assert bridge.stats.dead_lettered == 1


def test_a_record_refused_with_a_status_knative_does_not_retry_is_dead_lettered_at_once(stack: Settings) -> None:
    marker = uuid.uuid4().hex[:12]
    s, key = _own_topic(stack, marker)
    sub = Subscription(f"test-{marker}", key, (INTERACTION,), delivery=_policy(retry=3))
    subscriber = Subscriber(marker)
    _publish(s, sub.topic(s), _events(marker, users=1, per_user=3, poison_at=1, poison="invalid"))
    with ThreadedServer(subscriber.app) as server:
        bridge = _bridge(s, sub, server.url).start()
        try:
            assert wait_for(lambda: subscriber.count() == 2), subscriber.received
        finally:
            bridge.stop()
    assert subscriber.received[f"{marker}-u0"] == ["item-0", "item-2"]
    assert subscriber.attempts[f"{marker}-0-1"] == 1  # a 422 is not retried
    ((dead_id, headers),) = _dead_letters(s, s.kafka.dead_letter_topic(key), until=1)
    assert dead_id == f"{marker}-0-1" and headers["genrec-dlq-reason"].startswith(b"HTTP 422")


def test_a_lag_the_broker_did_not_answer_for_is_unknown_not_zero(stack: Settings, monkeypatch) -> None:
    from genrec.events import kafka

    topic = stack.kafka.topic("user_events")
    assert consumer_lag(stack, {"lag-probe-never-committed": [topic]})[("lag-probe-never-committed", topic)] > 0
    # A grown log whose fetch does not answer in time: no partition reported its end.
    monkeypatch.setattr(kafka, "_fetched_high_watermarks", lambda *_args: {})
    assert consumer_lag(stack, {"lag-probe-never-committed": [topic]}) == {("lag-probe-never-committed", topic): None}
