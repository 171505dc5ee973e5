"""Publish validated events to Kafka and wait until the broker has them (acks=all).

A background thread serves librdkafka's delivery callbacks, so async request handlers can
await durability without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

from genrec.config import Settings
from genrec.events.codec import ValidEvent, to_kafka
from genrec.events.kafka import producer

log = logging.getLogger("genrec.publisher")


def _log_failure(err, msg) -> None:
    if err is not None:
        log.error("event to %s not delivered: %s", msg.topic(), err)


class BrokerUnavailable(RuntimeError):
    """The broker did not acknowledge every event in time; nothing may be assumed durable."""


class _Acks:
    """One future for a whole batch: set when the last record is acknowledged, failed at the
    first delivery error. (A future and a loop wake-up per record cost more than the produce.)"""

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.loop, self.pending, self.error = loop, count, ""
        self.done: asyncio.Future[None] = loop.create_future()
        self._lock = threading.Lock()

    def on_delivery(self, err, _msg) -> None:  # librdkafka's callback, on the delivery thread
        with self._lock:
            self.pending -= 1
            first_error = err is not None and not self.error
            if first_error:
                self.error = str(err)
            if first_error or self.pending == 0:
                self.loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if self.done.done():
            return
        if self.error:
            self.done.set_exception(BrokerUnavailable(self.error))
        else:
            self.done.set_result(None)


class EventPublisher:
    def __init__(self, s: Settings, *, timeout_s: float = 5.0, linger_ms: int | None = None) -> None:
        """``linger_ms`` trades delay for fewer, larger produce requests (fire-and-forget logs)."""
        self.s = s
        self.timeout_s = timeout_s
        self._producer = producer(s, **({"linger.ms": linger_ms} if linger_ms is not None else {}))
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def publish(self, events: Sequence[ValidEvent]) -> None:
        """Return once every event is acknowledged by the broker, else raise BrokerUnavailable."""
        if not events:
            return
        acks = _Acks(asyncio.get_running_loop(), len(events))
        # Encode first, then hand everything to the producer at once: a batch produced within
        # one linger window travels as one produce request per partition (each one costs the
        # broker an object-store write), not one every linger.ms while encoding.
        for topic, msg in [to_kafka(ev, self.s) for ev in events]:
            try:
                self._producer.produce(topic, key=msg.key, value=msg.value,
                                       headers=list(msg.headers.items()), on_delivery=acks.on_delivery)
            except BufferError as exc:
                raise BrokerUnavailable(f"producer queue full: {exc}") from None
        try:
            await asyncio.wait_for(acks.done, self.timeout_s)
        except TimeoutError:
            raise BrokerUnavailable(f"broker did not acknowledge within {self.timeout_s:.1f}s") from None

    def publish_nowait(self, events: Sequence[ValidEvent]) -> None:
        """Hand events to the producer and return; failures are logged, not raised (analytics)."""
        for ev in events:
            topic, msg = to_kafka(ev, self.s)
            self._producer.produce(topic, key=msg.key, value=msg.value, headers=list(msg.headers.items()),
                                   on_delivery=_log_failure)

    def publish_sync(self, events: Sequence[ValidEvent]) -> None:
        """Blocking variant for scripts and workers."""
        errors: list[str] = []
        for ev in events:
            topic, msg = to_kafka(ev, self.s)
            self._producer.produce(topic, key=msg.key, value=msg.value, headers=list(msg.headers.items()),
                                   on_delivery=lambda err, _m: errors.append(str(err)) if err else None)
        if self._producer.flush(self.timeout_s) > 0 or errors:
            raise BrokerUnavailable(errors[0] if errors else "broker did not acknowledge in time")

    def close(self) -> None:
        self._producer.flush(self.timeout_s)
        self._stop.set()
        self._poller.join(1)
