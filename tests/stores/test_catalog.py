"""Catalogue repository on real PostgreSQL + pgvector."""

from __future__ import annotations

import numpy as np
import pytest
from psycopg_pool import ConnectionPool

from genrec.config import Settings
from genrec.stores.catalog_repo import CatalogRepo, Item
from genrec.stores.postgres import connect

pytestmark = pytest.mark.stack


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_upsert_get_round_trip_keeps_vectors_on_metadata_update(pool: ConnectionPool, uid: str,
                                                                  stack: Settings) -> None:
    repo = CatalogRepo(pool)
    emb = np.arange(stack.postgres.embedding_dim, dtype=np.float32) / 100
    item = Item(f"{uid}-a", title="Red shoe", category_path="fashion|shoes", attributes={"price": 9.5},
                embedding=emb, semantic_ids=[3, 14, 15])
    assert repo.upsert(item) == 1
    assert repo.upsert(item) == 0  # identical: no write at all
    got = repo.get(item.item_id)
    assert got is not None and got.title == "Red shoe" and got.attributes == {"price": 9.5}
    np.testing.assert_array_equal(got.embedding, emb)
    assert got.semantic_ids == [3, 14, 15] and got.status == "active"

    assert repo.upsert(Item(item.item_id, title="Blue shoe", category_path="fashion|shoes")) == 1
    again = repo.get(item.item_id)
    assert again.title == "Blue shoe"
    np.testing.assert_array_equal(again.embedding, emb)  # None means "keep"
    assert again.semantic_ids == [3, 14, 15]
    assert again.updated_at > got.updated_at and again.created_at == got.created_at  # the trigger


def test_bulk_upsert_list_pagination_and_category_filter(pool: ConnectionPool, uid: str) -> None:
    repo = CatalogRepo(pool)
    top = f"cat{uid}"
    items = [Item(f"{uid}-{i:03d}", title=f"t{i}", category_path=f"{top}|{'odd' if i % 2 else 'even'}",
                  status="inactive" if i % 10 == 0 else "active") for i in range(57)]
    items.append(Item(f"{uid}-x", category_path=f"{top}x|odd"))  # shares a prefix, not the category
    assert repo.upsert_many(items + items[:5]) == 58  # duplicates in a batch: last wins, no error

    seen, cursor = [], None
    while True:
        page = repo.list(category=top, status=None, after=cursor, limit=10)
        seen += [i.item_id for i in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(i.item_id for i in items[:57])

    odd_active = repo.list(category=f"{top}|odd", limit=100).items
    assert [i.item_id for i in odd_active] == [f"{uid}-{i:03d}" for i in range(57) if i % 2 and i % 10]
    assert repo.count(category=top, status="inactive") == 6
    assert repo.set_status(f"{uid}-001", "deleted") and repo.get(f"{uid}-001").status == "deleted"
    with pytest.raises(ValueError):
        repo.set_status(f"{uid}-001", "gone")


def test_like_wildcards_in_category_are_literal(pool: ConnectionPool, uid: str) -> None:
    repo = CatalogRepo(pool)
    repo.upsert_many([Item(f"{uid}-1", category_path=f"{uid}_%|a"), Item(f"{uid}-2", category_path=f"{uid}ab|a")])
    assert [i.item_id for i in repo.list(category=f"{uid}_%").items] == [f"{uid}-1"]


def test_nearest_matches_brute_force_and_uses_hnsw(stack: Settings, uid: str) -> None:
    dim, n, k = stack.postgres.embedding_dim, 300, 10
    rng = np.random.default_rng(7)
    vecs = _unit(rng, n, dim)
    cat = f"nn{uid}"
    ids = [f"{uid}-{i:04d}" for i in range(n)]
    with connect(stack, vector=True) as conn:
        repo = CatalogRepo(conn)
        repo.upsert_many(Item(ids[i], category_path=f"{cat}|{i % 3}", embedding=vecs[i]) for i in range(n))
        # At 300 rows the planner rightly prefers a sequential scan plus sort; at a few thousand it
        # picks HNSW by itself. Penalise the alternatives so this small test exercises the index.
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_sort = off")
        conn.commit()
        before = _hnsw_scans(conn)
        for query in _unit(rng, 5, dim):
            truth = np.argsort(-(vecs @ query), kind="stable")[:k]
            got = repo.nearest(query, k, category=cat, ef_search=1000)
            assert [g.item_id for g in got] == [ids[i] for i in truth]
            np.testing.assert_allclose([g.score for g in got], (vecs @ query)[truth], atol=1e-5)

            in_sub = [i for i in np.argsort(-(vecs @ query), kind="stable") if i % 3 == 1][:k + 1]
            got_sub = repo.nearest(query, k, category=f"{cat}|1", exclude=[ids[in_sub[0]]], ef_search=1000)
            assert [g.item_id for g in got_sub] == [ids[i] for i in in_sub[1:k + 1]]
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.commit()
        assert _hnsw_scans(conn) > before, "nearest() did not scan the HNSW index"

        similar = repo.similar_to(ids[0], 3, category=cat, ef_search=1000)
        assert ids[0] not in [s.item_id for s in similar] and len(similar) == 3


def _hnsw_scans(conn) -> int:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return conn.execute(
        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'items_embedding_hnsw_idx'"
    ).fetchone()[0]


@pytest.mark.parametrize("evil", [
    "x'); DROP TABLE items;--",
    "'; DELETE FROM items WHERE '1'='1",
    'a"b\\c%_\n\t$1 %s {db}',
])
def test_sql_injection_through_ids_is_inert(pool: ConnectionPool, uid: str, evil: str) -> None:
    repo = CatalogRepo(pool)
    before = repo.count(status=None)
    item_id = evil + uid
    repo.upsert(Item(item_id, title=evil, category_path=evil))
    got = repo.get(item_id)
    assert got is not None and got.item_id == item_id and got.title == evil and got.category_path == evil
    assert [i.item_id for i in repo.list(category=evil, status=None).items] == [item_id]
    assert repo.count(status=None) == before + 1  # nothing dropped or deleted
    assert repo.get(evil) is None
