"""One trace from the caller through event-capture and Kafka into the consuming function."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from cloudevents.core.formats.json import JSONFormat
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genrec.apps.event_function import create_event_app
from genrec.config import Settings
from genrec.events.codec import BATCH_CONTENT_TYPE, new_event, received_at, to_http_binary
from genrec.events.contracts import INTERACTION, ITEM_UPSERTED
from genrec.tracing import trace_context
from tests.helpers import read_topic

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # once per process: the tests below share it
    return exporter


@pytest.mark.stack
def test_accepted_event_carries_the_callers_trace_onto_kafka(stack: Settings) -> None:
    marker = uuid.uuid4().hex
    headers, body = to_http_binary(new_event(
        INTERACTION, {"user_id": f"u-{marker}", "item_id": "i-1", "event_type": "view"},
        source="trace-test", event_id=f"t-{marker}"))
    resp = httpx.post(stack.function_url("event_capture") + "/api/v1/events",
                      headers={**headers, "traceparent": CALLER}, content=body)
    assert resp.status_code == 202, resp.text
    found = read_topic(stack, stack.kafka.topic("user_events"), until=1, match=lambda ev: marker in ev.id)
    traceparent = found[0].event.get_extension("traceparent")
    # Same trace, new parent: event-capture's own span.
    assert traceparent.split("-")[1] == TRACE_ID and traceparent != CALLER


def _stamped(ev):
    """The event with the current trace context on it, as event-capture accepts it."""
    return received_at(ev, ev.time, trace_context())


def test_consuming_function_continues_the_trace_stamped_on_the_event(spans: InMemorySpanExporter) -> None:
    from opentelemetry import propagate

    seen: list[str] = []
    app = create_event_app("probe", "probe", {INTERACTION: lambda ev: seen.append(ev.id)})
    with trace.get_tracer("test").start_as_current_span("producer") as producer:
        ev = _stamped(new_event(INTERACTION, {"user_id": "u", "item_id": "i", "event_type": "view"}, source="t"))
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    headers, body = to_http_binary(ev)
    assert headers["ce-traceparent"] == carrier["traceparent"]
    assert TestClient(app).post("/", headers=headers, content=body).status_code == 200
    handled = next(s for s in spans.get_finished_spans() if s.name == f"probe {INTERACTION}")
    assert seen == [ev.id]
    assert handled.context.trace_id == producer.get_span_context().trace_id
    assert handled.parent.span_id == producer.get_span_context().span_id
    assert handled.attributes["cloudevents.event_id"] == ev.id


def test_batch_is_handled_in_one_call_linked_to_every_events_trace(spans: InMemorySpanExporter) -> None:
    calls: list[list[str]] = []

    def on_batch(evs):
        calls.append([ev.id for ev in evs])
        return [{"id": ev.id} for ev in evs]

    app = create_event_app("batcher", "probe", {INTERACTION: lambda ev: calls.append([ev.id]),
                                                ITEM_UPSERTED: lambda ev: calls.append([ev.id])},
                           batch_handlers={INTERACTION: on_batch})
    events, producers = [], []
    for i in range(4):
        with trace.get_tracer("test").start_as_current_span(f"producer-{i}") as producer:
            kind, data = ((ITEM_UPSERTED, {"item_id": "i", "title": "t"}) if i == 2
                          else (INTERACTION, {"user_id": "u", "item_id": "i", "event_type": "view"}))
            events.append(_stamped(new_event(kind, data, source="t", event_id=f"b{i}")))
            producers.append(producer.get_span_context())
    body = json.dumps([json.loads(JSONFormat().write(ev.event)) for ev in events])
    resp = TestClient(app).post("/", headers={"content-type": BATCH_CONTENT_TYPE}, content=body)
    assert resp.status_code == 200 and resp.json()["processed"] == 4
    # consecutive same-type runs, in order: a run of two goes to the batch handler in one call
    assert calls == [["b0", "b1"], ["b2"], ["b3"]]
    batch = next(s for s in spans.get_finished_spans() if s.name == f"batcher {INTERACTION} batch")
    assert {link.context.span_id for link in batch.links} == {p.span_id for p in producers[:2]}
    assert batch.attributes["messaging.batch.message_count"] == 2


def test_a_large_batch_links_the_first_traces_the_sdk_keeps(spans: InMemorySpanExporter) -> None:
    from genrec.tracing import MAX_LINKS, batch_span

    events, producers = [], []
    for i in range(MAX_LINKS + 50):
        with trace.get_tracer("test").start_as_current_span(f"producer-{i}") as producer:
            events.append(_stamped(new_event(INTERACTION, {"user_id": "u", "item_id": "i", "event_type": "view"},
                                          source="t", event_id=f"big{i}")).attributes)
            producers.append(producer.get_span_context())
    with batch_span("big batch", events):
        pass
    batch = next(s for s in spans.get_finished_spans() if s.name == "big batch")
    assert [link.context.span_id for link in batch.links] == [p.span_id for p in producers[:MAX_LINKS]]
    assert batch.attributes["messaging.batch.message_count"] == MAX_LINKS + 50
