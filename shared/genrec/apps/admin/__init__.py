"""admin-api: the admin app's backend, thin over genrec's stores, analytics and public APIs.

Reads go to the stores (PostgreSQL, Redis), the analytics reader and the recommend API;
every change is either a model-registry operation or an event sent through event capture,
so the admin path exercises what upstream systems do. Viewers read; operators change.
The built admin app (frontend/dist) is served at ``/``; the shopper demo's two endpoints
(/api/v1/shop/*) are public, like the recommend API they wrap.

One module per area, each an ``APIRouter`` over the typed dependencies of ``deps``:
``overview`` (who am I, counts and health), ``metrics`` (analytics and the live feed),
``pipeline`` (each subscription's consumer lag),
``catalog``, ``users``, ``semantic`` (Semantic IDs and embeddings), ``models`` (the registry),
``shop`` (the shopper demo) and ``frontend`` (the built app). Their SQL is in
``genrec.apps.admin_queries``; token checks in ``genrec.apps.admin_auth``.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import redis
from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI

from genrec.apps.admin import catalog, metrics, models, overview, pipeline, semantic, shop, users
from genrec.apps.admin.deps import AdminServices
from genrec.apps.admin.frontend import FRONTEND_DIST, mount_frontend
from genrec.apps.common import create_base_app
from genrec.apps.outages import answer_faults
from genrec.apps.ratelimit import RateLimiter
from genrec.apps.readiness import Readiness
from genrec.config import Settings, get_settings

# The drivers of the stores the handlers read (PostgreSQL, Redis, S3 for artifacts; none reads
# Milvus, whose client would import pandas): an outage answers 503 naming the store, never the
# driver's text (hosts, ports, user names).
DRIVER_ERRORS = (psycopg.Error, redis.RedisError, BotoCoreError, ClientError, ConnectionError, TimeoutError)
ROUTERS = (overview.router, metrics.router, pipeline.router, catalog.router, users.router, semantic.router,
           models.router, shop.router)

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
    answer_faults(app, *DRIVER_ERRORS)
    for router in ROUTERS:
        app.include_router(router)
    mount_frontend(app, static_dir)
    return app

