"""recommend: the main API. Thin HTTP layer over genrec.recommend.service.

Every served list is emitted as a `recommendation.served` event (for analytics) without
waiting for the broker; feedback becomes an interaction event, acknowledged durably.

Modules: ``lists`` (the recommendation lists), ``feedback``, ``served`` (what happens to
every served list) and ``deps`` (the service and publishers, as typed dependencies).
"""

from __future__ import annotations

import psycopg
import redis
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from genrec.apps.common import create_base_app
from genrec.apps.errors import ApiError
from genrec.apps.outages import answer_faults
from genrec.apps.ratelimit import RateLimiter
from genrec.apps.readiness import Readiness
from genrec.apps.recommend import feedback, lists
from genrec.apps.recommend.deps import RecommendState, default_model_backend
from genrec.config import Settings, get_settings
from genrec.recommend.pages import PageTokenError
from genrec.recommend.service import ModelBackend

__all__ = ["create_app", "default_model_backend"]


def create_app(s: Settings | None = None, model: ModelBackend | None = None) -> FastAPI:
    s = s or get_settings()
    # Only PostgreSQL (every list's item rows): without Redis, Milvus, the model server or Kafka
    # the API still answers, from its fallbacks (feedback alone answers 503 without Kafka).
    app = create_base_app("recommend", title="genrec recommend API", limits=RateLimiter(s.auth),
                          cors_origins=s.auth.cors_origins, ready=Readiness(s, ("postgres",)))
    app.state.recommend = state = RecommendState(s, model, app.state.registry)
    app.state.on_start = state.start
    app.state.on_stop = state.stop
    app.add_exception_handler(PageTokenError, _bad_page_token)
    # The lists degrade rather than fail (genrec.recommend.service); what still reaches here (the
    # feedback path, a store error the service does not expect) answers 503 naming the store.
    answer_faults(app, psycopg.Error, redis.RedisError)
    app.add_exception_handler(HTTPException, _http_error)
    app.include_router(lists.router)
    app.include_router(feedback.router)
    return app


async def _bad_page_token(_r: Request, exc: PageTokenError) -> JSONResponse:
    return ApiError(400, "page_token", str(exc)).response()


async def _http_error(_r: Request, exc: HTTPException) -> JSONResponse:
    """FastAPI's own HTTPExceptions (a body it cannot parse, say) in the common error shape."""
    error = "not_found" if exc.status_code == 404 else "error"
    return ApiError(exc.status_code, "path", str(exc.detail), error).response()
