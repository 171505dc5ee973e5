"""Kafka clients configured from settings (confluent-kafka / librdkafka).

The same settings reach a production cluster (SASL/TLS) or the local tansu broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from genrec.config import Settings

_rdkafka_log = logging.getLogger("genrec.kafka.client")
log = logging.getLogger("genrec.kafka")


def _common(s: Settings) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": s.kafka.bootstrap_servers,
        "security.protocol": s.kafka.security_protocol,
        "logger": _rdkafka_log,  # librdkafka's own log lines go through Python logging
    }
    if s.kafka.sasl_mechanism:
        conf["sasl.mechanism"] = s.kafka.sasl_mechanism
        conf["sasl.username"] = s.kafka.sasl_username
        conf["sasl.password"] = s.kafka.sasl_password.get_secret_value() if s.kafka.sasl_password else ""
    return conf


def admin_client(s: Settings) -> AdminClient:
    return AdminClient(_common(s))


def producer(s: Settings, **overrides: Any) -> Producer:
    """An idempotent producer: acks=all, so an acknowledged record is durable on the broker."""
    return Producer(
        {
            **_common(s),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "message.timeout.ms": 10_000,
            **overrides,
        }
    )


# Answers that mean the broker no longer knows this producer's identity (a restarted broker that
# lost, or handed to another producer, its producer id): every later record would be refused too.
_RENEW_ON = frozenset({KafkaError.PRODUCER_FENCED, KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
                       KafkaError.UNKNOWN_PRODUCER_ID, KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER})


class RenewingProducer:
    """An idempotent producer that is replaced once the broker stops accepting its identity.

    After a broker restart (seen with tansu) a producer's records can be refused with
    PRODUCER_FENCED for good, or librdkafka can raise a fatal error: only a new producer (a new
    producer id) gets through. The failing records are reported to their callers (who retry),
    and the next ``produce`` goes through a fresh producer; the old one's queue fails at once."""

    def __init__(self, s: Settings, **overrides: Any) -> None:
        self._s, self._overrides = s, overrides
        self._renew = threading.Event()
        self._lock = threading.Lock()
        self._producer = self._new()

    def _new(self) -> Producer:
        return producer(self._s, error_cb=self._on_error, **self._overrides)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._replace_soon(err)

    def _replace_soon(self, err: KafkaError) -> None:
        if not self._renew.is_set():
            log.error("the broker refuses this producer for good (%s): a new one takes over", err)
            self._renew.set()

    def _current(self) -> Producer:
        if self._renew.is_set():
            with self._lock:
                if self._renew.is_set():
                    old, self._producer = self._producer, self._new()
                    self._renew.clear()
                    old.purge()
                    old.flush(0)
        return self._producer

    def produce(self, topic: str, *, on_delivery: Callable[[KafkaError | None, Any], None], **kwargs: Any
                ) -> Producer:
        """Produce through the current producer (which is returned, to flush)."""
        def delivered(err: KafkaError | None, msg: Any) -> None:
            if err is not None and (err.fatal() or err.code() in _RENEW_ON):
                self._replace_soon(err)
            on_delivery(err, msg)

        target = self._current()
        target.produce(topic, on_delivery=delivered, **kwargs)
        return target

    def poll(self, timeout_s: float) -> None:
        self._producer.poll(timeout_s)

    def flush(self, timeout_s: float) -> int:
        return self._producer.flush(timeout_s)


def consumer(s: Settings, group_id: str, **overrides: Any) -> Consumer:
    """A consumer that commits only what the caller says it has processed."""
    return Consumer(
        {
            **_common(s),
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": s.kafka.session_timeout_ms,
            "heartbeat.interval.ms": s.kafka.heartbeat_interval_ms,
            "fetch.wait.max.ms": s.kafka.fetch_wait_max_ms,
            **overrides,
        }
    )


def all_topics(s: Settings) -> dict[str, int]:
    """Every topic the system uses (source topics and their dead-letter topics) → partitions."""
    topics = {}
    for key, t in s.kafka.topics.items():
        topics[t.name] = t.partitions
        topics[s.kafka.dead_letter_topic(key)] = 1
    return topics


def ensure_topics(s: Settings, timeout_s: float = 10.0) -> list[str]:
    """Create missing topics with configured partitions; returns the names created."""
    admin = admin_client(s)  # kept in a variable: a temporary client fails with "Handle is terminating"
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [
        NewTopic(name, num_partitions=partitions, replication_factor=1)
        for name, partitions in all_topics(s).items()
        if name not in existing
    ]
    if not missing:
        return []
    futures = admin.create_topics(missing, operation_timeout=timeout_s, request_timeout=timeout_s)
    created = []
    for name, fut in futures.items():
        try:
            fut.result()
            created.append(name)
        except Exception as exc:  # a concurrent creator won the race: fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created


def consumer_lag(s: Settings, groups: dict[str, list[str]], timeout_s: float = 5.0) -> dict[tuple[str, str], int]:
    """Records not yet committed, per (consumer group, topic): the sum over partitions of the
    log end minus the group's committed offset (uncommitted partitions count from the start).

    The log end is the high watermark of a real fetch at the committed offset: tansu answers
    ListOffsets (``get_watermark_offsets`` uncached) with a wrong value once a produce request
    carries more than one record, but its fetch responses carry the right one.
    """
    lag: dict[tuple[str, str], int] = {}
    meta = admin_client(s).list_topics(timeout=timeout_s).topics
    for group, topics in groups.items():
        # Never subscribes (so never joins the group) and never commits: it only reads.
        probe = consumer(s, group_id=group, **{"enable.partition.eof": True, "fetch.wait.max.ms": 10})
        try:
            for topic in topics:
                if topic not in meta:
                    continue
                parts = probe.committed([TopicPartition(topic, p) for p in meta[topic].partitions],
                                        timeout=timeout_s)
                starts = {tp.partition: max(tp.offset, 0) for tp in parts}
                probe.assign([TopicPartition(topic, p, off) for p, off in starts.items()])
                ends = _fetched_high_watermarks(probe, topic, set(starts), timeout_s)
                lag[(group, topic)] = sum(max(ends.get(p, off) - off, 0) for p, off in starts.items())
                probe.unassign()
        finally:
            probe.close()
    return lag


def _fetched_high_watermarks(probe: Consumer, topic: str, partitions: set[int],
                             timeout_s: float) -> dict[int, int]:
    """Poll until every partition has answered a fetch, then read the watermarks it reported."""
    pending, deadline = set(partitions), time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        msg = probe.poll(0.1)
        if msg is not None and (msg.error() is None or msg.error().code() == KafkaError._PARTITION_EOF):
            pending.discard(msg.partition())
    return {p: probe.get_watermark_offsets(TopicPartition(topic, p), cached=True)[1]
            for p in partitions if p not in pending}
