"""The item catalogue in PostgreSQL: upsert, lookup, keyset listing, cosine neighbours.

Embeddings are pgvector ``vector(dim)`` columns read and written as numpy arrays; the
neighbour query orders by the cosine distance operator so the HNSW index serves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from genrec.stores.categories import CATEGORY_SEP, category_levels
from genrec.stores.postgres import Db, transaction

__all__ = ["CatalogRepo", "Item", "ItemPage", "Neighbor", "category_levels"]
ITEM_STATUSES = ("active", "inactive", "deleted")

_COLUMNS = ("item_id", "title", "description", "category_path", "attributes", "embedding", "semantic_ids",
            "status")
_LIST_COLUMNS = ("item_id", "title", "description", "category_path", "attributes", "semantic_ids", "status",
                 "created_at", "updated_at")


@dataclass
class Item:
    item_id: str
    title: str = ""
    description: str = ""
    category_path: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    embedding: np.ndarray | None = None
    semantic_ids: list[int] | None = None
    status: str = "active"
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        # pgvector's loader returns its own Vector type; callers always get float32 numpy.
        if self.embedding is not None and not isinstance(self.embedding, np.ndarray):
            self.embedding = self.embedding.to_numpy()
        if self.embedding is not None:
            self.embedding = np.asarray(self.embedding, dtype=np.float32)


@dataclass(frozen=True)
class ItemPage:
    items: list[Item]
    next_cursor: str | None  # pass as ``after`` for the next page; None on the last page


@dataclass(frozen=True)
class Neighbor:
    item_id: str
    score: float  # cosine similarity, 1 - cosine distance


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _category_filter(category: str | None) -> tuple[str, list[Any]]:
    """The category itself and its descendants; wildcards in the name are literal."""
    if not category:
        return "TRUE", []
    return ("(category_path = %s OR category_path LIKE %s)",
            [category, _like_escape(category + CATEGORY_SEP) + "%"])


class CatalogRepo:
    def __init__(self, db: Db) -> None:
        self.db = db

    # -- writes ---------------------------------------------------------------------------
    def upsert(self, item: Item) -> int:
        return self.upsert_many([item])

    def upsert_many(self, items: Iterable[Item]) -> int:
        """Insert or update items in one COPY + one INSERT; returns rows inserted or changed.

        A ``None`` embedding or semantic_ids keeps the stored one, so metadata updates do not
        wipe vectors written by the embedding pipeline. The last duplicate of an id wins.
        """
        batch = list({it.item_id: it for it in items}.values())
        if not batch:
            return 0
        cols = ", ".join(_COLUMNS)
        with transaction(self.db) as conn:
            # A session-lifetime staging table: created once per pooled connection, emptied per call.
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS items_stage (LIKE items INCLUDING DEFAULTS)")
            conn.execute("TRUNCATE items_stage")
            with conn.cursor().copy(f"COPY items_stage ({cols}) FROM STDIN") as copy:
                for it in batch:
                    copy.write_row(self._row(it))
            cur = conn.execute(
                f"""
                INSERT INTO items ({cols}) SELECT {cols} FROM items_stage
                ON CONFLICT (item_id) DO UPDATE SET
                    title = EXCLUDED.title, description = EXCLUDED.description,
                    category_path = EXCLUDED.category_path, attributes = EXCLUDED.attributes,
                    embedding = COALESCE(EXCLUDED.embedding, items.embedding),
                    semantic_ids = COALESCE(EXCLUDED.semantic_ids, items.semantic_ids),
                    status = EXCLUDED.status
                -- skip no-op updates: no dead tuple, updated_at keeps meaning "last change"
                WHERE (items.title, items.description, items.category_path, items.attributes, items.status,
                       items.embedding, items.semantic_ids)
                      IS DISTINCT FROM
                      (EXCLUDED.title, EXCLUDED.description, EXCLUDED.category_path, EXCLUDED.attributes,
                       EXCLUDED.status, COALESCE(EXCLUDED.embedding, items.embedding),
                       COALESCE(EXCLUDED.semantic_ids, items.semantic_ids))
                """
            )
            return cur.rowcount

    @staticmethod
    def _row(it: Item) -> tuple[Any, ...]:
        if it.status not in ITEM_STATUSES:
            raise ValueError(f"item status must be one of {ITEM_STATUSES}, got {it.status!r}")
        emb = None if it.embedding is None else np.asarray(it.embedding, dtype=np.float32)
        sids = None if it.semantic_ids is None else [int(x) for x in it.semantic_ids]
        return (it.item_id, it.title, it.description, it.category_path, Jsonb(it.attributes), emb, sids,
                it.status)

    def set_embeddings(self, embeddings: Mapping[str, np.ndarray]) -> int:
        with transaction(self.db) as conn, conn.cursor() as cur:
            cur.executemany(
                "UPDATE items SET embedding = %s WHERE item_id = %s",
                [(np.asarray(v, dtype=np.float32), k) for k, v in embeddings.items()],
            )
            return cur.rowcount

    def set_semantic_ids(self, semantic_ids: Mapping[str, Sequence[int]]) -> int:
        with transaction(self.db) as conn, conn.cursor() as cur:
            cur.executemany(
                "UPDATE items SET semantic_ids = %s WHERE item_id = %s",
                [([int(x) for x in v], k) for k, v in semantic_ids.items()],
            )
            return cur.rowcount

    def set_status(self, item_id: str, status: str) -> bool:
        if status not in ITEM_STATUSES:
            raise ValueError(f"item status must be one of {ITEM_STATUSES}, got {status!r}")
        with transaction(self.db) as conn:
            cur = conn.execute("UPDATE items SET status = %s WHERE item_id = %s", (status, item_id))
            return cur.rowcount == 1

    # -- reads ----------------------------------------------------------------------------
    def get(self, item_id: str) -> Item | None:
        found = self.get_many([item_id])
        return found[0] if found else None

    def get_many(self, item_ids: Sequence[str], *, with_embedding: bool = True) -> list[Item]:
        """Items in the order asked for; unknown ids are skipped. ``with_embedding=False`` leaves
        ``embedding`` None: on the serving path, decoding 384 floats per item costs more than the query."""
        columns = _COLUMNS if with_embedding else _LIST_COLUMNS[:-2]
        with transaction(self.db) as conn, conn.cursor(row_factory=class_row(Item)) as cur:
            rows = cur.execute(
                f"SELECT {', '.join(columns)}, created_at, updated_at FROM items WHERE item_id = ANY(%s::text[])",
                (list(item_ids),),
            ).fetchall()
        by_id = {r.item_id: r for r in rows}
        return [by_id[i] for i in item_ids if i in by_id]

    def list(self, *, category: str | None = None, status: str | None = "active", after: str | None = None,
             limit: int = 100) -> ItemPage:
        """One page ordered by item_id; ``after`` is the previous page's ``next_cursor``."""
        cat_sql, cat_params = _category_filter(category)
        query = (
            f"SELECT {', '.join(_LIST_COLUMNS)} FROM items"
            f" WHERE {cat_sql} AND (%s::text IS NULL OR status = %s) AND (%s::text IS NULL OR item_id > %s)"
            " ORDER BY item_id LIMIT %s"
        )
        with transaction(self.db) as conn, conn.cursor(row_factory=class_row(Item)) as cur:
            rows = cur.execute(query, [*cat_params, status, status, after, after, limit]).fetchall()
        return ItemPage(rows, rows[-1].item_id if len(rows) == limit else None)

    def count(self, *, status: str | None = "active", category: str | None = None) -> int:
        cat_sql, cat_params = _category_filter(category)
        with transaction(self.db) as conn:
            return conn.execute(
                f"SELECT count(*) FROM items WHERE {cat_sql} AND (%s::text IS NULL OR status = %s)",
                [*cat_params, status, status],
            ).fetchone()[0]

    def nearest(self, vector: np.ndarray, k: int = 10, *, category: str | None = None,
                status: str | None = "active", exclude: Sequence[str] = (), ef_search: int | None = None,
                ) -> list[Neighbor]:
        """Top-k items by cosine similarity through the HNSW index (approximate, like any ANN).

        Filters are applied during the index scan (pgvector iterative scan), so a selective
        filter still returns k rows when k exist.
        """
        cat_sql, cat_params = _category_filter(category)
        q = np.asarray(vector, dtype=np.float32)
        with transaction(self.db) as conn:
            # set_config(..., true) is SET LOCAL: it ends with this transaction.
            conn.execute("SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan',"
                         " 'strict_order', true)", (str(ef_search or max(64, 2 * k)),))
            rows = conn.execute(
                f"""
                SELECT item_id, 1 - (embedding <=> %s) AS score FROM items
                WHERE embedding IS NOT NULL AND {cat_sql} AND (%s::text IS NULL OR status = %s)
                  AND item_id <> ALL(%s::text[])
                ORDER BY embedding <=> %s LIMIT %s
                """,
                [q, *cat_params, status, status, list(exclude), q, k],
            ).fetchall()
        return [Neighbor(r[0], float(r[1])) for r in rows]

    def similar_to(self, item_id: str, k: int = 10, **filters: Any) -> list[Neighbor]:
        """Neighbours of a catalogue item (admin "more like this"), excluding the item itself."""
        item = self.get(item_id)
        if item is None or item.embedding is None:
            return []
        exclude = [item_id, *filters.pop("exclude", ())]
        return self.nearest(item.embedding, k, exclude=exclude, **filters)
