"""The shape shared by every function that consumes CloudEvents (KafkaSource or the local bridge).

Status codes carry the delivery contract: 2xx = done (offset may be committed), 503 = a
dependency is down (redelivered under the delivery policy, whose window outlasts the outages
it is sized for), 400/422 = this record will never succeed (dead-lettered at once), 500 =
unexpected (redelivered for the policy's whole window, then dead-lettered). Which exception
is which is ``genrec.apps.outages.classify``'s to say, for every dependency.

A request holds one event (KafkaSource) or a CloudEvents batch (the local bridge, upstream
replays). A function may give a *batch handler* for a type instead of a single one:
consecutive events of that type are then handled in one call (one SQL statement, one
analytics insert), and a lone event is a batch of one.
A batch is all or nothing for the caller: on any error nothing is acknowledged and the whole
batch is redelivered, so batch handlers must be idempotent like the single ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import groupby
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from genrec.apps.common import create_base_app, read_events
from genrec.apps.errors import ApiError
from genrec.apps.outages import api_error, classify
from genrec.apps.readiness import Readiness
from genrec.events.codec import EventError, ValidEvent
from genrec.tracing import batch_span, event_span

log = logging.getLogger("genrec.functions")

# A handler of one type takes that type's events: ``def on_item(ev: ValidEvent[ItemUpsertedData])``.
Handler = Callable[[ValidEvent[Any]], dict | None]
BatchHandler = Callable[[Sequence[ValidEvent[Any]]], list[dict]]


def create_event_app(name: str, title: str, handlers: Mapping[str, Handler] | None = None, *, path: str = "/",
                     batch_handlers: Mapping[str, BatchHandler] | None = None,
                     ready: Readiness | None = None) -> FastAPI:
    """A FastAPI app that receives CloudEvents at `path` and dispatches them by type; `ready`:
    the stores its handlers need (see ``create_base_app``)."""
    app = create_base_app(name, title=title, ready=ready)
    handlers, batch_handlers = handlers or {}, batch_handlers or {}
    known = handlers.keys() | batch_handlers.keys()

    def handle(run: list[ValidEvent]) -> list[dict]:
        """One run of consecutive same-type events, in order (per-key order is the stream's)."""
        event_type = run[0].type
        if event_type in batch_handlers:
            span = (event_span(f"{name} {event_type}", run[0].attributes) if len(run) == 1
                    else batch_span(f"{name} {event_type} batch", [ev.attributes for ev in run]))
            with span:
                return batch_handlers[event_type](run)
        results = []
        for ev in run:
            with event_span(f"{name} {event_type}", ev.attributes):
                results.append(handlers[event_type](ev) or {})
        return results

    @app.post(path, summary="Receive CloudEvents (binary or structured mode, or a batch)")
    async def receive(request: Request) -> JSONResponse:
        events = await read_events(request)
        if isinstance(events, JSONResponse):
            return events
        unknown = next((ev.type for ev in events if ev.type not in known), None)
        if unknown is not None:
            raise ApiError(400, "type", f"{name} does not handle {unknown}")
        results: list[dict] = []
        for run in _runs_by_type(events):
            try:
                results.extend(await run_in_threadpool(handle, run))
            except EventError as exc:  # valid envelope, but this record can never be processed
                raise ApiError.from_event(exc, 422) from None
            except Exception as exc:
                fault = classify(exc)
                if fault is None:
                    raise  # unexpected: 500
                # The driver's text (hosts, ports, users) goes to the log; the answer names the dependency.
                log.warning("%s: %s for %s: %s: %s", name, fault.message, run[0].id, type(exc).__name__, exc)
                raise api_error(fault, "data") from None
        return JSONResponse({"processed": len(results), "results": results}, status_code=200)

    return app


def _runs_by_type(events: list[ValidEvent]) -> Iterator[list[ValidEvent]]:
    for _, run in groupby(events, key=lambda ev: ev.type):
        yield list(run)
