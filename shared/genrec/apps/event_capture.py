"""event-capture: the front door for upstream systems' CloudEvents.

Validates each event against its contract, drops (source, id) duplicates, gives an event
without a ``time`` the time of its first receipt (a resend gets the same one), publishes to Kafka
with an acks=all producer and answers 202 only once the broker has every event.
400 names the bad field; 503 means "retry": nothing was silently dropped.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from genrec.apps.auth import require_ingest_key
from genrec.apps.common import create_base_app, read_events
from genrec.apps.errors import ApiError
from genrec.apps.outages import KAFKA, OUTAGE, Fault
from genrec.apps.ratelimit import RateLimiter
from genrec.apps.readiness import Readiness
from genrec.config import Settings, get_settings
from genrec.events.codec import BATCH_CONTENT_TYPE, received_at
from genrec.events.contracts import now_utc
from genrec.events.dedup import EventDeduplicator
from genrec.events.publisher import BrokerUnavailable, EventPublisher
from genrec.stores.hot_state import redis_client
from genrec.stores.resources import Lazy
from genrec.tracing import trace_context

log = logging.getLogger("genrec.event_capture")

_REQUEST_BODY = {
    "required": True,
    "description": "A CloudEvent in binary mode (ce-* headers, JSON data), structured mode "
    "(application/cloudevents+json) or a batch (" + BATCH_CONTENT_TYPE + "). "
    "Schemas per type: genrec/schemas/*.json.",
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/cloudevents+json": {"schema": {"type": "object"}},
        BATCH_CONTENT_TYPE: {"schema": {"type": "array", "items": {"type": "object"}}},
    },
}


class Capture:
    """The broker publisher (opened at start-up or on first use) and the edge deduplicator."""

    def __init__(self, s: Settings) -> None:
        self.settings = s
        self.publisher = Lazy(lambda: EventPublisher(s, timeout_s=s.kafka.publish_timeout_s,
                                                     linger_ms=s.kafka.ingest_linger_ms),
                              close=EventPublisher.close)
        # Short timeouts: the edge dedup is an optimisation, and a slow Redis must not hold events up.
        self.dedup = EventDeduplicator(redis_client(s, timeout_s=0.5), ttl_s=s.redis.idempotency_ttl_s)


async def _capture(request: Request) -> Capture:
    return request.app.state.capture


router = APIRouter()


@router.post("/", status_code=202, openapi_extra={"requestBody": _REQUEST_BODY}, include_in_schema=False)
@router.post("/api/v1/events", status_code=202, openapi_extra={"requestBody": _REQUEST_BODY},
             summary="Accept CloudEvents (single or batch)")
async def ingest(request: Request, capture: Annotated[Capture, Depends(_capture)]) -> JSONResponse:
    require_ingest_key(request, capture.settings.auth.ingest_api_keys)
    # Consumers continue this request's trace; an event without a time gets its receipt's, the
    # one the dedup reserves for it (stamped while parsing: each event is built once).
    now, context = now_utc(), trace_context()
    events = await read_events(request, received=now, extensions=context)
    if isinstance(events, JSONResponse):
        return events

    unique = list({(ev.source, ev.id): ev for ev in events}.values())
    receipts = capture.dedup.claim(unique, now)
    # None: accepted before; a time other than ``now``: a resend, given its first receipt's time.
    fresh = [received_at(ev, t, context) for ev, t in zip(unique, receipts, strict=True) if t is not None]
    try:
        await capture.publisher.get().publish(fresh)
    except BrokerUnavailable as exc:
        log.error("broker unavailable, %d events refused: %s", len(fresh), exc)
        # librdkafka's text names brokers' hosts and ports: the log has it, the caller gets the name.
        raise ApiError.unavailable(Fault(KAFKA, OUTAGE).message, "broker_unavailable") from None
    capture.dedup.mark(fresh)
    return JSONResponse(
        {"accepted": len(fresh), "duplicates": len(events) - len(fresh), "ids": [ev.id for ev in fresh]},
        status_code=202,
    )


def create_app(s: Settings | None = None) -> FastAPI:
    s = s or get_settings()
    # Kafka only: the dedup in Redis is an optimisation that events never wait for.
    app = create_base_app("event-capture", title="genrec event capture", limits=RateLimiter(s.auth),
                          cors_origins=s.auth.cors_origins, ready=Readiness(s, ("kafka",)))
    app.state.capture = capture = Capture(s)
    app.state.on_start = capture.publisher.get
    app.state.on_stop = capture.publisher.close
    app.include_router(router)
    return app
