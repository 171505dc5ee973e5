"""Traces (OpenTelemetry) that follow a request across services and through Kafka.

W3C trace context comes in on HTTP headers, is stamped on every CloudEvent that
event-capture accepts (the CloudEvents Distributed Tracing extension: a ``traceparent``
attribute, carried on Kafka as the ``ce_traceparent`` header and delivered by KafkaSource
or the local bridge as ``ce-traceparent``), and is continued by the consuming function; the
recommend function passes it to the model server. Spans are exported over OTLP when
``observability.otlp_endpoint`` is set; without it the ids are still made and propagated
(and appear in the logs), nothing is exported.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind

from genrec.config import Settings, get_settings

_tracer = trace.get_tracer("genrec")
MAX_LINKS = 128  # links per span the SDK keeps (SpanLimits' default)


def setup_tracing(service: str, s: Settings | None = None) -> None:
    """Install this process's tracer provider (once, at start)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    s = s or get_settings()
    obs = s.observability
    provider = TracerProvider(resource=Resource.create({"service.name": f"genrec-{service}"}),
                              sampler=ParentBased(TraceIdRatioBased(obs.trace_sample_ratio)))
    if obs.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=obs.otlp_endpoint)))
    trace.set_tracer_provider(provider)


@contextmanager
def server_span(name: str, headers: Mapping[str, str]) -> Iterator[Span]:
    """A span for an incoming HTTP request, child of the caller's ``traceparent`` if any."""
    with _tracer.start_as_current_span(name, context=propagate.extract(dict(headers)), kind=SpanKind.SERVER) as span:
        yield span


def _stamped_context(event: Mapping[str, Any]) -> Context:
    """The trace context carried on a CloudEvent (Distributed Tracing extension)."""
    return propagate.extract({k: str(v) for k in ("traceparent", "tracestate") if (v := event.get(k))})


@contextmanager
def event_span(name: str, event: Mapping[str, Any]) -> Iterator[Span]:
    """A span for handling one CloudEvent (``event``: its attributes), child of the trace stamped on it."""
    with _tracer.start_as_current_span(name, context=_stamped_context(event), kind=SpanKind.CONSUMER,
                                       attributes={"cloudevents.event_id": event["id"],
                                                   "cloudevents.event_type": event["type"]}) as span:
        yield span


@contextmanager
def batch_span(name: str, events: Sequence[Mapping[str, Any]]) -> Iterator[Span]:
    """One span for handling a batch of CloudEvents (their attributes), linked to the trace stamped on each
    (OpenTelemetry's messaging convention for batch receive: a batch has many parents), up to
    ``MAX_LINKS``: the SDK keeps no more per span, and reading the context of every event of a
    delivered batch of a thousand was a tenth of a consumer's CPU per event."""
    contexts = (trace.get_current_span(_stamped_context(event)).get_span_context() for event in events)
    links = list(islice((Link(ctx) for ctx in contexts if ctx.is_valid), MAX_LINKS))
    with _tracer.start_as_current_span(name, kind=SpanKind.CONSUMER, links=links,
                                       attributes={"messaging.batch.message_count": len(events)}) as span:
        yield span


def trace_context() -> dict[str, str]:
    """The current W3C trace context as CloudEvent extension attributes (empty outside a trace)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {k: v for k, v in carrier.items() if k in ("traceparent", "tracestate")}


def outgoing_headers() -> dict[str, str]:
    """Headers that continue the current trace in a downstream call."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
