"""Dead-lettered records back to the topic they came from (`genrec events replay <topic>.dlq`).

A record reaches a dead-letter topic when its delivery policy ran out: an outage longer than
the policy's window, or a function that refused it. Once the cause is fixed, replay re-sends
the records as they were (key, value, CloudEvent headers) to their source topic, where the
subscriptions deliver them again. The annotations added on the way to the dead-letter topic
(the bridge's ``genrec-dlq-*`` headers, Knative's ``knativeerror*`` extensions) are dropped.
Functions deduplicate by CloudEvent (source, id), so a record whose effect was applied after
all (a response lost to a timeout) is a no-op the second time.

Each dead letter is re-sent once: the replay's own consumer group on the dead-letter topic is
committed only after the broker acknowledged (acks=all) every record re-sent up to that
offset, so a second run finds nothing; a run killed between the ack and the commit re-sends
a few records again, which the functions' deduplication absorbs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer, TopicPartition

from genrec.config import Settings
from genrec.events.codec import EventError, from_kafka
from genrec.events.kafka import admin_client, consumer, consumer_lag, producer
from genrec.events.publisher import BrokerUnavailable

log = logging.getLogger("genrec.replay")

# Headers the dead-lettering adds (lower case); everything else is the original record's.
_ANNOTATION_PREFIXES = ("genrec-dlq-", "ce_knativeerror")
CHUNK = 500  # records re-sent, acknowledged and committed together


class NotADeadLetterTopic(ValueError):
    """The topic named is not one of the configured dead-letter topics."""


class ReplayError(RuntimeError):
    """The broker did not acknowledge a re-sent record; what was acknowledged is committed."""


def source_topic(s: Settings, dead_letter_topic: str) -> str:
    """The topic whose dead letters ``dead_letter_topic`` holds."""
    for key in s.kafka.topics:
        if s.kafka.dead_letter_topic(key) == dead_letter_topic:
            return s.kafka.topic(key)
    known = ", ".join(sorted(s.kafka.dead_letter_topic(k) for k in s.kafka.topics))
    raise NotADeadLetterTopic(f"{dead_letter_topic!r} is not a dead-letter topic (known: {known})")


def replay_group(dead_letter_topic: str) -> str:
    return f"genrec-replay-{dead_letter_topic}"


@dataclass(frozen=True)
class DeadLetter:
    """One record on a dead-letter topic, and what it says about itself."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @classmethod
    def of(cls, msg: Message) -> DeadLetter:
        headers = [(k, v if isinstance(v, bytes) else str(v or "").encode()) for k, v in (msg.headers() or [])]
        return cls(msg.partition(), msg.offset(), msg.key(), msg.value(), headers)

    def header(self, name: str) -> str:
        return next((v.decode(errors="replace") for k, v in self.headers if k.lower() == name), "")

    @property
    def event_id(self) -> str:
        return self.header("ce_id")

    @property
    def event_type(self) -> str:
        return self.header("ce_type")

    @property
    def reason(self) -> str:
        """Why it was dead-lettered: the bridge's reason, or Knative's error code and data."""
        if reason := self.header("genrec-dlq-reason"):
            return reason
        code, data = self.header("ce_knativeerrorcode"), self.header("ce_knativeerrordata")
        return f"HTTP {code}: {data}".strip(": ") if code else ""

    def original_headers(self) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in self.headers if not k.lower().startswith(_ANNOTATION_PREFIXES)]

    def partition_key(self) -> bytes | None:
        """The record's key; a KafkaSink keeps none (it keys by a ``partitionkey`` extension
        only), so then the event's own partition key, as event-capture set it."""
        if self.key is not None:
            return self.key
        try:
            return from_kafka(self.original_headers(), None, self.value or b"").partition_key.encode()
        except EventError:  # not a valid event: re-sent unkeyed, as it was
            return None


