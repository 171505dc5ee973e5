"""Local eventing bridge: the contract of Knative Eventing's KafkaSource, on one machine.

For each subscription: consume the topic as a consumer group, POST the records to the
function, and store their offsets for commit only after a 2xx. A lone record goes as a
binary-mode CloudEvent (as KafkaSource sends it); when more are waiting, up to the
subscription's ``max_batch`` go as one CloudEvents batch, so one machine keeps up with
thousands of events a second. Per-partition order is kept (one request in flight per
consumer, like KafkaSource's "ordered" delivery). A batch the function refuses for a reason
other than being unavailable is delivered again record by record, so only the bad record is
dead-lettered.

Failures follow the subscription's delivery policy (genrec.events.delivery), the one that
production's KafkaSources are rendered from: a failed attempt that Knative retries (no answer,
a timeout, 5xx, 404, 408, 409, 429) is retried with the policy's backoff, and when the policy's
retries are spent, or at once for any other status, the record is copied to the dead-letter
topic (with the error in headers) and the stream moves on. The policy's window is sized so
that a dependency outage of many minutes dead-letters nothing; ``genrec events replay``
re-sends what an even longer one did.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import httpx
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from genrec.config import Settings
from genrec.events.codec import BATCH_CONTENT_TYPE, kafka_to_http_headers, kafka_to_structured, structured_batch
from genrec.events.delivery import is_retryable
from genrec.events.kafka import consumer, producer
from genrec.events.subscriptions import SUBSCRIPTIONS, Subscription

log = logging.getLogger("genrec.bridge")

UNAVAILABLE = {502, 503, 504}


class Outcome(Enum):
    DELIVERED = "delivered"  # a 2xx
    REFUSED = "refused"  # a status that is not retried (or, for a batch, not unavailability)
    EXHAUSTED = "exhausted"  # the policy's retries all failed
    STOPPED = "stopped"  # the bridge is shutting down


@dataclass
class BridgeStats:
    delivered: int = 0
    dead_lettered: int = 0
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def collector(self) -> Collector:
        """Prometheus view of these counters (served by the bridge's /metrics)."""
        stats = self

        class _Collector(Collector):
            def collect(self):
                for name in ("delivered", "dead_lettered", "retries"):
                    yield CounterMetricFamily(f"genrec_bridge_{name}", f"records {name.replace('_', ' ')}",
                                              value=getattr(stats, name))

        return _Collector()


class ConsumerLagCollector(Collector):
    """``genrec_bridge_consumer_lag{group,topic}``, read from the bridge's own consumers at
    scrape time: the log end their last fetch reported minus the next offset to deliver. No
    broker round trip: polling the broker for lag cost as much CPU as all of idle delivery."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def collect(self):
        family = GaugeMetricFamily("genrec_bridge_consumer_lag", "records not yet delivered and committed",
                                   labels=["group", "topic"])
        totals: dict[tuple[str, str], int] = {}
        for w in self.bridge.workers:
            key = (w.sub.group_id, w.sub.topic(w.s))
            totals[key] = totals.get(key, 0) + w.lag
        for (group, topic), lag in sorted(totals.items()):
            family.add_metric([group, topic], lag)
        yield family


class SubscriptionWorker:
    """Delivers one subscription's records to its function; one consumer, one thread."""

    def __init__(self, s: Settings, sub: Subscription, url: str, stats: BridgeStats,
                 stop: threading.Event) -> None:
        self.s, self.sub, self.url, self.stats, self.stop = s, sub, url.rstrip("/") + sub.path, stats, stop
        self.policy = sub.delivery
        self._last_refusal = ""
        # partition → next offset to deliver (what the group will commit), for ``lag``
        self.next_offsets: dict[int, int] = {}
        self.lag = 0  # records not yet delivered, as of this worker's last loop
        self.client = httpx.Client(timeout=self.policy.timeout_s)
        self.dlq = producer(s)
        self.consumer = consumer(
            s, sub.group_id,
            # offsets are stored only after success and committed in the background
            **{"enable.auto.commit": True, "enable.auto.offset.store": False, "auto.commit.interval.ms": 1000,
               "fetch.wait.max.ms": sub.fetch_wait_ms or s.kafka.fetch_wait_max_ms,
               # The worker polls again only once its records are handled: at worst a batch's policy
               # then one record's. Past librdkafka's default 5 minutes it would leave its group.
               "max.poll.interval.ms": int(min(2 * self.policy.max_hold_s + 60, 86_400) * 1000)},
        )

    def run(self) -> None:
        self.consumer.subscribe([self.sub.topic(self.s)], on_assign=self._reassigned, on_revoke=self._reassigned)
        try:
            while not self.stop.is_set():
                try:
                    self._step()
                except Exception:  # a dead worker would stop its subscription for good
                    log.exception("%s: delivery loop error; resuming from the first undelivered record",
                                  self.sub.function)
                    self.stop.wait(1.0)
                    self._rewind()
        finally:
            self.consumer.close()  # commits stored offsets
            self.dlq.flush(5)
            self.client.close()

    def _step(self) -> None:
        first = self.consumer.poll(0.2)  # returns as soon as one record is there
        self._refresh_lag()
        if first is None:
            return
        more = self.consumer.consume(self.sub.max_batch - 1, 0) if self.sub.max_batch > 1 else []
        records = [m for m in (first, *more) if self._is_record(m)]
        for msg in records:
            self.next_offsets.setdefault(msg.partition(), msg.offset())
        if records and not self._deliver_all(records) and not self.stop.is_set():
            self._rewind()  # the records not handled yet come again with the next poll

    def _rewind(self) -> None:
        """Seek back to the first record not yet delivered, so that no polled record is skipped."""
        topic = self.sub.topic(self.s)
        for partition, offset in list(self.next_offsets.items()):
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # no longer ours: its new owner starts from the commit
                log.info("%s: no rewind of %s[%d]: %s", self.sub.function, topic, partition, exc)

    def _store(self, msg: Message) -> None:
        try:
            self.consumer.store_offsets(message=msg)
        except KafkaException as exc:
            if exc.args[0].code() not in (KafkaError._STATE, KafkaError._UNKNOWN_PARTITION):
                raise
            # The partition was revoked while the record was being delivered (a session that
            # timed out on a busy broker): its new owner redelivers it, and consumers are
            # idempotent. The worker must live on, not die with the exception.
            log.info("%s: %s[%d] revoked during delivery; its new owner redelivers from the commit",
                     self.sub.function, msg.topic(), msg.partition())
            return
        self.next_offsets[msg.partition()] = msg.offset() + 1

    def _reassigned(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        self.next_offsets.clear()

    def _refresh_lag(self) -> None:
        """Records of this worker's partitions not yet delivered, from the high watermark of
        its last fetch (tansu's ListOffsets answer is wrong; its fetch responses are right).
        Runs on the worker's own thread: the consumer's calls block while another thread polls."""
        total = 0
        for tp in self.consumer.assignment():
            high = self.consumer.get_watermark_offsets(tp, cached=True)[1]
            start = self.next_offsets.get(tp.partition)
            if start is None:  # nothing received yet: the fetch position is where it stands
                start = self.consumer.position([tp])[0].offset
            if high >= 0 and start >= 0:
                total += max(high - start, 0)
        self.lag = total

    def _is_record(self, msg: Message) -> bool:
        if msg.error() is None:
            return True
        if msg.error().code() != KafkaError._PARTITION_EOF:
            log.warning("%s: consume error %s", self.sub.function, msg.error())
        return False

    def _deliver_all(self, msgs: list[Message]) -> bool:
        """Deliver or dead-letter the records in order, storing each offset once handled. False
        when it stopped early (shutdown; or a record held its partition for the whole policy,
        so the worker polls again before the next one starts its own)."""
        events = [kafka_to_structured(m.headers(), m.value()) for m in msgs] if len(msgs) > 1 else []
        if events and None not in events:
            outcome = self._send({"content-type": BATCH_CONTENT_TYPE}, structured_batch(events), batch=True)
            if outcome is Outcome.DELIVERED:
                self.stats.add(delivered=len(msgs))
                for msg in msgs:
                    self._store(msg)
                return True
            if outcome is Outcome.STOPPED:
                return False
            if outcome is Outcome.EXHAUSTED:
                # Unavailable for the whole policy: KafkaSource, one record per partition in
                # flight, would have dead-lettered each partition's first record by now.
                heads: dict[int, Message] = {}
                for msg in msgs:
                    heads.setdefault(msg.partition(), msg)
                for msg in heads.values():
                    if not self._dead_letter(msg, self._last_refusal):
                        return False
                    self._store(msg)
                return False
        for msg in msgs:  # one at a time: a refused record is retried and dead-lettered alone
            outcome = self._send(kafka_to_http_headers(msg.headers()), msg.value() or b"", batch=False)
            if outcome is Outcome.STOPPED:
                return False
            if outcome is Outcome.DELIVERED:
                self.stats.add(delivered=1)
            elif not self._dead_letter(msg, self._last_refusal):
                return False
            self._store(msg)
            if outcome is Outcome.EXHAUSTED:
                return False
        return True

    def _send(self, headers: dict[str, str], body: bytes, *, batch: bool) -> Outcome:
        """POST under the delivery policy: attempt, and after a retryable failure wait the
        policy's backoff and try again, until a 2xx, a status that is not retried, or the
        policy's last attempt. A batch gives up at the first failure that is not
        unavailability, to be split up: one bad record must not cost the others retries."""
        for attempt in range(self.policy.attempts):
            if attempt:
                self.stats.add(retries=1)
                self._refresh_lag()  # the lag grows while the function is away
                if self.stop.wait(self.policy.delay_s(attempt)):
                    return Outcome.STOPPED
            elif self.stop.is_set():
                return Outcome.STOPPED
            status, reason = self._post(headers, body)
            if status is not None and 200 <= status < 300:
                return Outcome.DELIVERED
            self._last_refusal = f"HTTP {status}: {reason}" if status is not None else f"no answer: {reason}"
            if not is_retryable(status) or (batch and status is not None and status not in UNAVAILABLE):
                return Outcome.REFUSED
        return Outcome.EXHAUSTED

    def _post(self, headers: dict[str, str], body: bytes) -> tuple[int | None, str]:
        try:
            resp = self.client.post(self.url, headers=headers, content=body)
            return resp.status_code, resp.text[:500]
        except httpx.HTTPError as exc:
            return None, str(exc)

    def _dead_letter(self, msg: Message, reason: str) -> bool:
        dlq_topic = self.s.kafka.dead_letter_topic(self.sub.topic_key)
        headers = [*(msg.headers() or []),
                   ("genrec-dlq-reason", reason.encode()[:1000]),
                   ("genrec-dlq-subscriber", self.sub.function.encode()),
                   ("genrec-dlq-origin", f"{msg.topic()}/{msg.partition()}/{msg.offset()}".encode())]
        delivered: list[bool] = []
        self.dlq.produce(dlq_topic, key=msg.key(), value=msg.value(), headers=headers,
                         on_delivery=lambda err, _m: delivered.append(err is None))
        self.dlq.flush(10)
        if not delivered or not delivered[0]:
            return False  # the record stays uncommitted and is retried after restart
        log.error("%s: dead-lettered %s/%d/%d: %s", self.sub.function, msg.topic(), msg.partition(),
                  msg.offset(), reason)
        self.stats.add(dead_lettered=1)
        return True


class Bridge:
    """Runs one worker per subscription whose function has a URL."""

    def __init__(self, s: Settings, url_for: Callable[[str], str | None] | None = None,
                 subscriptions: tuple[Subscription, ...] = SUBSCRIPTIONS, max_consumers_per_subscription: int = 1):
        self.stats = BridgeStats()
        self.stop_event = threading.Event()
        url_for = url_for or (lambda name: s.function_url(name.replace("-", "_")))
        # Up to one consumer per partition: partitions are delivered in parallel, each in order.
        # The default stays at 1 until the bridge tests cover parallel consumers.
        self.workers = [
            SubscriptionWorker(s, sub, url, self.stats, self.stop_event)
            for sub in subscriptions
            if (url := url_for(sub.function))
            for _ in range(min(s.kafka.topics[sub.topic_key].partitions, max_consumers_per_subscription))
        ]
        self.threads: list[threading.Thread] = []

    def start(self) -> Bridge:
        for w in self.workers:
            t = threading.Thread(target=w.run, name=f"bridge-{w.sub.function}-{w.sub.topic_key}", daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + timeout_s
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
