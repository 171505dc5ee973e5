"""Admin API pieces that need no stack: JWT checks, role rules, histogram quantiles, PCA, trees."""

from __future__ import annotations

import base64
import json
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from genrec.apps.admin_analytics import histogram_quantile, parse_histogram
from genrec.apps.admin_auth import decode_jwt, encode_jwt
from genrec.apps.admin_queries import category_tree, pca3
from genrec.config import Settings

SECRET = "s3cret"
HOUR = 3600


def test_jwt_round_trip_and_refusals() -> None:
    token = encode_jwt({"sub": "ops", "role": "operator", "exp": time.time() + 60}, SECRET)
    assert decode_jwt(token, SECRET, max_lifetime_s=HOUR)["sub"] == "ops"
    with pytest.raises(ValueError, match="signature"):
        decode_jwt(token, "other-secret", max_lifetime_s=HOUR)
    with pytest.raises(ValueError, match="expired"):
        decode_jwt(encode_jwt({"sub": "x", "exp": time.time() - 3600}, SECRET), SECRET, max_lifetime_s=HOUR)
    with pytest.raises(ValueError, match="malformed"):
        decode_jwt("a.b", SECRET, max_lifetime_s=HOUR)
    # "alg: none" (or any other algorithm) is refused even with a valid-looking signature part
    _, payload, sig = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).rstrip(b"=").decode()
    with pytest.raises(ValueError, match="algorithm"):
        decode_jwt(f"{forged}.{payload}.{sig}", SECRET, max_lifetime_s=HOUR)


def test_jwt_must_expire_within_the_lifetime_allowed() -> None:
    now = time.time()

    def decode(claims: dict) -> dict:
        return decode_jwt(encode_jwt(claims, SECRET), SECRET, max_lifetime_s=HOUR, now=now)

    with pytest.raises(ValueError, match=r"no expiry \(exp\)"):
        decode({"sub": "forever", "role": "operator"})
    with pytest.raises(ValueError, match="lifetime of 7200 s exceeds the 3600 s allowed"):  # from iat
        decode({"sub": "x", "iat": now - 60, "exp": now - 60 + 2 * HOUR})
    with pytest.raises(ValueError, match="lifetime of 7200 s exceeds"):  # no iat: from now
        decode({"sub": "x", "exp": now + 2 * HOUR})
    with pytest.raises(ValueError, match="iat is not a time"):
        decode({"sub": "x", "iat": "yesterday", "exp": now + 60})
    assert decode({"sub": "ok", "iat": now - 60, "exp": now - 60 + HOUR})["sub"] == "ok"
    assert decode({"sub": "ok", "exp": now + HOUR})["sub"] == "ok"


def _client(s: Settings) -> TestClient:
    from genrec.apps.admin import create_app

    return TestClient(create_app(s, static_dir=None))


def test_auth_rules_without_stores() -> None:
    s = Settings(auth={"admin_tokens": {"ops": "op-token", "watcher": "view-token"}, "admin_roles": {"ops": "operator"},
                       "jwt_secret": SECRET})
    c = _client(s)
    r = c.get("/api/v1/auth/me")
    assert r.status_code == 401 and r.json()["field"] == "authorization" and r.headers["www-authenticate"] == "Bearer"
    assert c.get("/api/v1/auth/me", headers={"authorization": "Bearer nope"}).status_code == 401
    assert c.get("/api/v1/auth/me", headers={"authorization": "Bearer view-token"}).json() == {
        "name": "watcher", "role": "viewer", "via": "token"}
    jwt_op = encode_jwt({"sub": "ci", "role": "operator", "exp": time.time() + 60}, SECRET)
    assert c.get("/api/v1/auth/me", headers={"authorization": f"Bearer {jwt_op}"}).json()["role"] == "operator"
    bad_role = encode_jwt({"sub": "ci", "role": "root", "exp": time.time() + 60}, SECRET)
    r = c.get("/api/v1/auth/me", headers={"authorization": f"Bearer {bad_role}"})
    assert r.status_code == 401 and "unknown role" in r.json()["message"]
    # a viewer asking for an operator action: 403 before any store is touched
    r = c.post("/api/v1/models/rollback", headers={"authorization": "Bearer view-token"})
    assert r.status_code == 403 and r.json() == {"error": "forbidden", "field": "authorization",
                                                 "message": "role 'viewer' may not do this; needs 'operator'"}
    # validation names the field
    r = c.put("/api/v1/models/v1/traffic", json={"weight": 2}, headers={"authorization": "Bearer op-token"})
    assert r.status_code == 422 and r.json()["field"] == "weight"
    spec = c.get("/openapi.json").json()
    assert "/api/v1/metrics/stream" in spec["paths"] and "HTTPBearer" in spec["components"]["securitySchemes"]
    assert "not built" in c.get("/").text


