"""The code feed: items added after training, shared by every model server replica.

A per-artifact Redis list of ``{"item_id", "codes"}``. The item at list position ``p``
has dense index ``n_base_items + p``: replicas, the cold-start function and the recommend
function all derive the same index from the list alone, with no coordination.

Appends go through one Lua script that, atomically, (a) returns the existing index for
an item id already fed (events are delivered at least once), (b) refuses a code tuple
another fed item holds, and (c) pushes the rest. Collisions with the *trained* catalogue
are checked here before the script runs (the base table never changes for a version).
A duplicate code tuple must never reach the list: replicas could not build a table.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genrec.config import Settings
from genrec.serving import keys
from genrec.serving.artifact import ServingArtifact, resolve_current

_APPEND_LUA = """
for i = 2, #ARGV, 3 do
  if not redis.call('HGET', KEYS[2], ARGV[i]) then
    local owner = redis.call('HGET', KEYS[3], ARGV[i + 1])
    if owner and owner ~= ARGV[i] then
      return redis.error_reply('CODES_TAKEN item ' .. ARGV[i] .. ' has the codes of fed item ' .. owner)
    end
  end
end
local out = {}
local n_base = tonumber(ARGV[1])
for i = 2, #ARGV, 3 do
  local existing = redis.call('HGET', KEYS[2], ARGV[i])
  if existing then
    table.insert(out, tonumber(existing))
  else
    local idx = n_base + redis.call('RPUSH', KEYS[1], ARGV[i + 2]) - 1
    redis.call('HSET', KEYS[2], ARGV[i], idx)
    redis.call('HSET', KEYS[3], ARGV[i + 1], ARGV[i])
    table.insert(out, idx)
  end
end
return out
"""


class CodesTaken(ValueError):
    """The code tuple already belongs to another item: assign new codes and retry."""


@dataclass(frozen=True)
class FeedEntry:
    item_id: str
    codes: tuple[int, ...]


def pack(codes: np.ndarray, base: int) -> np.ndarray:
    """Mixed-radix int64 keys, the same packing as ``genrec.model.code_table.pack_codes``."""
    codes = np.asarray(codes, dtype=np.int64)
    weights = base ** np.arange(codes.shape[-1] - 1, -1, -1, dtype=np.int64)
    return (codes * weights).sum(-1)


def decode_entry(raw: str | bytes) -> FeedEntry:
    obj = json.loads(raw)
    return FeedEntry(str(obj["item_id"]), tuple(int(c) for c in obj["codes"]))


class CodeFeed:
    """Read and append one artifact version's feed."""

    def __init__(self, art: ServingArtifact, client: Any) -> None:
        self.art = art
        self.client = client
        self.version = art.version
        self.n_base = art.n_items
        self.level_sizes = art.level_sizes
        self.base = max(self.level_sizes)
        self._base_index: dict[str, int] | None = None
        self._base_keys: set[int] | None = None
        self._script = client.register_script(_APPEND_LUA)
        self._entries: list[FeedEntry] = []  # the feed as far as read (it only grows)
        self._entries_lock = threading.Lock()

    # ------------------------------------------------------------------ read
    def length(self) -> int:
        return int(self.client.llen(keys.feed(self.version)))

    def read(self, start: int = 0, stop: int = -1) -> list[FeedEntry]:
        return [decode_entry(r) for r in self.client.lrange(keys.feed(self.version), start, stop)]

    def entries(self) -> list[FeedEntry]:
        """Every fed item in feed order, reading only the entries not read before (one round trip):
        the cold-start path needs the whole table for every batch, and the feed grows until the
        next training."""
        key = keys.feed(self.version)
        with self._entries_lock:
            pipe = self.client.pipeline(transaction=False)
            pipe.llen(key)
            pipe.lrange(key, len(self._entries), -1)
            length, raw = pipe.execute()
            if int(length) < len(self._entries):  # the feed was lost (Redis without its data): start over
                self._entries = self.read()
            else:
                self._entries.extend(decode_entry(r) for r in raw)
            return list(self._entries)

    def codes(self) -> np.ndarray:
        """Codes of every fed item ``[M, C]``, in feed order."""
        return np.asarray([e.codes for e in self.entries()], dtype=np.int64).reshape(-1, len(self.level_sizes))

    def codes_of(self, item_id: str) -> tuple[int, ...] | None:
        """The codes an item already has (trained or fed), so re-delivered upserts keep them."""
        return self.codes_of_many([item_id])[0]

    def codes_of_many(self, item_ids: Sequence[str]) -> list[tuple[int, ...] | None]:
        """``codes_of`` for many items in at most two round trips (None: no codes yet)."""
        base_index, _ = self._base()
        out: list[tuple[int, ...] | None] = [None] * len(item_ids)
        asked = []
        for k, iid in enumerate(item_ids):
            if iid in base_index:
                out[k] = tuple(int(c) for c in self.art.item_codes[base_index[iid]])
            else:
                asked.append(k)
        if not asked:
            return out
        found = [(k, int(i)) for k, i in zip(asked, self.client.hmget(keys.feed_ids(self.version),
                                                                        [item_ids[k] for k in asked]), strict=True)
                 if i is not None]
        entries = self.entries() if found else []
        for k, idx in found:
            if idx - self.n_base < len(entries):
                out[k] = entries[idx - self.n_base].codes
        return out

    def all_codes(self) -> np.ndarray:
        """Trained + fed codes: the ``existing`` table to pass to ``tokenizer.assign``."""
        return np.concatenate([self.art.item_codes, self.codes()])

    # ---------------------------------------------------------------- append
    def append(self, item_ids: Sequence[str], codes: np.ndarray) -> np.ndarray:
        """Feed new items; returns their dense indices (existing ones for ids already known).

        Raises ``CodesTaken`` when a code tuple is held by another item, ``ValueError`` for
        codes outside the level vocabularies.
        """
        ids = [str(i) for i in item_ids]
        codes = np.asarray(codes, dtype=np.int64).reshape(len(ids), -1)
        if codes.shape[1] != len(self.level_sizes):
            raise ValueError(f"codes must have {len(self.level_sizes)} levels, got {codes.shape[1]}")
        if ((codes < 0) | (codes >= np.asarray(self.level_sizes))).any():
            raise ValueError(f"a code is outside its level's vocabulary {self.level_sizes}")
        packed = pack(codes, self.base)
        out = np.full(len(ids), -1, dtype=np.int64)
        todo: list[int] = []
        seen: dict[int, str] = {}
        base_index, base_keys = self._base()
        for row, (iid, key) in enumerate(zip(ids, packed.tolist(), strict=True)):
            if iid in base_index:  # a trained item: nothing to feed
                out[row] = base_index[iid]
                continue
            if key in base_keys:
                raise CodesTaken(f"item {iid}: codes {codes[row].tolist()} belong to a trained item")
            if seen.setdefault(key, iid) != iid:
                raise CodesTaken(f"items {seen[key]} and {iid} were given the same codes")
            todo.append(row)
        if todo:
            argv: list[Any] = [self.n_base]
            for row in todo:
                payload = json.dumps({"item_id": ids[row], "codes": codes[row].tolist()})
                argv += [ids[row], str(int(packed[row])), payload]
            try:
                got = self._script(keys=[keys.feed(self.version), keys.feed_ids(self.version),
                                         keys.feed_keys(self.version)], args=argv)
            except Exception as exc:
                if "CODES_TAKEN" in str(exc):
                    raise CodesTaken(str(exc).split("CODES_TAKEN", 1)[1].strip()) from exc
                raise
            out[todo] = [int(v) for v in got]
        return out

    def _base(self) -> tuple[dict[str, int], set[int]]:
        if self._base_index is None:
            self._base_index = {iid: i for i, iid in enumerate(self.art.item_ids)}
            self._base_keys = set(pack(self.art.item_codes, self.base).tolist())
        return self._base_index, self._base_keys  # type: ignore[return-value]