class DeadLetterReplay:
    """Reads a dead-letter topic from its replay group's committed offsets and re-sends."""

    def __init__(self, s: Settings, dead_letter_topic: str, *, timeout_s: float = 10.0) -> None:
        self.s, self.topic, self.timeout_s = s, dead_letter_topic, timeout_s
        self.source = source_topic(s, dead_letter_topic)
        self.group = replay_group(dead_letter_topic)

    def pending(self) -> int:
        """Dead letters not replayed yet."""
        lag = consumer_lag(self.s, {self.group: [self.topic]}, self.timeout_s).get((self.group, self.topic), 0)
        if lag is None:
            raise BrokerUnavailable(f"{self.topic} did not answer a fetch within {self.timeout_s:.0f}s")
        return lag

    def peek(self, limit: int | None = None) -> list[DeadLetter]:
        """The dead letters a replay would re-send, in order; sends and commits nothing."""
        reader = self._reader()
        try:
            return [DeadLetter.of(m) for m in self._read(reader, limit)]
        finally:
            reader.close()

    def run(self, limit: int | None = None, on_sent: Callable[[int], None] = lambda _n: None) -> int:
        """Re-send up to ``limit`` dead letters to the source topic; returns how many. Offsets
        are committed a chunk at a time, each only after the broker acknowledged the chunk."""
        reader, out = self._reader(), producer(self.s)
        sent = 0
        try:
            chunk: list[Message] = []
            for msg in self._read(reader, limit):
                chunk.append(msg)
                if len(chunk) == CHUNK:
                    sent += self._send(reader, out, chunk)
                    on_sent(len(chunk))
                    chunk = []
            if chunk:
                sent += self._send(reader, out, chunk)
                on_sent(len(chunk))
        finally:
            reader.close()
        return sent

    def _send(self, reader: Consumer, out: Producer, chunk: list[Message]) -> int:
        acked: dict[int, bool] = {}
        for i, msg in enumerate(chunk):
            letter = DeadLetter.of(msg)
            out.produce(self.source, key=letter.partition_key(), value=letter.value, headers=letter.original_headers(),
                        on_delivery=lambda err, _m, i=i: acked.__setitem__(i, err is None))
        out.flush(self.timeout_s + 10)  # past the producer's message timeout: every callback ran
        # Commit, per partition, the records up to the first one not acknowledged.
        commit: dict[int, int] = {}
        failed: set[int] = set()
        for i, msg in enumerate(chunk):
            if msg.partition() in failed:
                continue
            if acked.get(i):
                commit[msg.partition()] = msg.offset() + 1
            else:
                failed.add(msg.partition())
        if commit:
            reader.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in commit.items()], asynchronous=False)
        if failed:
            raise ReplayError(f"the broker did not acknowledge re-sent records of {self.topic}; "
                              "the acknowledged ones are committed: run the replay again")
        return len(chunk)

    def _reader(self) -> Consumer:
        """A consumer of the replay group that reads from its committed offsets. Assigned, not
        subscribed: no group join to wait for, and nothing is committed unless we say so."""
        reader = consumer(self.s, self.group, **{"enable.partition.eof": True, "fetch.wait.max.ms": 100})
        meta = admin_client(self.s).list_topics(self.topic, timeout=self.timeout_s).topics.get(self.topic)
        if meta is None or meta.error is not None:
            reader.close()
            raise ReplayError(f"{self.topic!r} does not exist on the broker")
        committed = reader.committed([TopicPartition(self.topic, p) for p in meta.partitions], timeout=self.timeout_s)
        reader.assign([TopicPartition(self.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                       for tp in committed])
        return reader

    def _read(self, reader: Consumer, limit: int | None) -> Iterator[Message]:
        """Records from the assigned offsets until every partition reached its end (or ``limit``)."""
        open_partitions = {tp.partition for tp in reader.assignment()}
        deadline, count = time.monotonic() + self.timeout_s, 0
        while open_partitions and (limit is None or count < limit):
            msg = reader.poll(0.2)
            if msg is None:
                if time.monotonic() > deadline:  # a partition that never answers: stop, say so
                    log.warning("%s: no end of partitions %s in %.0f s", self.topic, sorted(open_partitions),
                                self.timeout_s)
                    return
                continue
            deadline = time.monotonic() + self.timeout_s
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    open_partitions.discard(msg.partition())
                else:
                    log.warning("%s: %s", self.topic, msg.error())
                continue
            count += 1
            yield msg
