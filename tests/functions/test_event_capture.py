"""event-capture, run by the Knative Python runtime against the real broker and Redis."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from fastapi.testclient import TestClient

from genrec.apps.event_capture import create_app
from genrec.config import Settings
from genrec.events.contracts import INTERACTION
from tests.helpers import read_topic

pytestmark = pytest.mark.stack


def _binary(event_id: str, data: dict, source: str = "test-shop") -> tuple[dict, bytes]:
    headers = {"ce-id": event_id, "ce-source": source, "ce-type": INTERACTION, "ce-specversion": "1.0",
               "content-type": "application/json"}
    return headers, json.dumps(data).encode()


@pytest.fixture
def url(stack: Settings) -> str:
    return stack.function_url("event_capture") + "/api/v1/events"


def test_accepted_event_is_on_the_topic_keyed_by_user(stack: Settings, url: str) -> None:
    marker = uuid.uuid4().hex
    headers, body = _binary(f"e-{marker}", {"user_id": f"u-{marker}", "item_id": "i-1", "event_type": "click"})
    resp = httpx.post(url, headers=headers, content=body)
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"accepted": 1, "duplicates": 0, "ids": [f"e-{marker}"]}
    found = read_topic(stack, stack.kafka.topic("user_events"), until=1, match=lambda ev: marker in ev.id)
    assert len(found) == 1
    assert found[0].partition_key == f"u-{marker}"
    assert found[0].data.event_type == "click"


def test_duplicate_event_is_published_once(stack: Settings, url: str) -> None:
    marker = uuid.uuid4().hex
    headers, body = _binary(f"dup-{marker}", {"user_id": "u-dup", "item_id": "i-1", "event_type": "view"})
    first = httpx.post(url, headers=headers, content=body).json()
    second = httpx.post(url, headers=headers, content=body).json()
    assert (first["accepted"], second["accepted"], second["duplicates"]) == (1, 0, 1)
    # the same id from another source is a different event
    other_headers, _ = _binary(f"dup-{marker}", {}, source="other-shop")
    third = httpx.post(url, headers=other_headers, content=body).json()
    assert third["accepted"] == 1
    found = read_topic(stack, stack.kafka.topic("user_events"), until=2, match=lambda ev: marker in ev.id)
    assert sorted(ev.source for ev in found) == ["other-shop", "test-shop"]


def test_batch_mode_accepts_many_and_dedupes_within_the_batch(stack: Settings, url: str) -> None:
    marker = uuid.uuid4().hex
    events = [
        {"specversion": "1.0", "id": f"b-{marker}-{i % 3}", "source": "batch", "type": INTERACTION,
         "data": {"user_id": f"u{i}", "item_id": "i", "event_type": "view"}}
        for i in range(4)
    ]
    resp = httpx.post(url, content=json.dumps(events),
                      headers={"content-type": "application/cloudevents-batch+json"})
    assert resp.status_code == 202
    assert resp.json()["accepted"] == 3 and resp.json()["duplicates"] == 1


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"user_id": "u", "item_id": "i", "event_type": "teleport"}, "data.event_type"),
        ({"item_id": "i", "event_type": "click"}, "data.user_id"),
        ({"user_id": "u", "item_id": "i", "event_type": "rating", "value": "five"}, "data.value"),
        ({"user_id": "u", "item_id": "i", "event_type": "click", "extra": 1}, "data.extra"),
        ({"user_id": "", "item_id": "i", "event_type": "click"}, "data.user_id"),
    ],
)
def test_malformed_event_gets_400_naming_the_field_and_nothing_reaches_kafka(
    stack: Settings, url: str, data: dict, field: str
) -> None:
    marker = uuid.uuid4().hex
    headers, body = _binary(f"bad-{marker}", data)
    resp = httpx.post(url, headers=headers, content=body)
    assert resp.status_code == 400
    assert resp.json()["field"] == field
    assert read_topic(stack, stack.kafka.topic("user_events"), timeout_s=3, match=lambda ev: marker in ev.id) == []


def test_one_bad_event_rejects_the_whole_batch(stack: Settings, url: str) -> None:
    marker = uuid.uuid4().hex
    good = {"specversion": "1.0", "id": f"g-{marker}", "source": "b", "type": INTERACTION,
            "data": {"user_id": "u", "item_id": "i", "event_type": "view"}}
    bad = {**good, "id": f"x-{marker}", "type": "dev.genrec.unknown.v1"}
    resp = httpx.post(url, content=json.dumps([good, bad]),
                      headers={"content-type": "application/cloudevents-batch+json"})
    assert resp.status_code == 400 and resp.json()["field"] == "[1].type"
    assert read_topic(stack, stack.kafka.topic("user_events"), timeout_s=3, match=lambda ev: marker in ev.id) == []


def test_not_a_cloudevent_is_refused(url: str) -> None:
    resp = httpx.post(url, json={"user_id": "u"})
    assert resp.status_code == 400 and resp.json()["field"] == "content-type"


def test_unreachable_broker_answers_503_so_the_caller_retries(stack: Settings) -> None:
    dead = stack.model_copy(deep=True)
    dead.kafka.bootstrap_servers = "127.0.0.1:9"  # discard port: nothing listens
    dead.kafka.publish_timeout_s = 1.0
    with TestClient(create_app(dead)) as client:
        headers, body = _binary("e-dead", {"user_id": "u", "item_id": "i", "event_type": "click"})
        resp = client.post("/api/v1/events", headers=headers, content=body)
    assert resp.status_code == 503
    assert resp.json()["error"] == "broker_unavailable"
    assert resp.headers["retry-after"] == "1"


def test_openapi_document_is_served(url: str) -> None:
    doc = httpx.get(url.replace("/api/v1/events", "/openapi.json")).json()
    assert "/api/v1/events" in doc["paths"]


def _stored_batches(s: Settings, topic: str) -> set[str]:
    """The record-batch objects the embedded broker holds for ``topic`` (one per produce request)."""
    from genrec.stores.objects import s3_client

    store, prefix = s3_client(s), f"clusters/{s.s3.kafka_cluster}/topics/{topic}/partitions/"
    pages = store.get_paginator("list_objects_v2").paginate(Bucket=s.s3.kafka_bucket, Prefix=prefix)
    return {obj["Key"] for page in pages for obj in page.get("Contents", []) if obj["Key"].endswith(".batch")}


def test_requests_arriving_together_reach_the_broker_as_one_write(stack: Settings, url: str) -> None:
    """Every produce request is an object-store write on the embedded broker (and a fetch per
    reader): requests a few milliseconds apart must share one, not cost one each."""
    marker = uuid.uuid4().hex
    topic = stack.kafka.topic("user_events")

    async def send(client: httpx.AsyncClient, i: int) -> int:
        await asyncio.sleep(0.004 * i)  # eight upstream requests over ~30 ms
        headers, body = _binary(f"w-{marker}-{i}", {"user_id": f"u-{marker}", "item_id": f"i-{i}",
                                                    "event_type": "view"})
        return (await client.post(url, headers=headers, content=body)).status_code

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=10) as client:
            return await asyncio.gather(*(send(client, i) for i in range(8)))

    before = _stored_batches(stack, topic)
    assert asyncio.run(burst()) == [202] * 8
    written = _stored_batches(stack, topic) - before
    assert 1 <= len(written) <= 3, f"8 requests cost the broker {len(written)} writes"
