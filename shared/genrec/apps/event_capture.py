"""event-capture: the front door for upstream systems' CloudEvents.

Validates each event against its contract, drops (source, id) duplicates, publishes to Kafka
with an idempotent acks=all producer and answers 202 only once the broker has every event.
400 names the bad field; 503 means "retry": nothing was silently dropped.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from genrec.apps.auth import match_key, presented_key
from genrec.apps.common import create_base_app, error_body, read_events
from genrec.apps.readiness import Readiness
from genrec.config import Settings, get_settings
from genrec.events.codec import BATCH_CONTENT_TYPE
from genrec.events.dedup import EventDeduplicator
from genrec.events.publisher import BrokerUnavailable, EventPublisher
from genrec.stores.hot_state import redis_client
from genrec.tracing import stamp

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


def create_app(s: Settings | None = None) -> FastAPI:
    s = s or get_settings()
    # Kafka only: the dedup in Redis is an optimisation that events never wait for.
    app = create_base_app("event-capture", title="genrec event capture", rate_limit_per_s=s.auth.rate_limit_per_s,
                          cors_origins=s.auth.cors_origins, ready=Readiness(s, ("kafka",)))
    resources: dict[str, object] = {}

    def publisher() -> EventPublisher:
        if "publisher" not in resources:
            resources["publisher"] = EventPublisher(s, timeout_s=s.kafka.publish_timeout_s,
                                                   linger_ms=s.kafka.ingest_linger_ms)
        return resources["publisher"]  # type: ignore[return-value]

    # Short timeouts: the edge dedup is an optimisation, and a slow Redis must not hold events up.
    dedup = EventDeduplicator(redis_client(s, timeout_s=0.5), ttl_s=s.redis.idempotency_ttl_s)

    def on_stop() -> None:
        if "publisher" in resources:
            publisher().close()

    app.state.on_start = publisher
    app.state.on_stop = on_stop

    @app.post("/", status_code=202, openapi_extra={"requestBody": _REQUEST_BODY}, include_in_schema=False)
    @app.post("/api/v1/events", status_code=202, openapi_extra={"requestBody": _REQUEST_BODY},
              summary="Accept CloudEvents (single or batch)")
    async def ingest(request: Request) -> JSONResponse:
        if s.auth.ingest_api_keys and match_key(presented_key(request), s.auth.ingest_api_keys) is None:
            return JSONResponse(error_body("authorization", "missing or invalid API key", "unauthorized"),
                                status_code=401)
        events = await read_events(request)
        if isinstance(events, JSONResponse):
            return events

        unique = list({(ev.source, ev.id): ev for ev in events}.values())
        fresh = [ev for ev, dup in zip(unique, dedup.seen(unique), strict=True) if not dup]
        fresh = [stamp(ev) for ev in fresh]  # consumers continue this request's trace
        try:
            await publisher().publish(fresh)
        except BrokerUnavailable as exc:
            log.error("broker unavailable, %d events refused: %s", len(fresh), exc)
            return JSONResponse(
                {"error": "broker_unavailable", "field": "", "message": f"{exc}; retry the request"},
                status_code=503, headers={"retry-after": "1"},
            )
        dedup.mark(fresh)
        return JSONResponse(
            {"accepted": len(fresh), "duplicates": len(events) - len(fresh), "ids": [ev.id for ev in fresh]},
            status_code=202,
        )

    return app
