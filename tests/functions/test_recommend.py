"""The recommend API on the real stack: fallback paths, filters, pages, feedback, bad input."""

from __future__ import annotations

import time
import uuid

import grpc
import httpx
import numpy as np
import pytest

from genrec.config import Settings
from genrec.stores.catalog_repo import CatalogRepo, Item
from genrec.stores.hot_state import HotState, Interaction
from genrec.stores.milvus import ItemVector, ItemVectorIndex
from genrec.stores.postgres import make_pool
from tests.helpers import read_topic

pytestmark = pytest.mark.stack

DIM = 384


@pytest.fixture(scope="module")
def catalogue(stack: Settings) -> dict:
    """20 items in two categories with orthogonal-ish embeddings and a popularity ranking."""
    tag = uuid.uuid4().hex[:6]
    rng = np.random.default_rng(7)
    basis = rng.normal(size=(2, DIM)).astype(np.float32)
    items, vectors = [], []
    for i in range(20):
        cat = f"Shop{tag}|{'Skin' if i % 2 == 0 else 'Hair'}"
        emb = basis[i % 2] + 0.3 * rng.normal(size=DIM).astype(np.float32)
        emb /= np.linalg.norm(emb)
        items.append(Item(f"{tag}-i{i:02d}", title=f"Item {i}", category_path=cat, embedding=emb,
                          semantic_ids=[i % 2, i, 0, 0]))
        vectors.append(ItemVector(f"{tag}-i{i:02d}", emb, (i % 2, i, 0), cat))
    pool = make_pool(stack)
    CatalogRepo(pool).upsert_many(items)
    pool.close()
    index = ItemVectorIndex(stack)
    index.ensure_collection()
    index.upsert(vectors)
    index.close()
    # global board: higher index = more popular
    HotState(stack).apply_interactions_once([
        Interaction("test", f"{tag}-pop-{k}", f"{tag}-seeder", it.item_id, weight=float(k + 1))
        for k, it in enumerate(items)])
    return {"tag": tag, "ids": [it.item_id for it in items]}


def _gen(stack: Settings, **body) -> httpx.Response:
    return httpx.post(stack.function_url("recommend") + "/api/v1/recommend/generate", json=body, timeout=30)


