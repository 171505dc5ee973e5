"""Abuse limits over real HTTP: rate limits that made-up credentials cannot dodge, on every
public app (recommend, event capture, the admin API and its shop endpoints); the body limit
on streamed (chunked) bodies of every app; bounded request collections; who may write feedback.

The session stack's functions run with the default rates; the rate tests start the same apps
with low rates (real uvicorn servers on free ports, against the stack's stores) and tell
clients apart by their loopback source address (127.0.0.x)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest
from pydantic import SecretStr

from genrec.apps.admin import create_app as admin_app
from genrec.apps.admin.shop import SHOP_SOURCE
from genrec.apps.bodylimit import MAX_BODY_BYTES
from genrec.apps.event_capture import create_app as capture_app
from genrec.apps.recommend import create_app as recommend_app
from genrec.config import Settings
from genrec.events.contracts import INTERACTION
from genrec.stores.events_repo import EventRepo
from genrec.stores.hot_state import HotState
from genrec.stores.postgres import make_pool
from tests.helpers import ThreadedServer, read_topic, wait_for

pytestmark = pytest.mark.stack

INGEST_KEY = "abuse-test-ingest-key"
ANONYMOUS_RATE = 2.0  # per second, bursts of 4


@pytest.fixture(scope="module")
def limited(stack: Settings) -> Iterator[dict[str, str]]:
    """recommend, event capture and the admin API with a low anonymous rate and an ingest key: name -> URL."""
    s = stack.model_copy(deep=True)
    s.auth = s.auth.model_copy(update={"anonymous_rate_limit_per_s": ANONYMOUS_RATE, "rate_limit_per_s": 100.0,
                                       "ingest_api_keys": {"shop": SecretStr(INGEST_KEY)}})
    with (ThreadedServer(recommend_app(s)) as rec, ThreadedServer(capture_app(s)) as cap,
          ThreadedServer(admin_app(s)) as adm):
        yield {"recommend": rec.url, "event_capture": cap.url, "admin": adm.url}


def _from(address: str) -> httpx.Client:
    """A client whose requests come from ``address`` (any 127.0.0.x reaches a loopback server)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def _made_up() -> dict[str, str]:
    """A fresh credential and forwarded address per request: what a limiter keyed on them would never stop."""
    return {"authorization": f"Bearer {uuid.uuid4().hex}", "x-api-key": uuid.uuid4().hex,
            "x-forwarded-for": f"198.51.100.{uuid.uuid4().int % 250}"}


def _assert_rate_limited(resp: httpx.Response) -> None:
    assert resp.status_code == 429, resp.text
    assert resp.json()["error"] == "rate_limited" and int(resp.headers["retry-after"]) >= 1


@pytest.mark.parametrize(("app", "method", "path", "address"), [
    ("recommend", "GET", "/api/v1/recommend/popular", "127.0.0.2"),
    ("event_capture", "POST", "/api/v1/events", "127.0.0.3"),
    ("admin", "GET", "/api/v1/overview", "127.0.0.4"),
    ("admin", "GET", "/api/v1/shop/recommendations?user_id=flooder", "127.0.0.5"),
    ("admin", "POST", "/api/v1/shop/feedback", "127.0.0.6"),
])
def test_a_made_up_credential_per_request_does_not_escape_the_limit(limited: dict[str, str], app: str, method: str,
                                                                     path: str, address: str) -> None:
    with _from(address) as client:
        answers = [client.request(method, limited[app] + path, headers=_made_up(), json={}) for _ in range(12)]
    refused = [r for r in answers if r.status_code == 429]
    assert len(refused) >= 6, [r.status_code for r in answers]  # 4 in the burst, ~2/s after
    _assert_rate_limited(refused[0])


def test_an_anonymous_flood_does_not_starve_other_clients(limited: dict[str, str], stack: Settings) -> None:
    url = limited["recommend"] + "/api/v1/recommend/popular"
    with _from("127.0.0.7") as flooder:
        answers = [flooder.get(url) for _ in range(12)]
        _assert_rate_limited(answers[-1])
        # The same address with a key that verifies is its own client, at the authenticated rate.
        assert [flooder.get(url, headers={"x-api-key": INGEST_KEY}).status_code for _ in range(10)] == [200] * 10
        again = [flooder.get(url).status_code for _ in range(6)]  # while the anonymous flood stays limited
        assert again.count(429) >= 3, again
    with _from("127.0.0.8") as neighbour:
        assert neighbour.get(url).status_code == 200
    admin = next(s.get_secret_value() for s in stack.auth.admin_tokens.values())
    with _from("127.0.0.7") as operator:
        resp = operator.get(limited["admin"] + "/api/v1/auth/me", headers={"authorization": f"Bearer {admin}"})
        assert resp.status_code == 200, resp.text


def test_health_and_metrics_are_never_limited(limited: dict[str, str]) -> None:
    with _from("127.0.0.9") as client:
        assert {client.get(limited["recommend"] + path).status_code
                for path in ("/healthz", "/metrics") * 10} == {200}


# -- feedback: who may write a user's history ------------------------------------------------------
def test_recommend_feedback_needs_the_ingest_key_once_keys_are_configured(limited: dict[str, str]) -> None:
    url = limited["recommend"] + "/api/v1/recommend/feedback"
    body = {"user_id": f"fb-{uuid.uuid4().hex[:8]}", "item_id": "i-1", "feedback": "like"}
    with _from("127.0.0.10") as client:
        for headers in ({}, {"x-api-key": "wrong"}):
            resp = client.post(url, json=body, headers=headers)
            assert resp.status_code == 401 and resp.json()["field"] == "authorization", resp.text
        assert client.post(url, json=body, headers={"authorization": f"Bearer {INGEST_KEY}"}).status_code == 202


