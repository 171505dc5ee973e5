"""The admin API as deployed (the admin-api service of the session stack), on seeded data."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from genrec.apps.admin_auth import encode_jwt
from genrec.config import Settings
from tests.admin.seed import World, wait_for

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def viewer(admin_url: str, tokens: dict[str, str], world: World) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=admin_url, headers={"authorization": f"Bearer {tokens['viewer']}"}, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def operator(admin_url: str, tokens: dict[str, str], world: World) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=admin_url, headers={"authorization": f"Bearer {tokens['operator']}"}, timeout=30) as c:
        yield c


def _error(resp: httpx.Response, status: int, field: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "field", "message"} and body["field"] == field, body
    return body


# -- authentication and roles ------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/v1/overview", "/api/v1/items", "/api/v1/models", "/api/v1/metrics/live"])
def test_reads_need_a_token(admin_url: str, path: str) -> None:
    _error(httpx.get(admin_url + path), 401, "authorization")
    _error(httpx.get(admin_url + path, headers={"authorization": "Bearer wrong"}), 401, "authorization")


def test_jwt_roles_and_expiry(stack: Settings, admin_url: str) -> None:
    secret = stack.auth.jwt_secret.get_secret_value()
    op = encode_jwt({"sub": "ci-bot", "role": "operator", "exp": time.time() + 300}, secret)
    me = httpx.get(f"{admin_url}/api/v1/auth/me", headers={"authorization": f"Bearer {op}"}).json()
    assert me == {"name": "ci-bot", "role": "operator", "via": "jwt"}
    expired = encode_jwt({"sub": "old", "role": "operator", "exp": time.time() - 3600}, secret)
    body = _error(httpx.get(f"{admin_url}/api/v1/auth/me", headers={"authorization": f"Bearer {expired}"}), 401,
                  "authorization")
    assert "expired" in body["message"]
    forever = encode_jwt({"sub": "old", "role": "operator"}, secret)  # right secret, no exp
    body = _error(httpx.get(f"{admin_url}/api/v1/auth/me", headers={"authorization": f"Bearer {forever}"}), 401,
                  "authorization")
    assert "no expiry (exp)" in body["message"]
    forged = encode_jwt({"sub": "x", "role": "operator", "exp": time.time() + 300}, "not-the-secret")
    _error(httpx.get(f"{admin_url}/api/v1/auth/me", headers={"authorization": f"Bearer {forged}"}), 401,
           "authorization")


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/v1/items", {"item_id": "x", "title": "t"}),
    ("POST", "/api/v1/users/u1/interactions", {"item_id": "x"}),
    ("PUT", "/api/v1/models/v/traffic", {"weight": 0.1}),
    ("POST", "/api/v1/models/v/promote", None),
    ("POST", "/api/v1/models/rollback", None),
])
def test_viewers_cannot_change_anything(viewer: httpx.Client, method: str, path: str, body: dict | None) -> None:
    _error(viewer.request(method, path, json=body), 403, "authorization")


def test_me(viewer: httpx.Client, operator: httpx.Client) -> None:
    assert viewer.get("/api/v1/auth/me").json()["role"] == "viewer"
    assert operator.get("/api/v1/auth/me").json()["role"] == "operator"


# -- dashboard ---------------------------------------------------------------------------------
def test_overview(viewer: httpx.Client, world: World) -> None:
    o = viewer.get("/api/v1/overview").json()
    assert o["items"] >= len(world.item_ids) and o["items_with_embedding"] >= len(world.item_ids)
    assert o["active_users_30d"] >= len(world.user_ids)
    assert o["production"] is not None and abs(sum(o["traffic_split"].values()) - 1) < 1e-6
    assert o["services"] == {"event_capture": True, "feature_update": True, "cold_start_embedding": True,
                             "llm_enrichment": True, "recommend": True, "recommend_grpc": True,
                             "analytics_sink": True}


def test_pipeline_lag_per_subscription(viewer: httpx.Client, admin_url: str, world: World) -> None:
    from genrec.events.subscriptions import SUBSCRIPTIONS

    _error(httpx.get(admin_url + "/api/v1/pipeline/lag"), 401, "authorization")
    body = viewer.get("/api/v1/pipeline/lag").json()
    assert body["error"] is None, body
    rows = {(r["function"], r["topic"]): r for r in body["subscriptions"]}
    assert len(rows) == len(SUBSCRIPTIONS)
    fresh = rows[("feature-update", "user_events")]
    assert fresh["priority"] == "realtime" and fresh["group"] == "genrec-feature-update"
    assert rows[("analytics-sink", "user_events")]["priority"] == "bulk"
    # the seed's events are all applied and stored: nothing is waiting for those consumers
    assert all(isinstance(r["lag"], int) and r["lag"] >= 0 for r in rows.values())
    assert wait_for(lambda: next(r["lag"] for r in viewer.get("/api/v1/pipeline/lag").json()["subscriptions"]
                                 if r["function"] == "feature-update") == 0, 30, "feature-update to catch up")


def test_analytics_endpoints(viewer: httpx.Client) -> None:
    lat = viewer.get("/api/v1/analytics/latency", params={"hours": 2}).json()
    assert lat and set(lat[0]) == {"hour", "requests", "p50_ms", "p95_ms", "p99_ms"}
    ctr = viewer.get("/api/v1/analytics/ctr").json()
    assert ctr and {"algorithm_version", "impressions", "clicks", "ctr"} <= set(ctr[0])
    assert sum(r["clicks"] for r in ctr) >= 1  # the seed clicked served items
    cov = viewer.get("/api/v1/analytics/coverage").json()
    assert cov[0]["algorithm_version"] == "*" and 0 < cov[0]["coverage"] <= 1
    versions = viewer.get("/api/v1/analytics/versions").json()
    assert versions and {"requests", "p99_ms", "ctr", "coverage", "served_by"} <= set(versions[0])
    _error(viewer.get("/api/v1/analytics/latency", params={"hours": 0}), 422, "hours")
    _error(viewer.get("/api/v1/analytics/ctr", params={"window_s": "soon"}), 422, "window_s")


def test_live_metrics_snapshot_and_stream(viewer: httpx.Client, stack: Settings) -> None:
    snap = viewer.get("/api/v1/metrics/live").json()
    assert {"requests_per_s", "p50_ms", "p95_ms", "p99_ms", "fallback_share", "served_by", "source"} <= set(snap)
    assert snap["recommend_up"] and snap["analytics_up"]
    # traffic between two scrapes shows up as a Prometheus rate
    httpx.post(stack.function_url("recommend") + "/api/v1/recommend/generate", json={"user_id": "live-1"}, timeout=30)
    events = []
    with viewer.stream("GET", "/api/v1/metrics/stream", params={"interval": 1, "limit": 3}) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert len(events) == 3
    assert events[-1]["source"] == "prometheus" and events[-1]["requests_per_s"] is not None
    _error(viewer.get("/api/v1/metrics/stream", params={"interval": 0.01}), 422, "interval")
    _error(viewer.get("/api/v1/metrics/stream", params={"limit": 0}), 422, "limit")


# -- catalogue ---------------------------------------------------------------------------------
def test_item_search_filter_and_pages(viewer: httpx.Client, world: World) -> None:
    first = viewer.get("/api/v1/items", params={"limit": 50}).json()
    assert len(first["items"]) == 50 and first["next_cursor"] == first["items"][-1]["item_id"]
    second = viewer.get("/api/v1/items", params={"limit": 50, "cursor": first["next_cursor"]}).json()
    assert second["items"][0]["item_id"] > first["next_cursor"]
    top = world.categories[0]
    in_cat = viewer.get("/api/v1/items", params={"category": top, "limit": 200}).json()["items"]
    assert in_cat and all(i["category_path"].startswith(top + "|") for i in in_cat)
    item_id = world.item_ids[3]
    word = world.titles[item_id].split()[1]
    found = viewer.get("/api/v1/items", params={"q": word.lower(), "limit": 200}).json()["items"]
    assert item_id in [i["item_id"] for i in found] and all(
        word.lower() in (i["title"] + i["description"]).lower() for i in found)
    assert [i["item_id"] for i in viewer.get("/api/v1/items", params={"q": item_id}).json()["items"]] == [item_id]
    _error(viewer.get("/api/v1/items", params={"limit": 1000}), 422, "limit")
    _error(viewer.get("/api/v1/items", params={"status": "gone"}), 422, "status")


def test_categories_tree(viewer: httpx.Client, world: World) -> None:
    tree = viewer.get("/api/v1/categories").json()
    assert {n["name"] for n in tree} >= set(world.categories)
    assert all(n["count"] == sum(c["count"] for c in n["children"]) for n in tree)


def test_item_detail(viewer: httpx.Client, world: World) -> None:
    d = viewer.get(f"/api/v1/items/{world.item_ids[0]}").json()
    assert d["title"] == world.titles[world.item_ids[0]]
    assert d["embedding"]["dim"] == 384 and len(d["embedding"]["head"]) == 8
    assert len(d["semantic_ids"]) == 3
    assert len(d["neighbours"]) == 8 and all(n["title"] and -1 <= n["score"] <= 1 for n in d["neighbours"])
    assert world.item_ids[0] not in [n["item_id"] for n in d["neighbours"]]
    _error(viewer.get("/api/v1/items/no-such-item"), 404, "item_id")


def test_item_upsert_goes_through_event_capture(operator: httpx.Client, stack: Settings) -> None:
    from tests.helpers import read_topic

    item_id = f"admin-{uuid.uuid4().hex[:8]}"
    r = operator.post("/api/v1/items", json={"item_id": item_id, "title": "Admin Test Lamp", "price": 12.5,
                                             "category_path": "Home|Decor|Lamps"})
    assert r.status_code == 202, r.text
    event_id = r.json()["event_id"]
    found = read_topic(stack, stack.kafka.topic("item_events"), until=1, match=lambda ev: ev.id == event_id)
    assert found and found[0].data.title == "Admin Test Lamp" and found[0].source == "genrec-admin"
    _error(operator.post("/api/v1/items", json={"item_id": "x"}), 422, "title")
    _error(operator.post("/api/v1/items", json={"item_id": "x", "title": "t", "price": -1}), 422, "price")
    _error(operator.post("/api/v1/items", json={"item_id": "x", "title": "t", "colour": "red"}), 422, "colour")


# -- users ---------------------------------------------------------------------------------------
def test_user_list_detail_and_recommendations(viewer: httpx.Client, world: World) -> None:
    listed = {u["user_id"] for u in viewer.get("/api/v1/users", params={"limit": 500}).json()}
    assert set(world.user_ids) <= listed
    u = viewer.get(f"/api/v1/users/{world.user_ids[1]}").json()
    assert u["known"] and u["recent_events"] and u["sequence"]
    assert all(e["title"] for e in u["recent_events"] if e["item_id"] in world.titles)
    recs = viewer.get(f"/api/v1/users/{world.user_ids[1]}/recommendations", params={"count": 5}).json()
    assert recs["served_by"] in ("cache", "model", "vector", "popularity", "session")
    assert len(recs["items"]) == 5 and {"item_id", "score", "reason", "is_new", "title"} <= set(recs["items"][0])
    fresh = viewer.get(f"/api/v1/users/nobody-{uuid.uuid4().hex[:6]}").json()
    assert fresh["known"] is False and fresh["sequence"] == []
    _error(viewer.get(f"/api/v1/users/{world.user_ids[1]}/recommendations", params={"count": 99}), 422, "count")


def test_test_interaction_reaches_the_user(operator: httpx.Client, world: World) -> None:
    user = f"admin-test-{uuid.uuid4().hex[:6]}"
    r = operator.post(f"/api/v1/users/{user}/interactions", json={"item_id": world.item_ids[5], "event_type": "click"})
    assert r.status_code == 202, r.text
    wait_for(lambda: operator.get(f"/api/v1/users/{user}").json()["sequence"], 30, "the interaction in the sequence")
    detail = operator.get(f"/api/v1/users/{user}").json()
    assert detail["sequence"][-1]["item_id"] == world.item_ids[5]
    # the history is the bulk consumer's: it follows, niced, in big batches
    wait_for(lambda: operator.get(f"/api/v1/users/{user}").json()["recent_events"], 120, "the event in the history")
    detail = operator.get(f"/api/v1/users/{user}").json()
    assert detail["recent_events"][0]["event_id"] == r.json()["event_id"]
    _error(operator.post(f"/api/v1/users/{user}/interactions", json={"item_id": "x", "event_type": "poke"}), 422,
           "event_type")
    _error(operator.post(f"/api/v1/users/{user}/interactions", json={}), 422, "item_id")


# -- semantic IDs, embeddings --------------------------------------------------------------------------
def test_semantic_id_levels(viewer: httpx.Client, world: World) -> None:
    root = viewer.get("/api/v1/semantic-ids").json()
    assert root["level"] == 0 and root["depth"] == 3 and root["items"] >= len(world.item_ids)
    assert sum(c["count"] for c in root["codes"]) == root["items"]
    code = root["codes"][0]
    assert code["has_children"] and 1 <= len(code["sample_titles"]) <= 3
    child = viewer.get("/api/v1/semantic-ids", params={"prefix": str(code["code"]), "items": 5}).json()
    assert child["prefix"] == [code["code"]] and sum(c["count"] for c in child["codes"]) == code["count"]
    assert all(i["semantic_ids"][0] == code["code"] for i in child["items_sample"])
    _error(viewer.get("/api/v1/semantic-ids", params={"prefix": "1,x"}), 422, "prefix")


def test_embedding_projection(viewer: httpx.Client, world: World) -> None:
    p = viewer.get("/api/v1/embeddings/projection", params={"limit": 50}).json()
    assert p["method"] == "pca" and len(p["points"]) == 50 and p["total"] >= len(world.item_ids)
    assert len(p["explained_variance"]) == 3 and p["explained_variance"][0] > 0
    pt = p["points"][0]
    assert {"item_id", "title", "category", "first_code", "x", "y", "z"} <= set(pt)
    assert all(-1 <= q["x"] <= 1 and -1 <= q["z"] <= 1 for q in p["points"])
    _error(viewer.get("/api/v1/embeddings/projection", params={"limit": 3}), 422, "limit")


# -- models -----------------------------------------------------------------------------------------
def test_models_canary_promote_rollback(viewer: httpx.Client, operator: httpx.Client, world: World) -> None:
    a, b, c = world.versions
    listed = viewer.get("/api/v1/models").json()
    by = {v["version"]: v for v in listed["versions"]}
    assert by[a]["status"] == "production" and by[b]["status"] == "canary" and by[c]["status"] == "candidate"
    assert "recall@10" in by[a]["metrics"]

    r = operator.put(f"/api/v1/models/{b}/traffic", json={"weight": 0.25})
    assert r.status_code == 200 and r.json()["traffic_weight"] == 0.25
    r = operator.put(f"/api/v1/models/{c}/traffic", json={"weight": 0.05})  # a candidate becomes a canary
    assert r.json()["status"] == "canary"
    split = viewer.get("/api/v1/models").json()["traffic_split"]
    assert split[b] == 0.25 and split[c] == 0.05 and split[a] == pytest.approx(0.70)
    _error(operator.put(f"/api/v1/models/{b}/traffic", json={"weight": 0.99}), 409, "version")  # sums > 1
    _error(operator.put(f"/api/v1/models/{a}/traffic", json={"weight": 0.5}), 409, "version")  # production
    _error(operator.put(f"/api/v1/models/{b}/traffic", json={"weight": 1.5}), 422, "weight")
    _error(operator.put("/api/v1/models/no-such/traffic", json={"weight": 0.1}), 404, "version")
    _error(operator.put(f"/api/v1/models/{c}/status", json={"status": "production"}), 422, "status")

    assert operator.post(f"/api/v1/models/{b}/promote").json()["status"] == "production"
    assert viewer.get("/api/v1/overview").json()["production"] == b
    assert operator.post("/api/v1/models/rollback").json()["version"] == a
    assert operator.put(f"/api/v1/models/{c}/status", json={"status": "retired"}).json()["status"] == "retired"
    # leave the seeded layout for the browser tests: b a 10% canary, c a candidate
    operator.put(f"/api/v1/models/{b}/status", json={"status": "canary", "traffic_weight": 0.1}).raise_for_status()
    operator.put(f"/api/v1/models/{c}/status", json={"status": "candidate"}).raise_for_status()


# -- shopper demo and the served app --------------------------------------------------------------------
def test_shop_endpoints_are_public(admin_url: str, world: World) -> None:
    shopper = f"shop-{uuid.uuid4().hex[:6]}"
    recs = httpx.get(f"{admin_url}/api/v1/shop/recommendations", params={"user_id": shopper, "count": 4},
                     timeout=30).json()
    assert len(recs["items"]) == 4 and recs["request_id"]
    fb = httpx.post(f"{admin_url}/api/v1/shop/feedback", json={
        "user_id": shopper, "item_id": recs["items"][0]["item_id"], "feedback": "like",
        "request_id": recs["request_id"]}, timeout=30)
    assert fb.status_code == 202 and fb.json()["event_id"]
    _error(httpx.post(f"{admin_url}/api/v1/shop/feedback", json={"user_id": shopper, "item_id": "x",
                                                                  "feedback": "love"}), 422, "feedback")
    _error(httpx.get(f"{admin_url}/api/v1/shop/recommendations", params={"user_id": shopper, "count": 0}), 422,
           "count")


def test_serves_openapi_and_the_app(admin_url: str) -> None:
    spec = httpx.get(f"{admin_url}/openapi.json").json()
    assert {"/api/v1/items", "/api/v1/models/{version}/promote", "/api/v1/metrics/stream"} <= set(spec["paths"])
    home = httpx.get(f"{admin_url}/")
    assert home.status_code == 200 and "text/html" in home.headers["content-type"]
