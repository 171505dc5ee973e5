"""cold-start-embedding on the real stack: a new item becomes generatable within seconds."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from genrec.config import Settings
from genrec.events.codec import new_event, to_http_binary
from genrec.events.contracts import ITEM_UPSERTED, USER_UPSERTED
from genrec.stores.catalog_repo import CatalogRepo
from genrec.stores.postgres import make_pool
from genrec.stores.users_repo import UserRepo
from tests.helpers import train_and_promote, wait_for

pytestmark = pytest.mark.stack


def _post(s: Settings, ev) -> None:
    headers, body = to_http_binary(ev)
    resp = httpx.post(s.function_url("event_capture") + "/api/v1/events", headers=headers, content=body)
    assert resp.status_code == 202, resp.text




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
    for item_id in ids:
        _post(stack, new_event(ITEM_UPSERTED, {"item_id": item_id, "title": "Identical twin lip balm",
                                               "category_path": "Beauty|Lips", "price": 5.0},
                               source="cold-start-test"))
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
    from genrec.stores.milvus import ItemVectorIndex

    index = ItemVectorIndex(stack)
    try:
        assert len(index.get(ids)) == len(ids)  # every one retrievable by vector
    finally:
        index.close()


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
