"""cold-start-embedding on the real stack: a new item becomes generatable within seconds, a
delivered batch is handled at once, and the batch's delivery contract holds."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from genrec.apps.cold_start import items_frame, stored_vectors, upserted_items
from genrec.config import Settings
from genrec.embeddings.text import item_texts
from genrec.events.codec import BATCH_CONTENT_TYPE, new_event, to_http_binary
from genrec.events.contracts import ITEM_ENRICHED, ITEM_UPSERTED, USER_UPSERTED, ItemUpsertedData
from genrec.stores.catalog_repo import CatalogRepo, Item
from genrec.stores.postgres import make_pool
from genrec.stores.users_repo import UserRepo
from tests.helpers import read_topic, train_and_promote, wait_for


def _post(s: Settings, ev) -> None:
    headers, body = to_http_binary(ev)
    resp = httpx.post(s.function_url("event_capture") + "/api/v1/events", headers=headers, content=body)
    assert resp.status_code == 202, resp.text


def _event(event_type: str, data: dict) -> dict:
    return {"specversion": "1.0", "id": uuid.uuid4().hex, "source": "cold-start-test", "type": event_type,
            "data": data}


def _deliver(s: Settings, events: list[dict], url: str | None = None) -> httpx.Response:
    """POST a CloudEvents batch straight to the function, as the bridge delivers a backlog."""
    return httpx.post(url or s.function_url("cold-start-embedding") + "/", content=json.dumps(events),
                      headers={"content-type": BATCH_CONTENT_TYPE}, timeout=120)


def _catalogue(tag: str, n: int, seed: int) -> list[dict]:
    """Item upserts with varied, realistic texts (identical ones would all share one code prefix)."""
    from genrec.data import SynthConfig, generate_synthetic

    rows = generate_synthetic(SynthConfig(n_items=n, n_users=10, seed=seed)).items.to_dict("records")
    return [_event(ITEM_UPSERTED, {"item_id": f"{tag}-{r['item_id']}", "title": r["title"],
                                   "description": r["description"], "category_path": r["categories"],
                                   "brand": r["brand"], "price": float(r["price"])}) for r in rows]


def test_a_run_of_upserts_leaves_each_item_as_applied_in_order() -> None:
    stored = {"A": Item("A", title="old", attributes={"tags": ["gift"], "brand": "Old"}, semantic_ids=[1, 2, 3])}
    items, active = upserted_items([
        ItemUpsertedData(item_id="A", title="new", attributes={"size": "M"}, status="inactive"),
        ItemUpsertedData(item_id="B", title="first", brand="Acme", attributes={"color": "red"}, status="inactive"),
        ItemUpsertedData(item_id="B", title="second", attributes={"size": "L"}, price=3.5),
        ItemUpsertedData(item_id="C", title="c", status="deleted"),
    ], stored)
    by_id = {it.item_id: it for it in items}
    assert [it.item_id for it in items] == ["A", "B", "C"]
    assert by_id["A"].title == "new" and by_id["A"].status == "inactive" and by_id["A"].semantic_ids == [1, 2, 3]
    assert by_id["A"].attributes == {"tags": ["gift"], "brand": "Old", "size": "M"}  # an enrichment's tags stay
    assert by_id["B"].title == "second" and by_id["B"].status == "active" and by_id["B"].semantic_ids is None
    assert by_id["B"].attributes == {"color": "red", "brand": "Acme", "size": "L", "price": 3.5}
    assert active == {"B"}  # upserted active at least once: it gets a code; A and C get none


def test_only_an_item_whose_text_is_unchanged_keeps_its_stored_vector() -> None:
    vector = np.ones(384, dtype=np.float32)
    stored = {"status": Item("status", title="Mug", attributes={"brand": "Acme", "price": 3.5}, embedding=vector),
              "renamed": Item("renamed", title="Mug", embedding=vector),
              "no-vector": Item("no-vector", title="Mug")}
    items, _ = upserted_items([
        ItemUpsertedData(item_id="status", title="Mug", brand="Acme", price=3.5, status="inactive",
                         attributes={"size": "M"}),  # outside the text
        ItemUpsertedData(item_id="renamed", title="Big mug"),
        ItemUpsertedData(item_id="no-vector", title="Mug"),
        ItemUpsertedData(item_id="new", title="Mug"),
    ], stored)
    kept = stored_vectors(items, item_texts(items_frame(items)), stored)
    assert kept[0] is vector and kept[1:] == [None, None, None]


@pytest.mark.stack
def test_new_item_is_generatable_within_seconds_of_its_upsert(stack: Settings, tmp_path: Path) -> None:
    from genrec.data import SynthConfig, generate_synthetic

    ds = generate_synthetic(SynthConfig(n_items=60, n_users=80, seed=3))
    train_and_promote(stack, ds, tmp_path / f"cold-{uuid.uuid4().hex[:6]}")

    new_id = f"NEW-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    _post(stack, new_event(ITEM_UPSERTED, {"item_id": new_id, "title": "Silk rose night serum",
                                           "category_path": "Beauty|Skin Care|Serum", "price": 24.0},
                           source="cold-start-test"))
    pool = make_pool(stack)
    catalog = CatalogRepo(pool)
    assert wait_for(lambda: (catalog.get(new_id) or None) is not None and catalog.get(new_id).semantic_ids, 60)
    item = catalog.get(new_id)
    pool.close()
    assert item.embedding is not None and len(item.semantic_ids) == 3  # 2 levels + disambiguation
    # A session holding every trained item excludes all of them: only items fed to the model
    # server's code table after training can be generated (the new one, and any other items
    # upserted meanwhile), so the new item comes back only if the table already has it.
    url = stack.function_url("recommend") + "/api/v1/recommend/session"
    trained = set(ds.items.item_id)
    body: dict = {}

    def generated() -> bool:
        nonlocal body
        body = httpx.post(url, json={"items": sorted(trained), "count": 50}, timeout=30).json()
        return new_id in [i["item_id"] for i in body.get("items", [])]

    assert wait_for(generated, 30), body
    assert body["served_by"] == "session"
    assert not trained & {i["item_id"] for i in body["items"]} and all(i["is_new"] for i in body["items"])
    assert time.monotonic() - started < 60


@pytest.mark.stack
def test_items_whose_code_prefix_is_full_are_stored_and_retrievable_without_a_semantic_id(
        stack: Settings, tmp_path: Path) -> None:
    """The production tokenizer gives one prefix at most `disambiguation_size` (64 in the test
    config) items; identical texts share a prefix, so some of these cannot get a unique code. They
    used to be refused (500, retried, then dead-lettered: the item lost)."""
    from genrec.data import SynthConfig, generate_synthetic

    train_and_promote(stack, generate_synthetic(SynthConfig(n_items=60, n_users=80, seed=4)),
                      tmp_path / f"full-{uuid.uuid4().hex[:6]}")
    tag = uuid.uuid4().hex[:8]
    ids = [f"TWIN-{tag}-{k}" for k in range(70)]
    twins = [_event(ITEM_UPSERTED, {"item_id": item_id, "title": "Identical twin lip balm",
                                    "category_path": "Beauty|Lips", "price": 5.0}) for item_id in ids]
    # One batch, as the bridge delivers a backlog: the items that fit get codes, in order; the
    # rest are stored without one, and none costs the others theirs.
    resp = _deliver(stack, twins)
    assert resp.status_code == 200, resp.text
    results = [r["semantic_ids"] for r in resp.json()["results"]]
    n = sum(1 for codes in results if codes)
    assert 0 < n < len(ids) and all(results[:n]) and not any(results[n:])
    pool = make_pool(stack)
    try:
        catalog = CatalogRepo(pool)
        assert wait_for(lambda: len(catalog.get_many(ids)) == len(ids), 120)
        items = catalog.get_many(ids)
    finally:
        pool.close()
    coded = [tuple(i.semantic_ids) for i in items if i.semantic_ids]
    assert all(i.embedding is not None for i in items)
    assert 0 < len(coded) < len(ids) and len(set(coded)) == len(coded)
    assert coded == [tuple(codes) for codes in results[:n]]
    from genrec.stores.milvus import ItemVectorIndex

    index = ItemVectorIndex(stack)
    try:
        assert len(index.get(ids)) == len(ids)  # every one retrievable by vector
    finally:
        index.close()


@pytest.mark.stack
def test_user_with_declared_interests_gets_a_vector(stack: Settings) -> None:
    user = f"cold-user-{uuid.uuid4().hex[:8]}"
    _post(stack, new_event(USER_UPSERTED, {"user_id": user, "interests": ["vegan skin care", "rose"]},
                           source="cold-start-test"))
    pool = make_pool(stack)
    users = UserRepo(pool)
    assert wait_for(lambda: (u := users.get(user)) is not None and u.embedding is not None, 60)
    got = users.get(user)
    pool.close()
    assert got.preferences["interests"] == ["vegan skin care", "rose"]
    assert abs(float((got.embedding ** 2).sum()) - 1.0) < 1e-3  # a unit vector, like item vectors


@pytest.mark.stack
def test_a_delivered_batch_is_stored_once_each_with_vectors_and_unique_semantic_ids(
        stack: Settings, tmp_path: Path) -> None:
    from genrec.data import SynthConfig, generate_synthetic
    from genrec.serving.feed import feed_for
    from genrec.stores.hot_state import redis_client
    from genrec.stores.milvus import ItemVectorIndex

    art = train_and_promote(stack, generate_synthetic(SynthConfig(n_items=60, n_users=80, seed=5)),
                            tmp_path / f"batch-{uuid.uuid4().hex[:6]}")
    tag = f"BATCH-{uuid.uuid4().hex[:8]}"
    batch = _catalogue(tag, 40, seed=6)
    ids = [ev["data"]["item_id"] for ev in batch]
    known, late, twice, inactive = ids[0], f"{tag}-late", ids[1], ids[2]
    # Before the batch: one item stored and enriched, and an enrichment that overtook its upsert.
    assert _deliver(stack, [batch[0]]).status_code == 200
    enrichments = [_event(ITEM_ENRICHED, {"item_id": known, "tags": ["gift"], "summary": "A gift."}),
                   _event(ITEM_ENRICHED, {"item_id": late, "tags": ["early"]})]
    resp = _deliver(stack, enrichments)
    assert [(r["applied"], r["embedded"]) for r in resp.json()["results"]] == [(True, True), (False, False)]
    # The same enrichment again: the item's text is what its stored vector was embedded from, so it is kept.
    resp = _deliver(stack, enrichments[:1])
    assert [(r["applied"], r["embedded"]) for r in resp.json()["results"]] == [(True, False)]
    pool = make_pool(stack)
    catalog = CatalogRepo(pool)
    known_codes = catalog.get(known).semantic_ids
    assert known_codes

    batch[0]["data"]["title"] += " (renamed)"
    batch[2]["data"]["status"] = "inactive"
    batch += [_event(ITEM_UPSERTED, {**batch[1]["data"], "attributes": {"size": "M"}}),
              _event(ITEM_UPSERTED, {"item_id": late, "title": "Late arrival hand cream", "category_path": "Beauty"})]
    resp = _deliver(stack, batch)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert resp.json()["processed"] == len(batch) == len(results)
    assert [r["item_id"] for r in results] == [ev["data"]["item_id"] for ev in batch]
    assert all(r["embedded"] for r in results)  # new items, and one renamed

    all_ids = [*ids, late]
    try:
        items = {it.item_id: it for it in catalog.get_many(all_ids)}
    finally:
        pool.close()
    assert sorted(items) == sorted(all_ids)  # once each
    assert all(abs(float((it.embedding ** 2).sum()) - 1.0) < 1e-3 for it in items.values())
    assert items[inactive].semantic_ids is None  # an inactive item gets no new code
    coded = {i: tuple(it.semantic_ids) for i, it in items.items() if i != inactive}
    assert all(len(c) == 3 for c in coded.values()) and len(set(coded.values())) == len(coded)
    assert items[known].semantic_ids == known_codes and items[known].title.endswith("(renamed)")
    assert items[known].attributes["tags"] == ["gift"]  # the enrichment stays
    assert items[twice].attributes["size"] == "M"
    assert {r["item_id"]: tuple(r["semantic_ids"] or ()) for r in results} == {i: coded.get(i, ()) for i in all_ids}

    r = redis_client(stack)
    feed = feed_for(art, r)
    assert dict(zip(coded, feed.codes_of_many(list(coded)), strict=True)) == coded  # generatable
    index = ItemVectorIndex(stack)
    try:
        vectors = {v.item_id: v for v in index.get(all_ids)}
    finally:
        index.close()
    assert sorted(vectors) == sorted(all_ids)
    assert all(vectors[i].semantic_ids == c for i, c in coded.items())

    # Redelivered whole (the contract after any failure): nothing changes, nothing is fed twice, and no text
    # is embedded again (each item's stored vector is of the same text).
    n_fed = feed.length()
    again = _deliver(stack, batch)
    assert again.status_code == 200
    assert again.json()["results"] == [{**r, "embedded": False} for r in results]
    assert feed.length() == n_fed


@pytest.mark.stack
def test_a_batch_with_an_item_a_store_refuses_is_refused_whole_and_only_that_item_is_dead_lettered(
        stack: Settings) -> None:
    """The contract of a batch: any failure fails it (422 here: the record can never be stored),
    the bridge re-sends it record by record, and only the bad record goes to the dead-letter topic."""
    tag = f"BAD-{uuid.uuid4().hex[:8]}"
    batch = _catalogue(tag, 9, seed=7)
    batch[4]["data"]["title"] = "Lip balm \u0000 with a NUL"  # valid JSON and contract; PostgreSQL text refuses it
    ids = [ev["data"]["item_id"] for ev in batch]
    resp = _deliver(stack, batch)
    assert resp.status_code == 422, resp.text
    assert resp.json() == {"error": "invalid_data", "field": "data",
                           "message": "PostgreSQL refused this record as invalid"}
    pool = make_pool(stack)
    try:
        assert CatalogRepo(pool).get_many(ids) == []  # nothing of the refused batch was stored
    finally:
        pool.close()

    batch = [{**ev, "id": uuid.uuid4().hex} for ev in batch]  # the same items from upstream, through Kafka
    resp = httpx.post(stack.function_url("event_capture") + "/api/v1/events", content=json.dumps(batch),
                      headers={"content-type": BATCH_CONTENT_TYPE})
    assert resp.status_code == 202, resp.text
    good = [i for k, i in enumerate(ids) if k != 4]
    from genrec.stores.milvus import ItemVectorIndex

    pool = make_pool(stack)
    index = ItemVectorIndex(stack)
    try:
        assert wait_for(lambda: len(CatalogRepo(pool).get_many(good)) == len(good), 120)  # Milvus is written next
        assert wait_for(lambda: len(index.get(good)) == len(good), 30)
        assert CatalogRepo(pool).get_many([ids[4]]) == [] and index.get([ids[4]]) == []
    finally:
        pool.close()
        index.close()
    dlq = read_topic(stack, stack.kafka.dead_letter_topic("item_events"), until=1, timeout_s=60,
                     match=lambda ev: ev.data.item_id.startswith(tag))
    assert [ev.id for ev in dlq] == [batch[4]["id"]]
