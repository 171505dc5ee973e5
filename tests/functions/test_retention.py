"""The embedded broker's retention: the record batches every reading group has committed are
dropped from the store, nothing else; the topic's offsets and readers carry on."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from genrec.config import Settings, TopicSettings
from genrec.devstack.retention import LogRetention
from genrec.events.kafka import consumer, ensure_topics, producer
from genrec.stores.objects import s3_client

pytestmark = pytest.mark.stack


def _batch_bases(s: Settings, topic: str) -> list[int]:
    prefix = f"clusters/{s.s3.kafka_cluster}/topics/{topic}/partitions/{0:010d}/records/"
    listed = s3_client(s).list_objects_v2(Bucket=s.s3.kafka_bucket, Prefix=prefix).get("Contents", [])
    return sorted(int(o["Key"].rsplit("/", 1)[1].split(".")[0]) for o in listed)


def _commit(s: Settings, group: str, topic: str, offset: int) -> None:
    c = consumer(s, group)
    try:
        c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        c.close()


def _read_all(s: Settings, topic: str, start: int = OFFSET_BEGINNING) -> list[int]:
    """Offsets a reader of a new group finds from ``start`` to the end."""
    c = consumer(s, f"test-reader-{uuid.uuid4().hex}", **{"enable.partition.eof": True})
    offsets: list[int] = []
    try:
        c.assign([TopicPartition(topic, 0, start)])
        while (msg := c.poll(10)) is not None and msg.error() is None:
            offsets.append(msg.offset())
    finally:
        c.close()
    return offsets


def test_batches_every_group_committed_are_dropped_and_the_log_reads_on(stack: Settings) -> None:
    s = stack.model_copy(deep=True)
    topic = f"retention-test-{uuid.uuid4().hex[:12]}"
    s.kafka.topics = {"t": TopicSettings(name=topic)}
    ensure_topics(s)
    out = producer(s)
    for batch in range(3):  # three produce requests: three batches in the store
        for i in range(10):
            out.produce(topic, value=f"{batch}-{i}".encode())
        assert out.flush(10) == 0
    bases = _batch_bases(s, topic)
    assert len(bases) == 3
    ahead, behind = f"test-ahead-{uuid.uuid4().hex}", f"test-behind-{uuid.uuid4().hex}"
    s.kafka.embedded_retention_s = 0
    retention = LogRetention(s, {ahead: [topic], behind: [topic]})

    _commit(s, ahead, topic, 30)
    retention.step()  # one group has not read a thing: everything stays
    assert _batch_bases(s, topic) == bases
    assert retention.logs[topic].records_written == 30 and retention.logs[topic].batches_stored == 3

    _commit(s, behind, topic, bases[2])  # both have read the first two batches
    s.kafka.embedded_retention_s = 3600
    retention.step()  # ... but they are younger than the retention time
    assert _batch_bases(s, topic) == bases

    s.kafka.embedded_retention_s = 0
    retention.step()
    assert _batch_bases(s, topic) == bases[2:]  # the last batch is never dropped
    assert retention.logs[topic].batches_dropped == 2 and retention.logs[topic].batches_stored == 1

    # The log reads on: from the beginning a new reader starts at the first batch left, a
    # group resumes at its commit, and offsets go on where they were.
    assert _read_all(s, topic) == list(range(bases[2], 30))
    out.produce(topic, value=b"after")
    assert out.flush(10) == 0
    assert _read_all(s, topic, start=30) == [30]
    retention.step()
    assert retention.logs[topic].records_written == 31
    retention.close()
