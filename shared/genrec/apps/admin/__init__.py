"""admin-api: the admin app's backend, thin over genrec's stores, analytics and public APIs.

Reads go to the stores (PostgreSQL, Redis), the analytics reader and the recommend API;
every change is either a model-registry operation or an event sent through event capture,
so the admin path exercises what upstream systems do. Viewers read; operators change.
The built admin app (frontend/dist) is served at ``/``; the shopper demo's two endpoints
(/api/v1/shop/*) are public, like the recommend API they wrap.

One module per area, each an ``APIRouter`` over the typed dependencies of ``deps``:
``overview`` (who am I, counts and health), ``metrics`` (analytics and the live feed),
``catalog``, ``users``, ``semantic`` (Semantic IDs and embeddings), ``models`` (the registry),
``shop`` (the shopper demo) and ``frontend`` (the built app). Their SQL is in
``genrec.apps.admin_queries``; token checks in ``genrec.apps.admin_auth``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import psycopg_pool
import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from genrec.apps.admin import catalog, metrics, models, overview, semantic, shop, users
from genrec.apps.admin.deps import AdminServices
from genrec.apps.admin.frontend import FRONTEND_DIST, mount_frontend
from genrec.apps.common import create_base_app
from genrec.apps.errors import ApiError
from genrec.apps.ratelimit import RateLimiter
from genrec.apps.readiness import Readiness
from genrec.config import Settings, get_settings

log = logging.getLogger("genrec.admin")

STORE_DOWN = (psycopg.OperationalError, psycopg_pool.PoolTimeout, redis.ConnectionError, redis.TimeoutError)
ROUTERS = (overview.router, metrics.router, catalog.router, users.router, semantic.router, models.router,
           shop.router)

__all__ = ["FRONTEND_DIST", "create_app"]


def create_app(s: Settings | None = None, *, static_dir: Path | None = FRONTEND_DIST) -> FastAPI:
    s = s or get_settings()
    # PostgreSQL: the catalogue, users and the model registry; the analytics and live views
    # answer 503 for a missing store on their own.
    app = create_base_app("admin-api", title="genrec admin API", limits=RateLimiter(s.auth),
                          ready=Readiness(s, ("postgres",)))
    app.state.settings = s  # the token checks read it (genrec.apps.admin_auth.require)
    app.state.services = services = AdminServices.open(s)
    app.state.on_stop = services.close
    for kind in STORE_DOWN:
        app.add_exception_handler(kind, _store_down)
    for router in ROUTERS:
        app.include_router(router)
    mount_frontend(app, static_dir)
    return app


async def _store_down(_r: Request, exc: Exception) -> JSONResponse:
    # The client learns which store, never the driver's text (hosts, ports, user names): that goes to the log.
    store = "Redis" if isinstance(exc, redis.RedisError) else "PostgreSQL"
    log.warning("%s unavailable: %s", store, exc)
    return ApiError.unavailable(f"{store} is unavailable; try again shortly").response()