def test_admin_api_refuses_jwts_without_a_bounded_expiry() -> None:
    # A token signed with the right secret but no exp, or one good for longer than
    # auth.jwt_max_lifetime_s, is not an operator: 401 naming why.
    s = Settings(auth={"jwt_secret": SECRET, "jwt_max_lifetime_s": HOUR})
    c = _client(s)

    def me(claims: dict) -> httpx.Response:
        return c.get("/api/v1/auth/me", headers={"authorization": f"Bearer {encode_jwt(claims, SECRET)}"})

    r = me({"sub": "forever", "role": "operator"})
    assert r.status_code == 401 and r.json() == {"error": "unauthorized", "field": "authorization",
                                                 "message": "token has no expiry (exp); tokens must expire"}
    r = me({"sub": "long", "role": "operator", "iat": int(time.time()), "exp": int(time.time()) + 2 * HOUR})
    assert r.status_code == 401 and "auth.jwt_max_lifetime_s" in r.json()["message"]
    r = me({"sub": "ci", "role": "operator", "iat": int(time.time()), "exp": int(time.time()) + HOUR})
    assert r.status_code == 200 and r.json() == {"name": "ci", "role": "operator", "via": "jwt"}


def test_histogram_quantiles_from_prometheus_text() -> None:
    text = "\n".join([
        "# HELP http_request_duration_seconds HTTP request latency",
        "# TYPE http_request_duration_seconds histogram",
        *(f'http_request_duration_seconds_bucket{{le="{le}",route="/api/v1/recommend/generate",service="recommend"}}'
          f" {n}" for le, n in [("0.01", 50), ("0.1", 90), ("1.0", 100), ("+Inf", 100)]),
        'http_request_duration_seconds_count{route="/api/v1/recommend/generate",service="recommend"} 100',
        'http_request_duration_seconds_bucket{le="+Inf",route="/api/v1/recommend/feedback",service="recommend"} 7',
        'http_request_duration_seconds_count{route="/api/v1/recommend/feedback",service="recommend"} 7',
    ]) + "\n"
    total, buckets = parse_histogram(text)
    assert total == 100  # feedback is not a served list
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.01)
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.1 + 0.9 * 0.5)
    assert histogram_quantile(0.5, {}) is None


def test_pca_projects_to_three_scaled_axes() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 16)) * np.array([10, 5, 2] + [0.1] * 13)
    coords, ratio = pca3(x)
    assert coords.shape == (50, 3) and np.abs(coords).max() == pytest.approx(1.0)
    assert ratio[0] > ratio[1] > ratio[2] > 0 and sum(ratio) <= 1
    tiny, tiny_ratio = pca3(x[:2])
    assert tiny.shape == (2, 3) and len(tiny_ratio) == 3


def test_category_tree_rolls_counts_up() -> None:
    tree = category_tree([{"category_path": "A|B|C", "count": 2}, {"category_path": "A|B|D", "count": 3},
                          {"category_path": "E", "count": 1}])
    assert [(n["name"], n["count"]) for n in tree] == [("A", 5), ("E", 1)]
    assert tree[0]["children"][0]["path"] == "A|B" and len(tree[0]["children"][0]["children"]) == 2


def test_a_store_outage_answers_503_naming_the_store_not_the_driver_text() -> None:
    # Nothing listens on port 9: the driver's error names host and port; the client must not see it.
    s = Settings(auth={"admin_tokens": {"watcher": "view-token"}},
                 postgres={"dsn": "postgresql://genrec@127.0.0.1:9/genrec?connect_timeout=1"})
    r = _client(s).get("/api/v1/items", headers={"authorization": "Bearer view-token"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json() == {"error": "unavailable", "field": "", "message": "PostgreSQL is unavailable; try again shortly"}


def test_the_analytics_views_answer_503_naming_clickhouse_while_its_server_is_down() -> None:
    import socket

    from genrec.apps.admin_analytics import StoreAnalyticsReader
    from genrec.apps.errors import ApiError

    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reader = StoreAnalyticsReader(Settings(clickhouse={"url": f"http://default@127.0.0.1:{port}/genrec"}))
    with pytest.raises(ApiError) as caught:
        reader.latency(1)
    assert caught.value.status == 503 and caught.value.message == "ClickHouse is unavailable; try again shortly"


def test_the_pipeline_lag_names_kafka_while_the_broker_is_away() -> None:
    # The dashboard keeps its rows (every subscription, with its priority) and says why no lag is shown.
    s = Settings(auth={"admin_tokens": {"watcher": "view-token"}}, kafka={"bootstrap_servers": "127.0.0.1:9"})
    r = _client(s).get("/api/v1/pipeline/lag", headers={"authorization": "Bearer view-token"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["error"] == "Kafka is unavailable; try again shortly"
    assert {(row["function"], row["priority"]) for row in body["subscriptions"]} >= {
        ("feature-update", "realtime"), ("analytics-sink", "bulk")}
    assert all(row["lag"] is None for row in body["subscriptions"])
