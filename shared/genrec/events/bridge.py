"""Local eventing bridge: the contract of Knative Eventing's KafkaSource, on one machine.

For each subscription: consume the topic as a consumer group, POST each record to the
function as a binary-mode CloudEvent, and store the offset for commit only after a 2xx.
Per-partition order is kept (one record in flight per consumer, like KafkaSource's
"ordered" delivery). Failures are retried with exponential backoff:

* the function is unreachable or says it is (connection error, timeout, 502/503/504):
  retry without limit — the function is down, the record is fine, nothing may be lost;
* the function answers any other non-2xx: after ``max_attempts`` the record is copied to
  the dead-letter topic (with the error in headers) and the stream moves on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from confluent_kafka import KafkaError, Message
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from genrec.config import Settings
from genrec.events.kafka import consumer, consumer_lag, producer
from genrec.events.subscriptions import SUBSCRIPTIONS, Subscription, consumer_groups

log = logging.getLogger("genrec.bridge")

UNAVAILABLE = {502, 503, 504}


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
    """``genrec_bridge_consumer_lag{group,topic}``. A background thread reads it from the broker
    every ``interval_s``, so a scrape (and the health check on /metrics) never waits on Kafka."""

    def __init__(self, s: Settings, subscriptions: tuple[Subscription, ...] = SUBSCRIPTIONS,
                 interval_s: float = 5.0) -> None:
        self.s, self.interval_s = s, interval_s
        self.groups = consumer_groups(s, subscriptions)
        self.latest: dict[tuple[str, str], int] = {}
        self._stop = threading.Event()

    def start(self) -> ConsumerLagCollector:
        threading.Thread(target=self._run, name="bridge-lag", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.latest = consumer_lag(self.s, self.groups)
            except Exception as exc:  # the broker may be away for a while: keep the last reading
                log.warning("consumer lag unavailable: %s", exc)
            self._stop.wait(self.interval_s)

    def collect(self):
        family = GaugeMetricFamily("genrec_bridge_consumer_lag", "records not yet delivered and committed",
                                   labels=["group", "topic"])
        for (group, topic), lag in sorted(self.latest.items()):
            family.add_metric([group, topic], lag)
        yield family


def _kafka_to_http_headers(msg: Message) -> dict[str, str]:
    """Kafka binary mode (ce_*) → HTTP binary mode (ce-*), as KafkaSource does."""
    headers = {}
    for key, value in msg.headers() or []:
        text = value.decode() if isinstance(value, bytes) else str(value)
        if key.startswith("ce_"):
            headers["ce-" + key[3:]] = text
        elif key.lower() == "content-type":
            headers["content-type"] = text
    headers.setdefault("content-type", "application/json")
    return headers


class SubscriptionWorker:
    """Delivers one subscription's records to its function; one consumer, one thread."""

    def __init__(self, s: Settings, sub: Subscription, url: str, stats: BridgeStats,
                 stop: threading.Event, *, backoff_s: float = 0.05, max_backoff_s: float = 2.0,
                 timeout_s: float = 30.0) -> None:
        self.s, self.sub, self.url, self.stats, self.stop = s, sub, url.rstrip("/") + sub.path, stats, stop
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.client = httpx.Client(timeout=timeout_s)
        self.dlq = producer(s)
        self.consumer = consumer(
            s, sub.group_id,
            # offsets are stored only after success and committed in the background
            **{"enable.auto.commit": True, "enable.auto.offset.store": False, "auto.commit.interval.ms": 200},
        )

    def run(self) -> None:
        self.consumer.subscribe([self.sub.topic(self.s)])
        try:
            while not self.stop.is_set():
                msg = self.consumer.poll(0.2)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        log.warning("%s: consume error %s", self.sub.function, msg.error())
                    continue
                if self._deliver(msg):
                    self.consumer.store_offsets(message=msg)
        finally:
            self.consumer.close()  # commits stored offsets
            self.dlq.flush(5)
            self.client.close()

    def _deliver(self, msg: Message) -> bool:
        """True once the record is handled (delivered or dead-lettered); False on shutdown."""
        headers, body = _kafka_to_http_headers(msg), msg.value() or b""
        failures, delay = 0, self.backoff_s
        while not self.stop.is_set():
            status, reason = self._post(headers, body)
            if status is not None and 200 <= status < 300:
                self.stats.add(delivered=1)
                return True
            if status is not None and status not in UNAVAILABLE:
                failures += 1
                if failures >= self.sub.max_attempts:
                    return self._dead_letter(msg, f"HTTP {status}: {reason}")
            self.stats.add(retries=1)
            self.stop.wait(delay)
            delay = min(delay * 2, self.max_backoff_s)
        return False

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
