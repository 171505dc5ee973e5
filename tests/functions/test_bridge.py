"""The local eventing bridge keeps KafkaSource's contract: deliver, commit after 2xx, retry, DLQ."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict

import pytest
from confluent_kafka import Message
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from genrec.config import Settings
from genrec.events.bridge import Bridge, ConsumerLagCollector
from genrec.events.codec import new_event, parse_http
from genrec.events.contracts import INTERACTION
from genrec.events.kafka import consumer_lag
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
                else:
                    self.batches += 1
                if self.unavailable_for > 0:
                    self.unavailable_for -= 1
                    return JSONResponse({"error": "busy"}, status_code=503)
            ours = [ev for ev in events if ev.id.startswith(self.marker)]
            if any(ev.data.item_id == "poison" for ev in ours):
                return JSONResponse({"error": "cannot process"}, status_code=500)
            with self.lock:
                for ev in ours:
                    self.received[ev.data.user_id].append(ev.data.item_id)
            return JSONResponse({}, status_code=200)

    def count(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.received.values())


def _events(marker: str, users: int, per_user: int, poison_at: int | None = None):
    out = []
    for u in range(users):
        for i in range(per_user):
            item = "poison" if (u == 0 and i == poison_at) else f"item-{i}"
            out.append(new_event(INTERACTION, {"user_id": f"{marker}-u{u}", "item_id": item, "event_type": "view"},
                                 source="bridge-test", event_id=f"{marker}-{u}-{i}"))
    return out




def _distinct(a: Subscriber, b: Subscriber, marker: str) -> int:
    return sum(len(set(a.received[f"{marker}-u{u}"]) | set(b.received[f"{marker}-u{u}"])) for u in range(4))


def _bridge(stack: Settings, sub: Subscription, url: str) -> Bridge:
    return Bridge(stack, url_for=lambda _name: url, subscriptions=(sub,))


def test_delivers_in_order_dead_letters_poison_and_continues(stack: Settings) -> None:
    marker = uuid.uuid4().hex[:12]
    sub = Subscription(f"test-{marker}", "user_events", (INTERACTION,), max_attempts=3)
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
    assert subscriber.attempts[f"{marker}-0-2"] == 3
    dlq = read_topic(stack, stack.kafka.dead_letter_topic("user_events"), until=1,
                     match=lambda ev: ev.id.startswith(marker))
    assert [ev.id for ev in dlq] == [f"{marker}-0-2"]


def test_unavailable_function_is_retried_without_loss_or_dead_letter(stack: Settings) -> None:
    marker = uuid.uuid4().hex[:12]
    sub = Subscription(f"test-{marker}", "user_events", (INTERACTION,), max_attempts=2)
    subscriber = Subscriber(marker)
    subscriber.unavailable_for = 6  # more than max_attempts: 503 must never dead-letter
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

    def lag() -> int:  # what genrec_bridge_consumer_lag reports for this subscription
        return consumer_lag(stack, {sub.group_id: [topic]})[(sub.group_id, topic)]

    assert lag() >= 40  # a group that never committed lags by the whole topic
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
