"""Item vectors in Milvus: the cold-start and fallback retriever.

One collection (``settings.milvus.collection``): item_id primary key, the embedding, the
first ``SID_LEVELS`` codes of the item's Semantic ID (``coarse_levels``), category (plus its
ancestor levels, for sub-tree filters) and status as scalar fields for filtered search. HNSW
with COSINE, which Milvus Lite and a Milvus cluster both build.

Filters are Milvus boolean expressions. Milvus Lite has no filter templating, and
pymilvus' own ``get(ids=...)``/``delete(ids=...)`` quote ids unsafely, so every string
reaches an expression only through ``_lit``, which escapes it for the expression grammar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException

from genrec.config import Settings, get_settings
from genrec.stores.categories import category_levels

# Coarse Semantic-ID levels kept with each vector, for filters: a fixed schema, whatever the
# tokenizer's level count (shorter IDs are padded with -1).
SID_LEVELS = 3
ID_MAX_LEN = 512
CATEGORY_MAX_LEN = 1024
CATEGORY_MAX_DEPTH = 16
# Milvus Lite's expression lexer accepts exactly these escapes; other characters go in raw.
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


@dataclass(frozen=True)
class ItemVector:
    item_id: str
    embedding: np.ndarray
    semantic_ids: tuple[int, ...] = (-1,) * SID_LEVELS  # coarse_levels(codes); -1: not assigned yet
    category: str = ""
    status: str = "active"


@dataclass(frozen=True)
class VectorHit:
    item_id: str
    score: float  # cosine similarity
    category: str
    status: str
    semantic_ids: tuple[int, ...]


def coarse_levels(codes: Sequence[int] | None) -> tuple[int, ...]:
    """The first SID_LEVELS codes of a Semantic ID, -1 where it has fewer (or none yet)."""
    return tuple((list(codes or []) + [-1] * SID_LEVELS)[:SID_LEVELS])


def _lit(value: str) -> str:
    """A Milvus string literal for any Python string."""
    return '"' + str(value).translate(_ESCAPES) + '"'


def _in_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(_lit(v) for v in values) + "]"


def search_filter(*, category: str | None = None, status: str | None = "active",
                  exclude: Sequence[str] = ()) -> str:
    """The filter expression for a search: the category and its sub-categories, a status, not these ids."""
    parts = []
    if category:
        # exact match on an ancestor level: no LIKE, so no wildcard escaping to get wrong
        parts.append(f"array_contains(category_levels, {_lit(category)})")
    if status:
        parts.append(f"status == {_lit(status)}")
    if exclude:
        parts.append(f"item_id not in {_in_list(exclude)}")
    return " and ".join(parts)


# pymilvus pings every 10 s even when idle; a gRPC Python server (Milvus Lite) allows one ping
# per 5 minutes by default and drops the connection with "too many pings" after two. Pinging
# less often than that keeps long-lived clients (the functions) connected.
_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 330_000, "grpc.keepalive_timeout_ms": 20_000}


# Milvus answers a read of a released collection with this code. A restarted server comes back
# with its collections released; ``ensure_collection`` loads them once per process, so a read
# that meets a released collection loads it again and retries once.
COLLECTION_NOT_LOADED = 101
T = TypeVar("T")


def milvus_client(s: Settings | None = None, *, token: str = "", timeout: float = 10) -> MilvusClient:
    s = s or get_settings()
    return MilvusClient(uri=s.milvus.uri, token=token, timeout=timeout, grpc_options=_GRPC_OPTIONS)


class ItemVectorIndex:
    """``ensure_collection()`` once per process (idempotent; loads the collection for search)."""

    def __init__(self, s: Settings | None = None, *, client: MilvusClient | None = None,
                 collection: str | None = None, dim: int | None = None) -> None:
        self.s = s or get_settings()
        token = self.s.milvus.token.get_secret_value() if self.s.milvus.token else ""
        self.client = client or milvus_client(self.s, token=token)
        self.collection = collection or self.s.milvus.collection
        self.dim = dim or self.s.postgres.embedding_dim

    def close(self) -> None:
        self.client.close()

    def ensure_collection(self) -> None:
        """Create the collection and HNSW index if missing, then load it (needed after a restart)."""
        if not self.client.has_collection(self.collection):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("item_id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX_LEN)
            schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=self.dim)
            for level in range(SID_LEVELS):
                schema.add_field(f"sid_{level}", DataType.INT64)
            schema.add_field("category", DataType.VARCHAR, max_length=CATEGORY_MAX_LEN)
            schema.add_field("category_levels", DataType.ARRAY, element_type=DataType.VARCHAR,
                             max_capacity=CATEGORY_MAX_DEPTH, max_length=CATEGORY_MAX_LEN)
            schema.add_field("status", DataType.VARCHAR, max_length=32)
            index = self.client.prepare_index_params()
            index.add_index(field_name="embedding", index_type="HNSW", metric_type="COSINE",
                            params={"M": 16, "efConstruction": 200})
            self.client.create_collection(self.collection, schema=schema, index_params=index)
        self.load()

    def load(self) -> None:
        self.client.load_collection(self.collection)

    def _read(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except MilvusException as exc:
            if exc.code != COLLECTION_NOT_LOADED:
                raise
            self.load()
            return call()

    def drop(self) -> None:
        self.client.drop_collection(self.collection)

    def upsert(self, items: Iterable[ItemVector], batch_size: int = 1000) -> int:
        rows = [self._row(it) for it in items]
        for start in range(0, len(rows), batch_size):
            self.client.upsert(self.collection, rows[start:start + batch_size])
        return len(rows)

    def _row(self, it: ItemVector) -> dict:
        emb = np.asarray(it.embedding, dtype=np.float32).reshape(-1)
        if emb.shape[0] != self.dim:
            raise ValueError(f"{it.item_id!r}: embedding has dim {emb.shape[0]}, collection wants {self.dim}")
        sids = [int(x) for x in it.semantic_ids]
        if len(sids) != SID_LEVELS:
            raise ValueError(f"{it.item_id!r}: need {SID_LEVELS} semantic-ID levels, got {sids}")
        row = {"item_id": it.item_id, "embedding": emb.tolist(), "category": it.category,
               "category_levels": category_levels(it.category), "status": it.status}
        row.update({f"sid_{level}": sid for level, sid in enumerate(sids)})
        return row

    def delete(self, item_ids: Sequence[str]) -> None:
        if item_ids:
            self.client.delete(self.collection, filter=f"item_id in {_in_list(item_ids)}")

    def get(self, item_ids: Sequence[str]) -> list[ItemVector]:
        if not item_ids:
            return []
        rows = self._read(lambda: self.client.query(
            self.collection, filter=f"item_id in {_in_list(item_ids)}",
            output_fields=["item_id", "embedding", "category", "status", *(f"sid_{i}" for i in range(SID_LEVELS))]))
        by_id = {r["item_id"]: r for r in rows}
        return [
            ItemVector(i, np.asarray(by_id[i]["embedding"], dtype=np.float32),
                       tuple(int(by_id[i][f"sid_{lvl}"]) for lvl in range(SID_LEVELS)),
                       by_id[i]["category"], by_id[i]["status"])
            for i in item_ids if i in by_id
        ]

    def count(self) -> int:
        rows = self._read(lambda: self.client.query(self.collection, filter="", output_fields=["count(*)"]))
        return int(rows[0]["count(*)"])

    def search(self, vector: np.ndarray, k: int = 10, *, category: str | None = None,
               status: str | None = "active", exclude: Sequence[str] = (), ef: int | None = None,
               ) -> list[VectorHit]:
        """Top-k by cosine similarity among items passing the filters, best first."""
        return self.search_many(np.asarray(vector, dtype=np.float32)[None, :], k, category=category,
                                status=status, exclude=exclude, ef=ef)[0]

    def search_many(self, vectors: np.ndarray, k: int = 10, *, category: str | None = None,
                    status: str | None = "active", exclude: Sequence[str] = (), ef: int | None = None,
                    ) -> list[list[VectorHit]]:
        result = self._read(lambda: self.client.search(
            self.collection, data=np.asarray(vectors, dtype=np.float32).tolist(), limit=k,
            filter=search_filter(category=category, status=status, exclude=exclude),
            output_fields=["category", "status", *(f"sid_{i}" for i in range(SID_LEVELS))],
            search_params={"metric_type": "COSINE", "params": {"ef": ef or max(64, 2 * k)}},
        ))
        return [
            [VectorHit(h["item_id"], float(h["distance"]), h["entity"]["category"], h["entity"]["status"],
                       tuple(int(h["entity"][f"sid_{i}"]) for i in range(SID_LEVELS)))
             for h in hits]
            for hits in result
        ]
