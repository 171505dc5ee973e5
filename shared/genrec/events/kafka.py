"""Kafka clients configured from settings (confluent-kafka / librdkafka).

The same settings reach a production cluster (SASL/TLS) or the local tansu broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from genrec.config import Settings

_rdkafka_log = logging.getLogger("genrec.kafka.client")


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
    """An at-least-once producer: acks=all (an acknowledged record is durable on the broker),
    retried until ``message.timeout.ms``, one request in flight per broker so a retry never
    overtakes a later batch (per-key order holds).

    Not idempotent, on purpose: exactly-once is the consumers' job (every consumer claims each
    event once: genrec.stores.hot_state, user_event_ids, ReplacingMergeTree), so a retry that
    writes a batch twice costs nothing. Broker-side idempotence adds producer ids and sequence
    state that a broker must keep across restarts; the embedded broker (tansu 0.6) does not: after
    a restart it fenced every producer for good, and once acknowledged a retried batch it had not
    written (the fault suite, `genrec bench faults`, lost it)."""
    return Producer(
        {
            **_common(s),
            "enable.idempotence": False,
            "acks": "all",
            "max.in.flight.requests.per.connection": 1,
            "linger.ms": 2,
            "message.timeout.ms": 10_000,
            **overrides,
        }
    )


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


def consumer_lag(s: Settings, groups: dict[str, list[str]],
                 timeout_s: float = 5.0) -> dict[tuple[str, str], int | None]:
    """Records not yet committed, per (consumer group, topic): the sum over partitions of the
    log end minus the group's committed offset (uncommitted partitions count from the start);
    None (unknown) when a partition's fetch did not answer within ``timeout_s``, never 0.

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
                starts = committed_offsets(probe, topic, meta[topic].partitions, timeout_s)
                probe.assign([TopicPartition(topic, p, off) for p, off in starts.items()])
                ends = _fetched_high_watermarks(probe, topic, set(starts), timeout_s)
                lag[(group, topic)] = (sum(max(ends[p] - off, 0) for p, off in starts.items())
                                       if ends.keys() == starts.keys() else None)
                probe.unassign()
        finally:
            probe.close()
    return lag


def committed_offsets(probe: Consumer, topic: str, partitions: Iterable[int], timeout_s: float) -> dict[int, int]:
    """The probe's group's committed offset per partition (0 where it has not committed)."""
    return {tp.partition: max(tp.offset, 0)
            for tp in probe.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout_s)}


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
