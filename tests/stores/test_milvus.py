"""Item vectors in the real Milvus Lite server: insert, search, filters, delete, reopen."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from genrec.config import Settings
from genrec.stores.milvus import ItemVector, ItemVectorIndex, search_filter

pytestmark = pytest.mark.stack
DIM = 32  # a small collection of its own; the production one uses settings.postgres.embedding_dim


@pytest.fixture
def index(stack: Settings, uid: str) -> Iterator[ItemVectorIndex]:
    idx = ItemVectorIndex(stack, collection=f"items_{uid}", dim=DIM)
    idx.ensure_collection()
    yield idx
    idx.drop()
    idx.close()


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_search_matches_brute_force_with_filters(index: ItemVectorIndex) -> None:
    rng = np.random.default_rng(3)
    n = 300
    vecs = _unit(rng, n)
    cats = [f"top{i % 2}|mid{i % 3}" for i in range(n)]
    status = ["inactive" if i % 7 == 0 else "active" for i in range(n)]
    assert index.upsert(ItemVector(f"i{i}", vecs[i], (i % 5, i % 11, i), cats[i], status[i]) for i in range(n)) == n
    assert index.count() == n
    index.ensure_collection()  # idempotent
    assert index.count() == n

    q = _unit(rng, 1)[0]
    sims = vecs @ q
    order = np.argsort(-sims, kind="stable")

    hits = index.search(q, 10, status=None, ef=512)
    assert [h.item_id for h in hits] == [f"i{i}" for i in order[:10]]
    np.testing.assert_allclose([h.score for h in hits], sims[order[:10]], atol=1e-4)
    assert hits[0].semantic_ids == (order[0] % 5, order[0] % 11, order[0])

    exclude = [f"i{order[0]}", f"i{order[1]}"]
    want = [i for i in order if cats[i].startswith("top1|") and status[i] == "active"
            and f"i{i}" not in exclude][:5]
    hits = index.search(q, 5, category="top1", exclude=exclude, ef=512)
    assert [h.item_id for h in hits] == [f"i{i}" for i in want]
    assert all(h.category.startswith("top1|") and h.status == "active" for h in hits)

    leaf = [i for i in order if cats[i] == "top0|mid2" and status[i] == "active"][:3]
    assert [h.item_id for h in index.search(q, 3, category="top0|mid2", ef=512)] == [f"i{i}" for i in leaf]


def test_upsert_replaces_and_delete_removes(index: ItemVectorIndex) -> None:
    rng = np.random.default_rng(4)
    a, b = _unit(rng, 2)
    index.upsert([ItemVector("x", a, (1, 2, 3), "c|d")])
    index.upsert([ItemVector("x", b, (4, 5, 6), "e", status="inactive")])
    (got,) = index.get(["x"])
    assert got.semantic_ids == (4, 5, 6) and got.category == "e" and got.status == "inactive"
    np.testing.assert_allclose(got.embedding, b, atol=1e-6)
    assert index.count() == 1
    index.delete(["x", "never-existed"])
    assert index.get(["x"]) == [] and index.count() == 0
    assert index.search(b, 5, status=None) == []


def test_reopen_loads_and_searches(stack: Settings, index: ItemVectorIndex) -> None:
    rng = np.random.default_rng(5)
    vecs = _unit(rng, 20)
    index.upsert(ItemVector(f"r{i}", vecs[i]) for i in range(20))
    index.client.release_collection(index.collection)  # as after a server or process restart
    reopened = ItemVectorIndex(stack, collection=index.collection, dim=DIM)
    try:
        reopened.ensure_collection()
        assert reopened.search(vecs[7], 1)[0].item_id == "r7"
    finally:
        reopened.close()


HOSTILE = ['x") or item_id != ("', "a\\", 'q"\\"', "line\nbreak\ttab\r", "ünï€😀",
           "x'); DROP TABLE items;--", "a|b%_"]


def test_hostile_ids_and_categories_are_matched_literally(index: ItemVectorIndex) -> None:
    rng = np.random.default_rng(6)
    index.upsert([ItemVector("other", _unit(rng, 1)[0], category="plain")])
    for evil in HOSTILE:
        v = _unit(rng, 1)[0]
        index.upsert([ItemVector(evil, v, category=evil)])
        assert [i.item_id for i in index.get([evil])] == [evil], evil
        assert [h.item_id for h in index.search(v, 5, category=evil)] == [evil], evil
        assert [h.item_id for h in index.search(v, 5, exclude=[evil])] == ["other"], evil
        index.delete([evil])
        assert index.get([evil]) == [] and index.count() == 1, evil


def test_filter_expression_shape() -> None:
    assert search_filter() == 'status == "active"'
    assert search_filter(category='a"b', status=None, exclude=["x\\y"]) == (
        'array_contains(category_levels, "a\\"b") and item_id not in ["x\\\\y"]')


def test_vector_rows_keep_the_coarse_levels_of_a_semantic_id_of_any_length() -> None:
    from genrec.stores.milvus import coarse_levels

    assert coarse_levels([4, 7, 1, 9]) == (4, 7, 1)  # a 3-level ID plus its disambiguation code
    assert coarse_levels([4, 7]) == (4, 7, -1)  # a tokenizer with two levels
    assert coarse_levels(None) == (-1, -1, -1)  # not assigned yet
