"""The shape shared by every function that consumes CloudEvents (KafkaSource or the local bridge).

Status codes carry the delivery contract: 2xx = done (offset may be committed), 503 = a
dependency is down (redeliver later, never dead-letter), 400 = this record will never
succeed (dead-letter after the configured attempts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import psycopg
import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from genrec.apps.common import create_base_app, error_body, read_events
from genrec.events.codec import EventError, ValidEvent
from genrec.tracing import event_span

log = logging.getLogger("genrec.functions")

# Exceptions that mean "a store is unreachable right now", not "this event is bad".
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    redis.ConnectionError,
    redis.TimeoutError,
    ConnectionError,
    TimeoutError,
)

Handler = Callable[[ValidEvent], dict | None]


def create_event_app(name: str, title: str, handlers: Mapping[str, Handler], *, path: str = "/",
                     unavailable: tuple[type[BaseException], ...] = UNAVAILABLE_ERRORS) -> FastAPI:
    """A FastAPI app that receives CloudEvents at `path` and dispatches them by type."""
    app = create_base_app(name, title=title)

    @app.post(path, summary="Receive one CloudEvent (binary or structured mode)")
    async def receive(request: Request) -> JSONResponse:
        events = await read_events(request)
        if isinstance(events, JSONResponse):
            return events
        results = []
        for ev in events:
            handler = handlers.get(ev.type)
            if handler is None:
                return JSONResponse(error_body("type", f"{name} does not handle {ev.type}"), status_code=400)
            try:
                with event_span(f"{name} {ev.type}", ev.event):
                    results.append(await run_in_threadpool(handler, ev) or {})
            except unavailable as exc:
                log.warning("%s: dependency unavailable for %s: %s", name, ev.id, exc)
                return JSONResponse(error_body("", f"dependency unavailable: {exc}", "unavailable"),
                                    status_code=503, headers={"retry-after": "1"})
            except EventError as exc:  # valid envelope, but this record can never be processed
                return JSONResponse(exc.to_json(), status_code=422)
        return JSONResponse({"processed": len(results), "results": results}, status_code=200)

    return app
