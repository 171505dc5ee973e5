"""What every genrec HTTP app shares: health, readiness, metrics, request ids, JSON errors, body and rate limits."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool

from genrec.apps.bodylimit import BodyLimit
from genrec.apps.errors import ApiError, error_body, on_api_error
from genrec.apps.observe import Observe
from genrec.apps.ratelimit import RateLimiter
from genrec.apps.readiness import Readiness
from genrec.heap import freeze_startup_heap

log = logging.getLogger("genrec.http")


def create_base_app(name: str, *, title: str, version: str = "0.1.0", ready: Readiness | None = None,
                    limits: RateLimiter | None = None, cors_origins: list[str] | None = None) -> FastAPI:
    """The common app. `ready`: the stores the app cannot work without (/readyz answers 503 while
    one does not answer; None: ready whenever the process is up). `limits` turns on per-client
    rate limits (public apps only: event deliveries from Kafka must never be throttled into
    redelivery storms). Every app refuses a body over ``genrec.apps.bodylimit.MAX_BODY_BYTES``."""
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # func-python drives start/stop itself (AsgiFunction); uvicorn and tests come through here.
        start_app(app)
        yield
        stop_app(app)

    app = FastAPI(title=title, version=version, lifespan=lifespan)
    registry = CollectorRegistry()
    requests = Counter("http_requests", "HTTP requests", ["service", "route", "status"], registry=registry)
    latency = Histogram("http_request_duration_seconds", "HTTP request latency", ["service", "route"],
                        registry=registry, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))
    app.state.registry = registry
    app.state.service_name = name
    app.state.readiness = ready
    app.add_exception_handler(ApiError, on_api_error)
    app.add_middleware(BodyLimit)  # inside `Observe` below: a 413 is counted and carries the request id
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["authorization", "content-type", "x-api-key", "x-request-id", "ce-*"],
                           max_age=600)

    app.add_middleware(Observe, service=name, requests=requests, latency=latency, limits=limits)  # outermost

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        return JSONResponse(error_body(".".join(loc) or "body", err.get("msg", "invalid")), status_code=422)

    app.include_router(probes)
    return app


# Liveness, readiness and metrics: every app's, read from its state (``readiness``, ``registry``).
probes = APIRouter(include_in_schema=False)


@probes.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@probes.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> Response:
    """200 while every store the app needs answers (``genrec.apps.readiness``), else 503; each named."""
    ready: Readiness | None = request.app.state.readiness
    answers = await run_in_threadpool(ready.dependencies) if ready else {}
    ok = all(answers.values())
    return JSONResponse({"status": "ready" if ok else "not ready",
                         "dependencies": {name: "ok" if up else "down" for name, up in answers.items()}},
                        status_code=200 if ok else 503)


@probes.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)


def start_app(app: FastAPI) -> None:
    """The app's own start hook, then the started heap frozen (``genrec.heap``)."""
    if on_start := getattr(app.state, "on_start", None):
        on_start()
    freeze_startup_heap()


def stop_app(app: FastAPI) -> None:
    """The app's own stop hook, then its readiness probes' clients."""
    if on_stop := getattr(app.state, "on_stop", None):
        on_stop()
    if readiness := getattr(app.state, "readiness", None):
        readiness.close()


async def read_events(request: Request, *, received: datetime | None = None,
                      extensions: Mapping[str, str] | None = None):
    """The request's CloudEvents, or the 4xx response that says why there are none (the body's
    size limit is ``BodyLimit``'s, applied while it is read); ``received``, ``extensions``: as
    ``parse_http`` takes them."""
    from genrec.events.codec import EventError, parse_http

    try:
        return parse_http(request.headers, await request.body(), received=received, extensions=extensions)
    except EventError as exc:
        return JSONResponse(exc.to_json(), status_code=400)
