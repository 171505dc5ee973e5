"""The rate limiter's parts: the bucket store (bounded memory, no budget ever reset) and who a client is."""

from __future__ import annotations

import time

import pytest
from starlette.requests import Request

from genrec.apps.admin_auth import encode_jwt
from genrec.apps.ratelimit import TokenBuckets, identify
from genrec.config import AuthSettings

AUTH = AuthSettings(ingest_api_keys={"shop": "ingest-secret"}, admin_tokens={"ops": "admin-secret"},
                    jwt_secret="jwt-secret")


def test_token_buckets_limit_each_client_separately() -> None:
    buckets = TokenBuckets(rate_per_s=10, burst=3)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", now=0.0) == pytest.approx(0.1)  # empty: one token per 100 ms
    assert buckets.take("b", now=0.0) == 0.0  # another client is unaffected
    assert buckets.take("a", now=0.1) == 0.0  # refilled


def test_a_batch_takes_its_tokens_at_once_or_none() -> None:
    buckets = TokenBuckets(rate_per_s=10, burst=5)
    assert buckets.take("a", now=0.0, n=4) == 0.0
    assert buckets.take("a", now=0.0, n=4) == pytest.approx(0.3)  # 1 left: 3 more come in 300 ms
    assert buckets.take("a", now=0.0) == 0.0  # the refused batch took none of them
    assert buckets.take("a", now=0.0, n=64) == pytest.approx(0.5)  # beyond the burst: waits as for a full bucket


def test_a_flood_of_new_clients_stays_in_bounded_memory_and_resets_no_budget() -> None:
    buckets = TokenBuckets(rate_per_s=1, burst=2, max_clients=100)
    assert [buckets.take("known", now=0.0) for _ in range(3)] == [0.0, 0.0, 1.0]  # its budget is spent
    for n in range(10_000):  # a fresh name per request, all within the same second
        buckets.take(f"flood-{n}", now=0.5)
    assert len(buckets) == 100
    assert buckets.take("known", now=0.5) == pytest.approx(0.5)  # still spent: nobody was reset
    # The newcomers beyond the first 99 shared one overflow bucket: two passed, the rest waited.
    assert buckets.take("one-more", now=0.5) > 0


def test_only_buckets_that_refilled_completely_make_room() -> None:
    buckets = TokenBuckets(rate_per_s=1, burst=2, max_clients=2)
    buckets.take("idle", now=0.0)
    buckets.take("busy", now=2.0)
    buckets.take("busy", now=2.0)
    # "idle" has refilled by t=2 (least recently seen and full): dropping it loses nothing.
    assert buckets.take("new", now=2.0) == 0.0
    assert len(buckets) == 2
    assert buckets.take("busy", now=2.0) > 0  # "busy" kept its spent budget
    # Now "new" is least recently seen and still refilling: newcomers get no bucket of their own
    # but share one overflow bucket, which runs dry for all of them together.
    assert [buckets.take(name, now=2.0) == 0.0 for name in ("another", "and-another", "yet-another")] == [
        True, True, False]
    assert len(buckets) == 2
    assert buckets.take("new", now=2.0) == 0.0  # the known clients kept theirs


def _request(headers: dict[str, str], peer: str = "10.0.0.9") -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [
        (k.lower().encode(), v.encode()) for k, v in headers.items()], "client": (peer, 5555)})


@pytest.mark.parametrize(("headers", "key", "authenticated"), [
    ({"x-api-key": "ingest-secret"}, "key:shop", True),
    ({"authorization": "Bearer ingest-secret"}, "key:shop", True),
    ({"authorization": "Bearer admin-secret"}, "token:ops", True),
    ({}, "ip:10.0.0.9", False),
    ({"x-api-key": "made-up"}, "ip:10.0.0.9", False),  # a credential that does not verify counts as none
    ({"authorization": "Bearer a.b.c"}, "ip:10.0.0.9", False),
    ({"authorization": "Bearer " + encode_jwt({"sub": "x", "exp": time.time() + 300}, "not-the-secret")},
     "ip:10.0.0.9", False),
    ({"authorization": "Bearer " + encode_jwt({"sub": "x", "exp": time.time() - 3600}, "jwt-secret")},
     "ip:10.0.0.9", False),
])
def test_a_client_is_its_verified_credential_else_its_address(headers: dict, key: str, authenticated: bool) -> None:
    client = identify(_request(headers), AUTH)
    assert (client.key, client.authenticated) == (key, authenticated)


def test_a_valid_jwt_is_its_subject() -> None:
    token = encode_jwt({"sub": "ci-bot", "role": "viewer", "exp": time.time() + 300}, "jwt-secret")
    assert identify(_request({"authorization": f"Bearer {token}"}), AUTH).key == "jwt:ci-bot"


def test_forwarded_addresses_count_only_through_trusted_proxies() -> None:
    spoofed = {"x-forwarded-for": "1.1.1.1, 203.0.113.7"}  # the client wrote 1.1.1.1; the proxy appended 203.0.113.7
    assert identify(_request(spoofed), AUTH).key == "ip:10.0.0.9"  # no proxy trusted: the peer
    one_hop = AUTH.model_copy(update={"trusted_proxy_hops": 1})
    assert identify(_request(spoofed), one_hop).key == "ip:203.0.113.7"
    assert identify(_request({}), one_hop).key == "ip:10.0.0.9"  # nothing forwarded: the peer