def test_cold_user_gets_popularity_in_order(stack: Settings, catalogue: dict) -> None:
    # Other shops' items fill the global top-50: a category's list comes from its own board.
    others = [f"{catalogue['tag']}-other-{k}" for k in range(60)]
    pool = make_pool(stack)
    CatalogRepo(pool).upsert_many([Item(i, title=i, category_path="Elsewhere") for i in others])
    pool.close()
    HotState(stack).apply_interactions_once([
        Interaction("test", f"{item}-pop", f"{catalogue['tag']}-seeder", item, categories=("Elsewhere",), weight=1000.0)
        for item in others])
    user = f"cold-{uuid.uuid4().hex}"
    resp = _gen(stack, user_id=user, count=5, filters={"category": f"Shop{catalogue['tag']}"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["served_by"] == "popularity"
    assert [i["item_id"] for i in body["items"]] == [catalogue["ids"][k] for k in (19, 18, 17, 16, 15)]
    assert all(i["reason"] and i["title"] for i in body["items"])
    # That category's list is not served again to the same user asking without a filter.
    unfiltered = _gen(stack, user_id=user, count=5).json()
    assert unfiltered["served_by"] == "popularity"
    assert len(unfiltered["items"]) == 5 and {i["item_id"] for i in unfiltered["items"]} <= set(others)


def test_user_with_history_falls_back_to_vectors_when_no_model_serves(stack: Settings, catalogue: dict) -> None:
    user = f"hist-{uuid.uuid4().hex}"
    seen = catalogue["ids"][0:6:2]  # three "Skin" items
    HotState(stack).append_recent_items(user, seen)
    body = _gen(stack, user_id=user, count=5).json()
    assert body["served_by"] in ("vector", "model")
    got = [i["item_id"] for i in body["items"]]
    assert not set(got) & set(seen), "seen items are never recommended"
    if body["served_by"] == "vector":  # nearest to the Skin cluster are Skin items
        assert all(catalogue["ids"].index(g) % 2 == 0 for g in got if g in catalogue["ids"])


def test_pages_never_repeat_and_bad_tokens_are_refused(stack: Settings, catalogue: dict) -> None:
    base = stack.function_url("recommend") + "/api/v1/recommend/popular"
    params = {"category": f"Shop{catalogue['tag']}", "count": 6}
    first = httpx.get(base, params=params).json()
    second = httpx.get(base, params={**params, "page_token": first["next_page_token"]}).json()
    third = httpx.get(base, params={**params, "page_token": second["next_page_token"]}).json()
    ids = [i["item_id"] for page in (first, second, third) for i in page["items"]]
    assert len(ids) == len(set(ids)) == 18
    bad = httpx.get(base, params={**params, "page_token": "nope"})
    assert bad.status_code == 400 and bad.json()["field"] == "page_token"


def test_exclude_and_attribute_filters_apply(stack: Settings, catalogue: dict) -> None:
    excluded = catalogue["ids"][19]
    body = _gen(stack, user_id=f"cold-{uuid.uuid4().hex}", count=3, exclude=[excluded],
                filters={"category": f"Shop{catalogue['tag']}|Hair"}).json()
    got = [i["item_id"] for i in body["items"]]
    assert excluded not in got and len(got) == 3
    assert all(i["category_path"].endswith("Hair") for i in body["items"])


def test_similar_items_and_unknown_item(stack: Settings, catalogue: dict) -> None:
    url = stack.function_url("recommend") + "/api/v1/recommend/item/{}/similar"
    body = httpx.get(url.format(catalogue["ids"][0]), params={"count": 4}).json()
    got = [i["item_id"] for i in body["items"]]
    assert catalogue["ids"][0] not in got and len(got) == 4
    assert all(catalogue["ids"].index(g) % 2 == 0 for g in got)
    missing = httpx.get(url.format("no-such-item"))
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


@pytest.mark.parametrize(("body", "field"), [
    ({"user_id": "u", "count": 51}, "count"),
    ({"user_id": "", "count": 5}, "user_id"),
    ({"count": 5}, "user_id"),
    ({"user_id": "u", "filters": {"colour": "red"}}, "filters.colour"),
])
def test_bad_requests_name_the_field(stack: Settings, body: dict, field: str) -> None:
    resp = _gen(stack, **body)
    assert resp.status_code == 422 and resp.json()["field"] == field


def test_feedback_becomes_an_interaction_and_served_lists_are_logged(stack: Settings, catalogue: dict) -> None:
    user = f"fb-{uuid.uuid4().hex}"
    served = _gen(stack, user_id=user, count=3).json()
    item = served["items"][0]["item_id"]
    resp = httpx.post(stack.function_url("recommend") + "/api/v1/recommend/feedback",
                      json={"user_id": user, "item_id": item, "feedback": "like", "request_id": served["request_id"]})
    assert resp.status_code == 202
    events = read_topic(stack, stack.kafka.topic("user_events"), until=1, match=lambda ev: ev.partition_key == user)
    assert events[0].data.event_type == "like" and events[0].data.context["request_id"] == served["request_id"]
    logs = read_topic(stack, stack.kafka.topic("recommendation_logs"), until=1,
                      match=lambda ev: ev.data.request_id == served["request_id"])
    assert logs and logs[0].data.items == [i["item_id"] for i in served["items"]]
    # the like reaches feature-update through the bridge: the user's cache is dropped, history grows
    hot = HotState(stack)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and hot.recent_items(user) != [item]:
        time.sleep(0.2)
    assert hot.recent_items(user) == [item]
    after = _gen(stack, user_id=user, count=3).json()
    assert after["served_by"] != "cache" and item not in [i["item_id"] for i in after["items"]]


def test_a_list_cached_from_an_older_history_is_not_served(stack: Settings, catalogue: dict) -> None:
    # The race this guards: recommend reads the history, an event lands and drops the cache,
    # then recommend writes the list it made from the old history. That list must not be
    # served for the new history (until its TTL it would hide the user's latest click).
    user = f"race-{uuid.uuid4().hex}"
    hot = HotState(stack)
    hot.append_recent_items(user, [catalogue["ids"][0]])
    first = _gen(stack, user_id=user, count=3).json()
    assert _gen(stack, user_id=user, count=3).json()["served_by"] == "cache"  # same history: reused
    clicked = first["items"][0]["item_id"]
    hot.append_recent_items(user, [clicked])  # the new event, without dropping the cache
    after = _gen(stack, user_id=user, count=3).json()
    assert after["served_by"] != "cache" and clicked not in [i["item_id"] for i in after["items"]]


def test_the_page_context_changes_the_list_and_a_cached_list_never_ignores_it(stack: Settings,
                                                                               catalogue: dict) -> None:
    # Popularity ranks the shop's items 19, 18, 17, ... (odd: Hair, even: Skin). A page about Skin
    # moves Skin items up by ln 4 in rank (genrec.recommend.context), one about Hair the Hair items.
    user, tag, ids = f"ctx-{uuid.uuid4().hex}", catalogue["tag"], catalogue["ids"]
    shop = {"category": f"Shop{tag}"}

    def listed(context: dict) -> list[str]:
        resp = _gen(stack, user_id=user, count=5, filters=shop, context=context)
        assert resp.status_code == 200, resp.text
        return [i["item_id"] for i in resp.json()["items"]]

    assert listed({}) == [ids[k] for k in (19, 18, 17, 16, 15)]
    # The second and third lists come from the user's cached ranking: the context still applies.
    assert listed({"page_category": f"Shop{tag}|Skin", "device": "mobile"}) == [ids[k] for k in (18, 19, 16, 14, 12)]
    assert listed({"page_category": f"Shop{tag}|Hair"}) == [ids[k] for k in (19, 17, 15, 13, 18)]
    assert listed({}) == [ids[k] for k in (19, 18, 17, 16, 15)]
    # The gRPC API reads the same context.
    from genrec.api.recommend.v1 import recommend_pb2 as pb
    from genrec.api.recommend.v1 import recommend_pb2_grpc as pb_grpc

    with grpc.insecure_channel(f"{stack.stack.host}:{stack.stack.port('recommend_grpc')}") as channel:
        got = pb_grpc.RecommendServiceStub(channel).Generate(pb.GenerateRequest(
            user_id=user, count=5, filters=pb.Filters(category=f"Shop{tag}"),
            context_features={"page_category": f"Shop{tag}|Hair", "hour": "21"}), timeout=30)
    assert [i.item_id for i in got.items] == [ids[k] for k in (19, 17, 15, 13, 18)]
    bad = _gen(stack, user_id=user, context={"device": "fridge"})
    assert bad.status_code == 422 and bad.json()["field"] == "context.device"
