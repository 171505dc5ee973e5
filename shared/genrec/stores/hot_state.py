"""Hot per-user and per-item state in Redis: what the online path reads in a millisecond.

Key names and TTLs live in ``redis_keys``. Delivered interactions are applied once each
(``apply_interactions_once``): each one's claim and its user's keys change in one script, in
the user's slot (each user's keys share one), and popularity boards follow.

Popularity with exponential time decay, without rescanning: an event of weight w at time
t adds ``w * 2^((t - epoch) / half_life)`` to the item's score on a board. Every stored
score then carries the same factor ``2^((now - epoch) / half_life)``, so the decayed value
is ``score * 2^((epoch - now) / half_life)`` and ranking needs no decay at all. The
factor grows without bound, so each board keeps its own epoch and a Lua script moves it
forward (one server-side rescale, plus pruning of negligible items) once it is
``REBASE_AFTER_HALF_LIVES`` old, long before doubles overflow. Ordering is unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from genrec.config import Settings, get_settings
from genrec.stores import redis_keys as keys

RedisClient = redis.Redis | RedisCluster

REBASE_AFTER_HALF_LIVES = 128.0  # factor <= 2^128 ~ 3e38: far from overflow, even summed
PRUNE_BELOW = 1e-9  # at a rebase, drop items whose decayed score is below this

# A user's delivered interactions, each applied at most once, atomically with its claim (all
# keys in the user's slot), so a crash can never leave a claim without its update or an update
# without its claim. One call per user and batch: the list, counters and cache change once for
# all of the user's new events (a call per event cost Redis nine commands and a script run each).
# KEYS: seq, feat, rec, then one claim per event.
# ARGV: claim_ttl, cap, state_ttl, then per event: item, event_type, ts, append(0/1).
# Returns 1/0 per event: applied, or claimed before (a redelivery).
_APPLY_ONCE_LUA = """
local applied, pushed, counts, n = {}, {}, {}, 0
local last_item, last_ts
for i = 4, #KEYS do
  local a = 4 + (i - 4) * 4
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    applied[i - 3] = 1
    n = n + 1
    if ARGV[a + 3] == '1' then pushed[#pushed + 1] = ARGV[a] end
    counts[ARGV[a + 1]] = (counts[ARGV[a + 1]] or 0) + 1
    last_item, last_ts = ARGV[a], ARGV[a + 2]
  else
    applied[i - 3] = 0
  end
end
if n == 0 then return applied end
if #pushed > 0 then
  redis.call('RPUSH', KEYS[1], unpack(pushed))
  redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
redis.call('HINCRBY', KEYS[2], 'events', n)
for event_type, count in pairs(counts) do
  redis.call('HINCRBY', KEYS[2], 'events:' .. event_type, count)
end
redis.call('HSET', KEYS[2], 'last_item', last_item, 'last_ts', last_ts)
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('DEL', KEYS[3])
return applied
"""

# KEYS: board, epoch. ARGV: now, half_life_s, rebase_after, prune_below, then (member, weight)*,
# each weight as of ``now``.
_BUMP_LUA = """
local now = tonumber(ARGV[1])
local half_life = tonumber(ARGV[2])
local epoch = tonumber(redis.call('GET', KEYS[2]))
if not epoch then
  epoch = now
  redis.call('SET', KEYS[2], ARGV[1])
end
local halves = (now - epoch) / half_life
if halves > tonumber(ARGV[3]) then
  redis.call('ZUNIONSTORE', KEYS[1], 1, KEYS[1], 'WEIGHTS', 2 ^ (-halves))
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
  redis.call('SET', KEYS[2], ARGV[1])
  epoch = now
end
local factor = 2 ^ ((now - epoch) / half_life)
for i = 5, #ARGV, 2 do
  redis.call('ZINCRBY', KEYS[1], tonumber(ARGV[i + 1]) * factor, ARGV[i])
end
return 1
"""


def redis_client(s: Settings | None = None, *, timeout_s: float = 2.0) -> RedisClient:
    """A client for ``settings.redis.url``: RedisCluster when ``settings.redis.cluster``."""
    s = s or get_settings()
    url = s.redis.url.get_secret_value()
    opts: dict[str, Any] = {"decode_responses": True, "socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    if s.redis.cluster:
        return RedisCluster.from_url(url, **opts)
    return redis.Redis.from_url(url, health_check_interval=30, **opts)


@dataclass(frozen=True)
class Interaction:
    """One delivered interaction as the hot state applies it (``categories``: every level of
    the item's category path, so each category board is bumped)."""

    source: str
    event_id: str
    user_id: str
    item_id: str
    event_type: str = "view"
    append: bool = True  # False: counted, but not a positive signal for the sequence
    categories: tuple[str, ...] = ()
    weight: float = 1.0
    ts: float | datetime | None = None


def _seconds(ts: float | datetime | None, clock: Callable[[], float]) -> float:
    """Unix seconds; naive datetimes are UTC, as everywhere in genrec's stores."""
    if ts is None:
        return clock()
    if isinstance(ts, datetime):
        return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()
    return float(ts)


class HotState:
    def __init__(self, s: Settings | None = None, *, client: RedisClient | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.s = s or get_settings()
        self.r = client or redis_client(self.s)
        self.clock = clock  # injectable: tests drive time to check the decay math
        self._bump = self.r.register_script(_BUMP_LUA)
        self._apply_once = self.r.register_script(_APPLY_ONCE_LUA)

    # -- the online write path ---------------------------------------------------------------
    def apply_interactions_once(self, batch: Sequence[Interaction]) -> list[bool]:
        """Apply delivered interactions exactly once per (source, event_id), in order: which were
        applied (False: a redelivery).

        A user's claims and their sequence/counters/cache change in one script call (one slot),
        so a crash between them is impossible. Popularity boards live on other slots and follow;
        a crash in between leaves the boards short, never double-counted. Plain Redis: two round
        trips for the whole batch (one script call per user in one pipeline, then one popularity
        call per board for the events that were applied). Redis Cluster refuses scripts in
        pipelines, so there each user's call is its own.
        """
        stamped = [(it, _seconds(it.ts, self.clock)) for it in batch]
        by_user: dict[str, list[int]] = {}  # user -> positions in the batch, in stream order
        for i, (it, _t) in enumerate(stamped):
            by_user.setdefault(it.user_id, []).append(i)
        calls = [self._user_call(user, [stamped[i] for i in positions]) for user, positions in by_user.items()]
        if isinstance(self.r, RedisCluster):
            results = [self._apply_once(**call) for call in calls]
        else:
            pipe = self.r.pipeline(transaction=False)
            for call in calls:  # the pipeline makes sure the script is loaded before it runs
                self._apply_once(**call, client=pipe)
            results = pipe.execute()
        applied = [False] * len(stamped)
        for positions, flags in zip(by_user.values(), results, strict=True):
            for i, flag in zip(positions, flags, strict=True):
                applied[i] = bool(flag)
        # One increment per (board, item) for the batch, not one per event: each is a ZINCRBY in
        # the board's script, and popular items repeat within a batch. The events' decay factors
        # are summed as of ``now`` (2^((t - now) / half-life)), which the script scales to the
        # board's epoch like any event stamped ``now``: the same sum, fewer commands.
        now = self.clock()
        half_life = float(self.s.redis.popularity_half_life_s)
        per_board: dict[str, dict[str, float]] = {}
        for (it, t), ok in zip(stamped, applied, strict=True):
            if ok and it.weight > 0:
                weight = it.weight * 2.0 ** ((min(t, now) - now) / half_life)
                for board in dict.fromkeys([keys.GLOBAL_CATEGORY, *it.categories]):
                    items = per_board.setdefault(board, {})
                    items[it.item_id] = items.get(it.item_id, 0.0) + weight
        if per_board:
            self._execute_with_bumps(self.r.pipeline(transaction=False),
                                     [self._bump_args(board, items, now) for board, items in per_board.items()])
        return applied

    def _user_call(self, user_id: str, events: list[tuple[Interaction, float]]) -> dict[str, list[Any]]:
        """Keys and arguments of the apply-once script for one user's events."""
        redis = self.s.redis
        return {
            "keys": [keys.recent_items(user_id), keys.user_features(user_id), keys.recommendations(user_id),
                     *(keys.user_claim(user_id, it.source, it.event_id) for it, _t in events)],
            "args": [redis.idempotency_ttl_s, redis.recent_sequence_cap, keys.USER_STATE_TTL_S,
                     *(arg for it, t in events
                       for arg in (it.item_id, it.event_type, repr(t), "1" if it.append else "0"))],
        }

    def _execute_with_bumps(self, pipe: Any, bumps: list[tuple[list[str], list[Any]]]) -> None:
        """Run ``pipe`` plus one popularity script call per board.

        Plain Redis: the calls ride in the same pipeline as EVALSHA (one round trip); if the
        server's script cache is empty, the Script object loads the script and runs only the
        failed calls again, so nothing is applied twice. Redis Cluster: redis-py refuses
        EVALSHA in cluster pipelines, so the calls follow the pipeline, each routed to its
        board's shard.
        """
        if isinstance(self.r, RedisCluster):
            pipe.execute()
            for board_keys, args in bumps:
                self._bump(keys=board_keys, args=args)
            return
        first = len(pipe)
        for board_keys, args in bumps:
            pipe.evalsha(self._bump.sha, len(board_keys), *board_keys, *args)
        for i, result in enumerate(pipe.execute(raise_on_error=False)):
            if isinstance(result, NoScriptError) and i >= first:
                board_keys, args = bumps[i - first]
                self._bump(keys=board_keys, args=args)
            elif isinstance(result, Exception):
                raise result

    # -- popularity ------------------------------------------------------------------------
    def _bump_args(self, category: str, items: dict[str, float], now: float) -> tuple[list[str], list[Any]]:
        """The board script's keys and arguments: each item's weight as of ``now``."""
        args: list[Any] = [repr(float(now)), repr(float(self.s.redis.popularity_half_life_s)),
                           repr(REBASE_AFTER_HALF_LIVES), repr(PRUNE_BELOW)]
        for member, weight in items.items():
            args += [member, repr(float(weight))]
        return [keys.popularity(category), keys.popularity_epoch(category)], args

    def _decay(self, epoch: str | None) -> float:
        if epoch is None:
            return 0.0
        # A reader whose clock is behind the board's epoch (skew) reads values as of the epoch.
        return 2.0 ** (min(0.0, float(epoch) - self.clock()) / self.s.redis.popularity_half_life_s)

    def _read_board(self, category: str, read: Callable[[Any], None]) -> tuple[Any, float]:
        """Run ``read`` on a board between two reads of its epoch: equal epochs mean no rebase
        happened in between (a rebase is atomic and moves the epoch forward), else read again."""
        epoch_key = keys.popularity_epoch(category)
        while True:
            pipe = self.r.pipeline(transaction=False)
            pipe.get(epoch_key)
            read(pipe)
            pipe.get(epoch_key)
            before, result, after = pipe.execute()
            if before == after:
                return result, self._decay(before)

    def popular_items(self, category: str = keys.GLOBAL_CATEGORY, n: int = 50) -> list[tuple[str, float]]:
        """Top-n items on a board with their decayed scores (weight units as of now)."""
        top, factor = self._read_board(
            category, lambda p: p.zrevrange(keys.popularity(category), 0, n - 1, withscores=True))
        return [(item, score * factor) for item, score in top]

    def popularity(self, item_id: str, category: str = keys.GLOBAL_CATEGORY) -> float:
        score, factor = self._read_board(category, lambda p: p.zscore(keys.popularity(category), item_id))
        return (score or 0.0) * factor

    # -- recent sequence and features ---------------------------------------------------------
    def recent_items(self, user_id: str, n: int | None = None) -> list[str]:
        """The user's recent item ids, oldest first and newest last (the model's input order)."""
        return self.r.lrange(keys.recent_items(user_id), -n if n else 0, -1)

    def append_recent_items(self, user_id: str, item_ids: Sequence[str]) -> None:
        if not item_ids:
            return
        seq = keys.recent_items(user_id)
        pipe = self.r.pipeline(transaction=False)
        pipe.rpush(seq, *item_ids)
        pipe.ltrim(seq, -self.s.redis.recent_sequence_cap, -1)
        pipe.expire(seq, keys.USER_STATE_TTL_S)
        pipe.execute()

    def user_features(self, user_id: str) -> dict[str, str]:
        return self.r.hgetall(keys.user_features(user_id))

    # -- cached recommendations ---------------------------------------------------------------
    def cache_recommendations(self, user_id: str, payload: Any, ttl_s: int | None = None) -> None:
        self.r.set(keys.recommendations(user_id), orjson.dumps(payload),
                   ex=ttl_s or self.s.redis.recommendation_ttl_s)

    def cached_recommendations(self, user_id: str) -> Any | None:
        raw = self.r.get(keys.recommendations(user_id))
        return None if raw is None else orjson.loads(raw)

    def users_state(self, user_ids: Sequence[str], n: int | None = None) -> list[tuple[list[str], Any | None]]:
        """Each user's ``recent_items`` and ``cached_recommendations``, for all of them in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.lrange(keys.recent_items(user_id), -n if n else 0, -1)
            pipe.get(keys.recommendations(user_id))
        got = pipe.execute()
        return [(got[i], None if got[i + 1] is None else orjson.loads(got[i + 1])) for i in range(0, len(got), 2)]
