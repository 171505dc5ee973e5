"""One trace from the caller through event-capture and Kafka into the consuming function."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genrec.apps.event_function import create_event_app
from genrec.config import Settings
from genrec.events.codec import new_event, to_http_binary
from genrec.events.contracts import INTERACTION
from genrec.tracing import stamp
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


def test_consuming_function_continues_the_trace_stamped_on_the_event(spans: InMemorySpanExporter) -> None:
    from opentelemetry import propagate

    seen: list[str] = []
    app = create_event_app("probe", "probe", {INTERACTION: lambda ev: seen.append(ev.id)})
    with trace.get_tracer("test").start_as_current_span("producer") as producer:
        ev = stamp(new_event(INTERACTION, {"user_id": "u", "item_id": "i", "event_type": "view"}, source="t"))
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
