"""Edge de-duplication of CloudEvents by (source, id), in Redis, and one receipt time per event.

An event is marked accepted only after the broker acknowledged it, so a retry of an event that
failed to publish is never mistaken for a duplicate. Two concurrent deliveries of the same
event can both pass; consumers are idempotent as well, so that costs work, not correctness.

An event without a ``time`` gets the time of its first receipt, and every later copy gets that
same time: the first receipt reserves it (``SET NX``) before publishing, and a resend of an event
whose publish was never confirmed (a 503, or event capture killed after the broker had it but
before it answered) reads it back. Copies of one event are then identical for every consumer,
which the analytics store relies on to collapse them (its de-duplication key includes the time).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime

import redis
from redis.cluster import RedisCluster

from genrec.events.codec import ValidEvent

log = logging.getLogger("genrec.dedup")

ACCEPTED = "a"  # the broker has it (older versions wrote "1": also accepted)
PENDING = "p:"  # + ISO time: received at that time, publish not (yet) confirmed

# Per key: SET NX GET (the old value, or '' for none) in one round trip on a single server.
_CLAIM_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('SET', key, ARGV[1], 'NX', 'GET', 'EX', ARGV[2]) or ''
end
return out
"""


# Per key: SET to the accepted mark with the window's TTL: one command for a whole batch (a
# pipeline of one SET per event cost event-capture more to encode than Redis to run).
_MARK_LUA = """
for _, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[1], 'EX', ARGV[2])
end
return #KEYS
"""


def dedup_key(source: str, event_id: str) -> str:
    digest = hashlib.blake2b(f"{source}\0{event_id}".encode(), digest_size=16).hexdigest()
    return f"ce:seen:{digest}"


class EventDeduplicator:
    def __init__(self, client: redis.Redis | RedisCluster, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self._cluster = isinstance(client, RedisCluster)
        self._claim = None if self._cluster else client.register_script(_CLAIM_LUA)
        self._mark = None if self._cluster else client.register_script(_MARK_LUA)

    def claim(self, events: Sequence[ValidEvent], now: datetime) -> list[datetime | None]:
        """Per event: None if it was accepted before (a duplicate), else its receipt time (``now``
        for a first receipt, the reserved one for a resend). If Redis is down, every event is new
        and received ``now`` (consumers de-duplicate)."""
        if not events:
            return []
        keys = [dedup_key(ev.source, ev.id) for ev in events]
        pending = PENDING + now.isoformat()
        try:
            if self._claim is not None:
                old = self._claim(keys=keys, args=[pending, self.ttl_s])
            else:  # a cluster: the keys span slots, so one command each (the client groups them by node)
                pipe = self.client.pipeline(transaction=False)
                for key in keys:
                    pipe.set(key, pending, nx=True, get=True, ex=self.ttl_s)
                old = pipe.execute()
        except redis.RedisError as exc:
            log.warning("dedup skipped, redis unavailable: %s", exc)
            return [now] * len(events)
        return [_receipt(value, now) for value in old]

    def mark(self, events: Sequence[ValidEvent]) -> None:
        """The broker has these events: later copies are duplicates."""
        if not events:
            return
        keys = [dedup_key(ev.source, ev.id) for ev in events]
        try:
            if self._mark is not None:
                self._mark(keys=keys, args=[ACCEPTED, self.ttl_s])
            else:  # a cluster: the keys span slots
                pipe = self.client.pipeline(transaction=False)
                for key in keys:
                    pipe.set(key, ACCEPTED, ex=self.ttl_s)
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("dedup mark skipped, redis unavailable: %s", exc)


def _receipt(old: str | None, now: datetime) -> datetime | None:
    if not old:
        return now
    if old.startswith(PENDING):
        return datetime.fromisoformat(old[len(PENDING):])
    return None