def test_shop_feedback_is_an_untrusted_signal_limited_per_shopper(stack: Settings, tmp_path) -> None:
    from genrec.pipelines.sources import export_postgres

    shopper, item = f"shop-{uuid.uuid4().hex[:8]}", f"item-{uuid.uuid4().hex[:6]}"
    url = stack.function_url("admin_api") + "/api/v1/shop/feedback"
    answers = [httpx.post(url, json={"user_id": shopper, "item_id": item, "feedback": "like"}, timeout=30)
               for _ in range(12)]
    assert [r.status_code for r in answers[:10]] == [202] * 10, answers[0].text  # a burst of 10 per shopper
    _assert_rate_limited(answers[-1])
    assert answers[-1].json()["field"] == "user_id"
    assert httpx.post(url, json={"user_id": f"{shopper}-2", "item_id": item, "feedback": "like"},
                      timeout=30).status_code == 202  # another shopper is not held up

    events = read_topic(stack, stack.kafka.topic("user_events"), until=10, match=lambda ev: ev.partition_key == shopper)
    assert {(ev.source, ev.data.context["trust"]) for ev in events} == {(SHOP_SOURCE, "untrusted")}
    # The same shopper's trusted event (another source): both reach the hot state and PostgreSQL ...
    trusted = f"abuse-test/{uuid.uuid4().hex[:6]}"
    resp = httpx.post(stack.function_url("event_capture") + "/api/v1/events", content=json.dumps(
        {"user_id": shopper, "item_id": f"{item}-t", "event_type": "click"}), headers={
        "ce-id": uuid.uuid4().hex, "ce-source": trusted, "ce-type": INTERACTION, "ce-specversion": "1.0",
        "content-type": "application/json"})
    assert resp.status_code == 202, resp.text
    pool = make_pool(stack)
    try:
        assert wait_for(lambda: len(EventRepo(pool).recent(shopper)) == 11, 30), EventRepo(pool).recent(shopper)
    finally:
        pool.close()
    # (the hot state is feature-update's, the history the analytics sink's: two consumers, each at its pace)
    assert wait_for(lambda: set(HotState(stack).recent_items(shopper)) == {item, f"{item}-t"}, 30), \
        HotState(stack).recent_items(shopper)
    # ... but training data leaves the untrusted ones out.
    exported = export_postgres(tmp_path, stack, sources=[SHOP_SOURCE, trusted])
    rows = pd.read_parquet(exported.events_dir)
    assert rows[rows["user_id"] == shopper]["source"].tolist() == [trusted]


# -- request size: bodies and collections ---------------------------------------------------------
def _chunks(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    """A body sent chunked (no content-length), JSON-looking so a parser would start on it."""
    yield b'{"user_id": "u", "context": {"pad": "'
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


@pytest.mark.parametrize(("workload", "path"), [
    ("recommend", "/api/v1/recommend/generate"),
    ("event_capture", "/api/v1/events"),
    ("admin_api", "/api/v1/items"),
    ("feature_update", "/"),
])
def test_an_oversized_chunked_body_gets_413(stack: Settings, workload: str, path: str) -> None:
    admin = next(s.get_secret_value() for s in stack.auth.admin_tokens.values())
    resp = httpx.post(stack.function_url(workload) + path, content=_chunks(MAX_BODY_BYTES + 1024),
                      headers={"content-type": "application/json", "authorization": f"Bearer {admin}"}, timeout=60)
    assert resp.status_code == 413, resp.text[:300]
    assert "content-length" not in resp.request.headers and resp.request.headers["transfer-encoding"] == "chunked"
    body = resp.json()
    assert (body["error"], body["field"]) == ("payload_too_large", "body") and body["message"]


def test_a_chunked_body_within_the_limit_is_served(stack: Settings) -> None:
    body = json.dumps({"user_id": f"chunked-{uuid.uuid4().hex[:6]}", "count": 3}).encode()
    resp = httpx.post(stack.function_url("recommend") + "/api/v1/recommend/generate",
                      content=iter([body[:10], body[10:]]), headers={"content-type": "application/json"}, timeout=30)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(("body", "field"), [
    ({"user_id": "u", "filters": {"attributes": {f"a{i}": i for i in range(33)}}}, "filters.attributes"),
    ({"user_id": "u", "filters": {"attributes": {"colour": "x" * 513}}}, "filters.attributes.colour"),
    ({"user_id": "u", "context": {f"k{i}": i for i in range(1001)}}, "context"),
    ({"user_id": "u", "context": {"k": ["x"] * 1001}}, "context"),
    ({"user_id": "u", "context": {"note": "x" * 20_001}}, "context"),
    ({"user_id": "u", "exclude": ["i"] * 1001}, "exclude"),
])
def test_an_oversized_collection_gets_422_naming_the_field(stack: Settings, body: dict, field: str) -> None:
    resp = httpx.post(stack.function_url("recommend") + "/api/v1/recommend/generate", json=body, timeout=30)
    assert resp.status_code == 422, resp.text[:300]
    assert resp.json()["field"] == field


def test_an_event_with_oversized_free_form_data_is_refused_naming_it(stack: Settings) -> None:
    resp = httpx.post(stack.function_url("event_capture") + "/api/v1/events", content=json.dumps(
        {"user_id": "u", "item_id": "i", "event_type": "click", "context": {f"k{i}": i for i in range(1001)}}),
        headers={"ce-id": uuid.uuid4().hex, "ce-source": "abuse-test", "ce-type": INTERACTION,
                 "ce-specversion": "1.0", "content-type": "application/json"})
    assert resp.status_code == 400 and resp.json()["field"] == "data.context", resp.text