_feeds: dict[str, CodeFeed] = {}
_feeds_lock = threading.Lock()


def feed_for(art: ServingArtifact, client: Any) -> CodeFeed:
    """A cached ``CodeFeed`` per artifact version (its base-key set is costly to build)."""
    with _feeds_lock:
        feed = _feeds.get(art.version)
        if feed is None or feed.client is not client:
            feed = _feeds[art.version] = CodeFeed(art, client)
        return feed


def append_items(
    item_ids: Sequence[str], codes: np.ndarray, *, artifact: ServingArtifact | str | None = None,
    settings: Settings | None = None, client: Any = None,
) -> np.ndarray:
    """Make new items generatable by every model server replica within a poll interval.

    ``codes [M, levels]`` are the items' Semantic IDs (``tokenizer.assign`` against
    ``CodeFeed.all_codes()``). ``artifact`` defaults to the production artifact. Returns
    the dense indices (``n_base_items + feed position``), idempotent per item id.
    """
    return _feed(artifact, settings, client).append(item_ids, codes)


def assign_and_append(
    tokenizer: Any, item_ids: Sequence[str], embeddings: np.ndarray, *, artifact: ServingArtifact | str | None = None,
    settings: Settings | None = None, client: Any = None, retries: int = 3, skip_full: bool = False,
) -> np.ndarray:
    """The cold-start path in one call: Semantic IDs for new items, then the feed (one script
    run for the whole batch; tuples unique within it and against the table).

    ``tokenizer`` is the artifact's ``SemanticIdTokenizer`` (``TrainedBundle.tokenizer``);
    codes are assigned against the trained *and* fed table, and reassigned if another
    writer took one of them in the meantime (``CodesTaken``). An item whose code prefix is
    full raises ``PrefixFull``; with ``skip_full`` it is left out instead (index -1) and the
    others are fed.
    """
    feed = _feed(artifact, settings, client)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    out = np.full(len(item_ids), -1, dtype=np.int64)
    for attempt in range(retries + 1):
        if skip_full:
            codes, placed = tokenizer.assign_where_free(embeddings, existing=feed.all_codes())
        else:
            codes, placed = tokenizer.assign(embeddings, existing=feed.all_codes()), np.ones(len(item_ids), bool)
        rows = np.flatnonzero(placed)
        try:
            out[rows] = feed.append([item_ids[k] for k in rows], codes[rows]) if len(rows) else []
            return out
        except CodesTaken:
            if attempt == retries:
                raise
    raise AssertionError("unreachable")


def _feed(artifact: ServingArtifact | str | None, settings: Settings | None, client: Any) -> CodeFeed:
    """The code feed of ``artifact`` (an artifact, its URI, or None for the production one)."""
    from genrec.stores.hot_state import redis_client

    client = client or redis_client(settings)
    if artifact is None or isinstance(artifact, str):
        uri = artifact or resolve_current(settings, client)
        if uri is None:
            raise RuntimeError("no production artifact: promote one with `genrec serve promote DIR`")
        artifact = _open_cached(uri, settings)
    return feed_for(artifact, client)


_artifacts: dict[str, ServingArtifact] = {}


def _open_cached(uri: str, settings: Settings | None) -> ServingArtifact:
    art = _artifacts.get(uri)
    if art is None:
        art = _artifacts[uri] = ServingArtifact.open(uri, settings)
    return art
