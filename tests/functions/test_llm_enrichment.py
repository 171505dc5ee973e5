"""llm-enrichment against the real Redis and broker. The LLM provider is external: a small
OpenAI-compatible HTTP stand-in (below) plays it, so the real `openai` client is exercised."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from genrec.apps.llm_enrichment import create_app
from genrec.config import Settings
from genrec.events.codec import (
    BATCH_CONTENT_TYPE,
    kafka_to_structured,
    new_event,
    structured_batch,
    to_http_binary,
    to_kafka,
)
from genrec.events.contracts import ITEM_UPSERTED
from tests.helpers import ThreadedServer, read_topic

pytestmark = pytest.mark.stack


class Provider:
    """Answers /v1/chat/completions with a scripted message content and records the calls."""

    def __init__(self, answer_s: float = 0.0) -> None:
        self.calls: list[dict] = []
        self.content = json.dumps({"tags": ["Toner", "rose", "toner", " "], "summary": "A rose water toner.",
                                   "attributes": {"size": "200ml", "colour": None}})
        self.refuse = ""  # a prompt holding this gets an answer that is not the schema
        self.in_flight = self.most_in_flight = 0
        self.app = FastAPI()

        @self.app.post("/v1/chat/completions")
        async def complete(request: Request) -> dict:
            body = await request.json()
            self.calls.append(body)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            await asyncio.sleep(answer_s)
            self.in_flight -= 1
            bad = self.refuse and self.refuse in body["messages"][-1]["content"]
            return {"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "no JSON" if bad else self.content}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def _settings(stack: Settings, base_url: str | None, budget: int = 100) -> Settings:
    s = stack.model_copy(deep=True)
    s.llm.base_url = base_url
    s.llm.max_retries = 0
    s.llm.timeout_s = 2
    s.llm.daily_budget_requests = budget
    s.llm.quality_model = "quality-model"
    return s


def _item_event(title: str):
    return new_event(ITEM_UPSERTED, {"item_id": f"sku-{uuid.uuid4().hex[:8]}", "title": title,
                                     "category_path": "Beauty|Skin Care"}, source="catalogue")


def _post(client: TestClient, ev):
    headers, body = to_http_binary(ev)
    return client.post("/", headers=headers, content=body)


def _post_batch(client: TestClient, events: list, s: Settings):
    """As the local bridge delivers a backlog: the Kafka records as one CloudEvents batch."""
    records = [to_kafka(ev, s)[1] for ev in events]
    body = structured_batch([kafka_to_structured(list(m.headers.items()), m.value) for m in records])
    return client.post("/", headers={"content-type": BATCH_CONTENT_TYPE}, content=body)


def test_enrichment_is_validated_cached_and_emitted(stack: Settings) -> None:
    provider = Provider()
    with ThreadedServer(provider.app) as server:
        s = _settings(stack, server.url + "/v1")
        with TestClient(create_app(s)) as client:
            title = f"Rose water toner {uuid.uuid4().hex}"
            first = _post(client, _item_event(title))
            second = _post(client, _item_event(title))  # same content, another item id: cache hit
            status = client.get("/status").json()
    assert first.status_code == 200, first.text
    result = first.json()["results"][0]
    assert result["enriched"] and not result["cached"]
    assert result["tags"] == ["toner", "rose"]  # cleaned: lower-cased, de-duplicated, blanks dropped
    assert second.json()["results"][0]["cached"] is True
    assert len(provider.calls) == 1
    assert provider.calls[0]["model"] == s.llm.quality_model  # cold start → quality model
    assert provider.calls[0]["response_format"] == {"type": "json_object"}
    assert status["llm"] == "enabled" and status["models"]["batch_extraction"] == s.llm.cheap_model
    found = read_topic(stack, stack.kafka.topic("item_enriched"), until=1,
                       match=lambda ev: ev.data.summary == "A rose water toner." and ev.id.startswith("enriched-"))
    assert found and found[0].data.attributes == {"size": "200ml"}


def test_budget_exhausted_skips_without_calling(stack: Settings) -> None:
    provider = Provider()
    with ThreadedServer(provider.app) as server:
        s = _settings(stack, server.url + "/v1", budget=0)
        with TestClient(create_app(s)) as client:
            resp = _post(client, _item_event(f"Serum {uuid.uuid4().hex}"))
    assert resp.json()["results"][0] == {"id": resp.json()["results"][0]["id"], "enriched": False,
                                         "reason": "daily LLM budget exhausted"}
    assert provider.calls == []


def test_output_that_is_not_the_schema_is_refused_for_dead_letter(stack: Settings) -> None:
    provider = Provider()
    provider.content = "Sure! Here are some tags: toner, rose"
    with ThreadedServer(provider.app) as server, TestClient(create_app(_settings(stack, server.url + "/v1"))) as client:
        resp = _post(client, _item_event(f"Mask {uuid.uuid4().hex}"))
    assert resp.status_code == 422 and "Enrichment" in resp.json()["message"]


def _assert_llm_unavailable(resp) -> None:
    assert resp.status_code == 503, resp.text  # retried by the delivery policy, never dead-lettered
    assert resp.json() == {"error": "unavailable", "field": "",
                           "message": "the LLM provider is unavailable; try again shortly"}


def test_a_provider_that_refuses_connections_answers_503_until_it_is_back(stack: Settings) -> None:
    provider = Provider()
    server = ThreadedServer(provider.app)  # its port is chosen, nothing listens there yet
    ev = _item_event(f"Cream {uuid.uuid4().hex}")
    with TestClient(create_app(_settings(stack, server.url + "/v1"))) as client:
        _assert_llm_unavailable(_post(client, ev))
        with server:
            resp = _post(client, ev)  # the same delivery, once the provider answers
    assert resp.status_code == 200 and resp.json()["results"][0]["enriched"], resp.text


def test_a_provider_that_stalls_past_the_timeout_answers_503(stack: Settings) -> None:
    stalled = FastAPI()

    @stalled.post("/v1/chat/completions")
    async def complete() -> dict:
        await asyncio.sleep(10)  # longer than the client's 2 s timeout
        return {}

    with ThreadedServer(stalled) as server, TestClient(create_app(_settings(stack, server.url + "/v1"))) as client:
        _assert_llm_unavailable(_post(client, _item_event(f"Balm {uuid.uuid4().hex}")))


def test_without_llm_items_pass_through_and_status_says_so(stack: Settings) -> None:
    with TestClient(create_app(_settings(stack, None))) as client:
        resp = _post(client, _item_event("Lip balm"))
        status = client.get("/status").json()
    assert resp.status_code == 200
    assert resp.json()["results"][0]["enriched"] is False
    assert status["llm"] == "disabled" and "GENREC_LLM__BASE_URL" in status["reason"]


def test_a_delivered_batch_is_asked_at_once_and_published_together(stack: Settings) -> None:
    provider = Provider(answer_s=0.3)
    events = [_item_event(f"Toner {k} {uuid.uuid4().hex}") for k in range(6)]
    with ThreadedServer(provider.app) as server:
        s = _settings(stack, server.url + "/v1")
        with TestClient(create_app(s)) as client:
            resp = _post_batch(client, events, s)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["id"] for r in results] == [ev.id for ev in events] and all(r["enriched"] for r in results)
    assert len(provider.calls) == 6 and 1 < provider.most_in_flight <= s.llm.concurrency
    ids = {f"enriched-{ev.source}-{ev.id}" for ev in events}
    assert len(read_topic(stack, stack.kafka.topic("item_enriched"), until=6, match=lambda ev: ev.id in ids)) == 6


def test_one_answer_that_never_validates_fails_its_batch_and_the_others_are_not_asked_again(stack: Settings) -> None:
    provider = Provider()
    provider.refuse = f"broken-{uuid.uuid4().hex}"
    events = [_item_event(title) for title in (f"Mask {uuid.uuid4().hex}", provider.refuse, f"Oil {uuid.uuid4().hex}")]
    with ThreadedServer(provider.app) as server:
        s = _settings(stack, server.url + "/v1")
        with TestClient(create_app(s)) as client:
            batch = _post_batch(client, events, s)
            asked = len(provider.calls)
            alone = [_post(client, ev) for ev in events]  # what the bridge does with a refused batch
    assert batch.status_code == 422 and asked == 3
    assert [r.status_code for r in alone] == [200, 422, 200]
    assert alone[0].json()["results"][0]["cached"] and alone[2].json()["results"][0]["cached"]
    assert len(provider.calls) == 4  # only the broken one asked again


def test_each_question_of_a_batch_keeps_the_requests_context() -> None:
    """The questions run on threads of their own: log lines there (the openai client's retries) must
    still carry the request's id."""
    from genrec.apps.llm_enrichment import Enrichment
    from genrec.enrichment.enricher import EnrichmentResult
    from genrec.logs import REQUEST_ID

    seen: list[str | None] = []

    class Recorder:  # the enricher's interface; records where each question runs
        def enrich(self, item) -> EnrichmentResult:
            seen.append(REQUEST_ID.get())
            return EnrichmentResult(None, "model", False, "no LLM configured")

    token = REQUEST_ID.set("request-7")
    try:
        results = Enrichment(Settings(), Recorder()).on_items([_item_event(f"Gel {k}") for k in range(3)])
    finally:
        REQUEST_ID.reset(token)
    assert seen == ["request-7"] * 3 and [r["enriched"] for r in results] == [False] * 3
