"""recommend: the main API. Thin HTTP layer over genrec.recommend.service.

Every served list is emitted as a `recommendation.served` event (for analytics) without
waiting for the broker; feedback becomes an interaction event, acknowledged durably.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

from fastapi import FastAPI, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Gauge

from genrec.apps.common import create_base_app, error_body
from genrec.apps.readiness import Readiness
from genrec.config import Settings, get_settings
from genrec.events.codec import EventError, new_event
from genrec.events.contracts import INTERACTION, RECOMMENDATION_SERVED, Identifier
from genrec.events.publisher import BrokerUnavailable, EventPublisher
from genrec.recommend.pages import PageTokenError
from genrec.recommend.schemas import (
    FeedbackRequest,
    Filters,
    GenerateRequest,
    RecommendationList,
    SessionRequest,
)
from genrec.recommend.service import ModelBackend, RecommendService
from genrec.stores.resources import Resources

log = logging.getLogger("genrec.recommend")
SOURCE = "genrec/recommend"


def default_model_backend(s: Settings) -> ModelBackend | None:
    """The model-server client, when the serving package is installed."""
    try:
        from genrec.recommend.model_backend import TritonModelBackend
    except ImportError:
        return None
    return TritonModelBackend(s)


def create_app(s: Settings | None = None, model: ModelBackend | None = None) -> FastAPI:
    s = s or get_settings()
    res = Resources(s)
    state: dict[str, object] = {}

    def service() -> RecommendService:
        if "service" not in state:
            state["service"] = RecommendService(s, res, model if model is not None else default_model_backend(s))
        return state["service"]  # type: ignore[return-value]

    def publisher(kind: str = "feedback") -> EventPublisher:
        """``feedback``: acknowledged before answering; ``served``: fire-and-forget logs, batched
        (linger) so the broker's produce rate, and its storage writes, do not follow the request rate."""
        if kind not in state:
            linger = s.kafka.served_log_linger_ms if kind == "served" else None
            state[kind] = EventPublisher(s, timeout_s=s.kafka.publish_timeout_s, linger_ms=linger)
        return state[kind]  # type: ignore[return-value]

    def on_stop() -> None:
        for kind in ("feedback", "served"):
            if kind in state:
                publisher(kind).close()
        res.close()

    # Only PostgreSQL (every list's item rows): without Redis, Milvus, the model server or Kafka
    # the API still answers, from its fallbacks (feedback alone answers 503 without Kafka).
    app = create_base_app("recommend", title="genrec recommend API", rate_limit_per_s=s.auth.rate_limit_per_s,
                          cors_origins=s.auth.cors_origins, ready=Readiness(s, ("postgres",)))
    app.state.on_start = lambda: (service(), publisher("feedback"), publisher("served"))
    app.state.on_stop = on_stop
    # Which path served each list (model / cache / vector / popularity / session): the
    # fallback rate and the cache hit ratio are ratios of this counter.
    served_by = Counter("recommendations_served", "Recommendation lists served, by path", ["served_by"],
                        registry=app.state.registry)
    model_version = Gauge("recommend_model_version_info", "Artifact version of the last model-served list",
                          ["version"], registry=app.state.registry)

    def served(result: RecommendationList, started: float) -> RecommendationList:
        latency_ms = (time.perf_counter() - started) * 1000
        served_by.labels(result.served_by).inc()
        if result.served_by in ("model", "session") and state.get("model_version") != result.algorithm_version:
            state["model_version"] = result.algorithm_version
            model_version.clear()  # one series: the version now answering
            model_version.labels(result.algorithm_version).set(1)
        result.debug["latency_ms"] = round(latency_ms, 2)
        try:
            ev = new_event(RECOMMENDATION_SERVED, {
                "request_id": result.request_id, "user_id": result.user_id or "anonymous",
                "items": [i.item_id for i in result.items], "scores": [i.score for i in result.items],
                "algorithm_version": result.algorithm_version, "served_by": result.served_by,
                "latency_ms": latency_ms, "timestamp": datetime.now(UTC).isoformat(),
            }, source=SOURCE, event_id=f"served-{result.request_id}-{uuid.uuid4().hex[:8]}")
            publisher("served").publish_nowait([ev])
        except Exception as exc:  # analytics must never fail a recommendation
            log.warning("served event not emitted: %s", exc)
        return result

    def bad_page(exc: PageTokenError) -> JSONResponse:
        return JSONResponse(error_body("page_token", str(exc)), status_code=400)

    @app.post("/api/v1/recommend/generate", response_model=RecommendationList,
              summary="Generate recommendations for a user")
    def generate(req: GenerateRequest):
        started = time.perf_counter()
        try:
            result = service().for_user(req.user_id, req.count, exclude=req.exclude, filters=req.filters,
                                        page_token=req.page_token)
        except PageTokenError as exc:
            return bad_page(exc)
        return served(result, started)

    @app.get("/api/v1/recommend/user/{user_id}", response_model=RecommendationList,
             summary="Recommendations for a user (GET form)")
    def for_user(user_id: Identifier = Path(max_length=256), count: int = Query(10, ge=1, le=50),
                 category: str | None = Query(None, max_length=512),
                 page_token: str | None = Query(None, max_length=200)):
        started = time.perf_counter()
        try:
            result = service().for_user(user_id, count, filters=Filters(category=category), page_token=page_token)
        except PageTokenError as exc:
            return bad_page(exc)
        return served(result, started)

    @app.post("/api/v1/recommend/session", response_model=RecommendationList,
              summary="Recommendations for an anonymous session's item list")
    def for_session(req: SessionRequest):
        started = time.perf_counter()
        return served(service().for_session(req.items, req.count, filters=req.filters), started)

    @app.get("/api/v1/recommend/item/{item_id}/similar", response_model=RecommendationList,
             summary="Nearest items to an item")
    def similar(item_id: Identifier = Path(max_length=256), count: int = Query(10, ge=1, le=50)):
        result = service().similar(item_id, count)
        if result is None:
            raise HTTPException(404, detail=f"unknown item {item_id!r}")
        return result

    @app.get("/api/v1/recommend/popular", response_model=RecommendationList,
             summary="Popular items, optionally within a category")
    def popular(category: str = Query("", max_length=512), count: int = Query(10, ge=1, le=50),
                page_token: str | None = Query(None, max_length=200)):
        try:
            return service().popular(category, count, page_token)
        except PageTokenError as exc:
            return bad_page(exc)

    @app.post("/api/v1/recommend/feedback", status_code=202, summary="Feedback on a recommended item")
    async def feedback(req: FeedbackRequest) -> JSONResponse:
        try:
            ev = new_event(INTERACTION, {
                "user_id": req.user_id, "item_id": req.item_id, "event_type": req.feedback,
                "context": {"request_id": req.request_id} if req.request_id else {},
            }, source=SOURCE)
        except EventError as exc:
            return JSONResponse(exc.to_json(), status_code=400)
        try:
            await publisher("feedback").publish([ev])
        except BrokerUnavailable as exc:
            return JSONResponse(error_body("", f"{exc}; retry", "broker_unavailable"), status_code=503,
                                headers={"retry-after": "1"})
        return JSONResponse({"event_id": ev.id}, status_code=202)

    @app.exception_handler(HTTPException)
    async def on_http_error(_request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body("path", str(exc.detail), "not_found" if exc.status_code == 404 else "error"),
                            status_code=exc.status_code)

    return app
