"""admin-api: the admin app's backend, thin over genrec's stores, analytics and public APIs.

Reads go to the stores (PostgreSQL, Redis), the analytics reader and the recommend API;
every change is either a model-registry operation or an event sent through event capture,
so the admin path exercises what upstream systems do. Viewers read; operators change.
The built admin app (frontend/dist) is served at ``/``; the shopper demo's two endpoints
(/api/v1/shop/*) are public, like the recommend API they wrap.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import httpx
import psycopg
import psycopg_pool
import redis
from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from genrec.apps import admin_queries as q
from genrec.apps.admin_analytics import LiveMetrics, make_reader
from genrec.apps.admin_auth import ApiError, Principal, require
from genrec.apps.admin_clients import EventSender, RecommendClient
from genrec.apps.common import create_base_app
from genrec.apps.readiness import Readiness
from genrec.config import Settings, get_settings
from genrec.events.contracts import INTERACTION, ITEM_UPSERTED, Identifier, InteractionType, ItemUpsertedData
from genrec.pipelines.publish import serve_canary
from genrec.stores.model_registry import ModelRegistry, RegistryError
from genrec.stores.resources import Resources
from genrec.workloads import WORKLOADS, Workload

log = logging.getLogger("genrec.admin")
audit = logging.getLogger("genrec.admin.audit")

FRONTEND_DIST = Path(__file__).resolve().parents[3] / "frontend" / "dist"
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
UserIdPath = Annotated[str, PathParam(min_length=1, max_length=256, pattern=ID_PATTERN)]
VersionPath = Annotated[str, PathParam(min_length=1, max_length=256, pattern=ID_PATTERN)]
Hours = Annotated[float, Query(gt=0, le=24 * 90, description="Look back this many hours")]
STORE_DOWN = (psycopg.OperationalError, psycopg_pool.PoolTimeout, redis.ConnectionError, redis.TimeoutError)
# The overview's health view: every other workload, at its own readiness path.
WATCHED = tuple(w for w in WORKLOADS if w.name != "admin-api")

_bearer = HTTPBearer(auto_error=False, description="Admin token or HS256 JWT with a 'role' claim")


def _viewer(_c: HTTPAuthorizationCredentials | None = Depends(_bearer),
            p: Principal = Depends(require("viewer"))) -> Principal:
    return p


def _operator(request: Request, _c: HTTPAuthorizationCredentials | None = Depends(_bearer),
              p: Principal = Depends(require("operator"))) -> Principal:
    # The audit trail: every change an operator makes, with who made it.
    audit.info("%s %s by %s (%s)", request.method, request.url.path, p.name, p.via)
    return p


Viewer = Annotated[Principal, Depends(_viewer)]
Operator = Annotated[Principal, Depends(_operator)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InteractionRequest(_Body):
    item_id: Identifier
    event_type: InteractionType = "click"
    value: float | None = Field(default=None, allow_inf_nan=False)


class TrafficRequest(_Body):
    weight: float = Field(ge=0.0, le=1.0, description="Share of requests this canary serves")


class StatusRequest(_Body):
    status: Literal["candidate", "canary", "retired"]
    traffic_weight: float | None = Field(default=None, ge=0.0, le=1.0)


class FeedbackRequest(_Body):
    user_id: Identifier
    item_id: Identifier
    feedback: Literal["like", "skip", "click", "add_to_cart", "purchase", "view"]
    request_id: str | None = Field(default=None, max_length=256)


def _model(m: Any, split: dict[str, float]) -> dict[str, Any]:
    return {"version": m.version, "status": m.status, "traffic_weight": m.traffic_weight,
            "traffic_share": split.get(m.version, 0.0), "artifact_uri": m.artifact_uri,
            "serving_uri": m.serving_uri, "metrics": m.metrics, "created_at": m.created_at,
            "updated_at": m.updated_at, "promoted_at": m.promoted_at}


def create_app(s: Settings | None = None, *, static_dir: Path | None = FRONTEND_DIST) -> FastAPI:
    s = s or get_settings()
    # PostgreSQL: the catalogue, users and the model registry; the analytics and live views
    # answer 503 for a missing store on their own.
    app = create_base_app("admin-api", title="genrec admin API", ready=Readiness(s, ("postgres",)))
    app.state.settings = s
    res = Resources(s)
    reader = make_reader(s)
    live = LiveMetrics(s, reader)
    events = EventSender(s)
    recommend = RecommendClient(s)

    def on_stop() -> None:
        # The async clients belong to the server's event loop, which is closing them with the process.
        res.close()
        live.close()

    app.state.on_stop = on_stop

    @app.exception_handler(ApiError)
    async def on_api_error(_r: Request, exc: ApiError) -> JSONResponse:
        headers = {"www-authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    for kind in STORE_DOWN:
        @app.exception_handler(kind)
        async def on_store_down(_r: Request, exc: Exception) -> JSONResponse:
            log.warning("store unavailable: %s", exc)
            return JSONResponse({"error": "unavailable", "field": "", "message": f"store unavailable: {exc}"},
                                status_code=503, headers={"retry-after": "1"})

    def registry() -> ModelRegistry:
        return ModelRegistry(res.pool)

    # -- auth and overview ------------------------------------------------------------------
    @app.get("/api/v1/auth/me", summary="Who the presented token belongs to, and its role", tags=["auth"])
    def me(p: Viewer) -> dict[str, str]:
        return {"name": p.name, "role": p.role, "via": p.via}

    @app.get("/api/v1/overview", summary="Counts, model versions and service health", tags=["dashboard"])
    async def overview(_p: Viewer) -> dict[str, Any]:
        async def health(w: Workload) -> bool:
            try:
                async with httpx.AsyncClient(timeout=1.5) as c:
                    return (await c.get(s.function_url(w.name) + w.health[0])).status_code == 200
            except httpx.HTTPError:
                return False

        def counts() -> dict[str, Any]:
            from genrec.stores.postgres import transaction

            with transaction(res.pool) as conn:
                items, with_emb, with_sid = conn.execute(
                    "SELECT count(*), count(embedding), count(semantic_ids) FROM items WHERE status = 'active'"
                ).fetchone()
            reg = registry()
            return {"items": items, "items_with_embedding": with_emb, "items_with_semantic_ids": with_sid,
                    "users": res.users.count(), "active_users_30d": q.active_users(res.pool),
                    "traffic_split": reg.traffic_split(),
                    "production": getattr(reg.production(), "version", None)}

        data, *up = await asyncio.gather(run_in_threadpool(counts), *(health(w) for w in WATCHED))
        return {**data, "services": {w.key: ok for w, ok in zip(WATCHED, up, strict=True)}}

    # -- analytics and live metrics -----------------------------------------------------------
    @app.get("/api/v1/analytics/latency", tags=["dashboard"], summary="Requests and p50/p95/p99 per hour")
    def latency(_p: Viewer, hours: Hours = 24, algorithm_version: str = Query("", max_length=256)) -> list[dict]:
        return reader.latency(hours, algorithm_version)

    @app.get("/api/v1/analytics/ctr", tags=["dashboard"], summary="Click-through per model version")
    def ctr(_p: Viewer, hours: Hours = 24, window_s: int = Query(1800, gt=0, le=7 * 86400)) -> list[dict]:
        return reader.ctr(hours, window_s)

    @app.get("/api/v1/analytics/coverage", tags=["dashboard"], summary="Catalogue coverage per model version")
    def coverage(_p: Viewer, hours: Hours = 24) -> list[dict]:
        return reader.coverage(hours, max(1, res.catalog.count()))

    @app.get("/api/v1/analytics/versions", tags=["dashboard"], summary="Model versions side by side")
    def versions(_p: Viewer, hours: Hours = 24) -> list[dict]:
        return reader.versions(hours, max(1, res.catalog.count()))

    @app.get("/api/v1/metrics/live", tags=["dashboard"], summary="One live metrics snapshot")
    def live_snapshot(_p: Viewer) -> dict[str, Any]:
        return live.snapshot()

    @app.get("/api/v1/metrics/stream", tags=["dashboard"], response_class=StreamingResponse,
             summary="Server-sent events: a live metrics snapshot every `interval` seconds")
    async def live_stream(request: Request, _p: Viewer, interval: float = Query(2.0, ge=0.5, le=60),
                          limit: int | None = Query(None, ge=1, le=100_000)) -> StreamingResponse:
        async def events():
            sent = 0
            yield "retry: 3000\n\n"
            while limit is None or sent < limit:
                snap = await run_in_threadpool(live.snapshot)
                yield f"event: metrics\ndata: {json.dumps(snap, default=str)}\n\n"
                sent += 1
                if limit is not None and sent >= limit:
                    break
                for _ in range(int(interval * 10)):  # notice a closed tab within 0.1 s
                    if await request.is_disconnected():
                        return
                    await asyncio.sleep(0.1)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    # -- catalogue ---------------------------------------------------------------------------
    @app.get("/api/v1/items", tags=["catalogue"], summary="Search and filter items (keyset pages)")
    def list_items(_p: Viewer, q_: str = Query("", alias="q", max_length=200),
                   category: str | None = Query(None, max_length=512),
                   status: Literal["active", "inactive", "deleted", "any"] = "active",
                   cursor: str | None = Query(None, max_length=256),
                   limit: int = Query(25, ge=1, le=200)) -> dict[str, Any]:
        items, nxt = q.search_items(res.pool, q=q_.strip(), category=category or None,
                                    status=None if status == "any" else status, after=cursor, limit=limit)
        return {"items": items, "next_cursor": nxt}

    @app.get("/api/v1/categories", tags=["catalogue"], summary="Category tree with active item counts")
    def categories(_p: Viewer) -> list[dict]:
        return q.category_tree(q.category_counts(res.pool))

    @app.get("/api/v1/items/{item_id}", tags=["catalogue"],
             summary="One item: text, enrichment, embedding summary, neighbours, semantic IDs")
    def item_detail(_p: Viewer, item_id: UserIdPath, neighbours: int = Query(8, ge=0, le=50)) -> dict[str, Any]:
        it = res.catalog.get(item_id)
        if it is None:
            raise ApiError(404, "item_id", f"no item {item_id!r}", "not_found")
        near = res.catalog.similar_to(item_id, neighbours) if neighbours and it.embedding is not None else []
        names = q.titles(res.pool, [n.item_id for n in near])
        emb = None
        if it.embedding is not None:
            emb = {"dim": int(it.embedding.shape[0]), "norm": float((it.embedding ** 2).sum() ** 0.5),
                   "head": [round(float(v), 4) for v in it.embedding[:8]]}
        attrs = dict(it.attributes or {})
        enrichment = attrs.get("enrichment") or {k: attrs[k] for k in ("tags", "summary") if k in attrs}
        try:
            popularity = res.hot.popularity(item_id)
        except (redis.ConnectionError, redis.TimeoutError):
            popularity = None
        return {
            "item_id": it.item_id, "title": it.title, "description": it.description,
            "category_path": it.category_path, "attributes": attrs, "enrichment": enrichment,
            "status": it.status, "semantic_ids": it.semantic_ids, "embedding": emb, "popularity": popularity,
            "created_at": it.created_at, "updated_at": it.updated_at,
            "neighbours": [{"item_id": n.item_id, "score": n.score, **names.get(n.item_id, {})} for n in near],
        }

    @app.post("/api/v1/items", status_code=202, tags=["catalogue"],
              summary="Upsert an item: sent as an item.upserted event through event capture")
    async def upsert_item(body: ItemUpsertedData, _p: Operator) -> dict[str, str]:
        return {"event_id": await events.send(ITEM_UPSERTED, body), "item_id": body.item_id}

    # -- users ---------------------------------------------------------------------------------
    @app.get("/api/v1/users", tags=["users"], summary="Recently active users")
    def list_users(_p: Viewer, limit: int = Query(50, ge=1, le=500)) -> list[dict]:
        return q.recent_users(res.pool, limit)

    @app.get("/api/v1/users/{user_id}", tags=["users"],
             summary="A user: profile, recent events, hot sequence and features")
    def user_detail(_p: Viewer, user_id: UserIdPath, events_limit: int = Query(20, ge=1, le=200)) -> dict[str, Any]:
        profile = res.users.get(user_id)
        recent = res.events.recent(user_id, events_limit)
        try:
            sequence = res.hot.recent_items(user_id, 50)
            features = res.hot.user_features(user_id)
            cached = res.hot.cached_recommendations(user_id) is not None
        except (redis.ConnectionError, redis.TimeoutError):
            sequence, features, cached = [], {}, False
        names = q.titles(res.pool, list({*sequence, *(e.item_id for e in recent)}))
        return {
            "user_id": user_id, "known": bool(profile or recent or sequence),
            "profile": profile.profile if profile else {}, "preferences": profile.preferences if profile else {},
            "last_active_at": profile.last_active_at if profile else None,
            "recent_events": [{"event_id": e.event_id, "item_id": e.item_id, "event_type": e.event_type,
                               "value": e.value, "ts": e.ts, "source": e.source,
                               "title": names.get(e.item_id, {}).get("title", "")} for e in recent],
            "sequence": [{"item_id": i, "title": names.get(i, {}).get("title", "")} for i in sequence],
            "features": features, "cached_recommendations": cached,
        }

    @app.get("/api/v1/users/{user_id}/recommendations", tags=["users"],
             summary="Live recommendations from the recommend API (scores, reasons, serving path)")
    async def user_recommendations(_p: Viewer, user_id: UserIdPath, count: int = Query(10, ge=1, le=50),
                                   category: str | None = Query(None, max_length=512)) -> dict[str, Any]:
        return await recommend.call("GET", f"/user/{quote(user_id, safe='')}",
                                    params={"count": count, "category": category})

    @app.post("/api/v1/users/{user_id}/interactions", status_code=202, tags=["users"],
              summary="Send a test interaction (an interaction event through event capture)")
    async def test_interaction(user_id: UserIdPath, body: InteractionRequest, _p: Operator) -> dict[str, str]:
        data = {"user_id": user_id, "item_id": body.item_id, "event_type": body.event_type, "value": body.value,
                "context": {"origin": "admin-test"}}
        return {"event_id": await events.send(INTERACTION, data)}

    # -- semantic IDs and embeddings ----------------------------------------------------------------
    @app.get("/api/v1/semantic-ids", tags=["semantic ids"],
             summary="Codes one level below a prefix, with item counts and sample titles")
    def semantic_ids(_p: Viewer, prefix: str = Query("", max_length=200, pattern=r"^(\d{1,6}(,\d{1,6})*)?$",
                                                      description="Comma-separated codes, each below 1,000,000"),
                     items: int = Query(0, ge=0, le=100)) -> dict[str, Any]:
        codes = [int(c) for c in prefix.split(",") if c]
        level = q.semantic_level(res.pool, codes)
        if items:
            level["items_sample"] = q.items_with_prefix(res.pool, codes, items)
        return level

    @app.get("/api/v1/embeddings/projection", tags=["embeddings"],
             summary="Item embeddings projected to 3-D by PCA (a stable sample)")
    def projection(_p: Viewer, limit: int = Query(1500, ge=10, le=10_000),
                   category: str | None = Query(None, max_length=512)) -> dict[str, Any]:
        proj = q.project_embeddings(res.pool, limit=limit, category=category or None)
        return {"points": proj.points, "explained_variance": proj.explained_variance, "total": proj.total,
                "method": "pca"}

    # -- models ----------------------------------------------------------------------------------
    @app.get("/api/v1/models", tags=["models"], summary="Model versions, offline metrics, traffic split")
    def models(_p: Viewer) -> dict[str, Any]:
        reg = registry()
        split = reg.traffic_split()
        return {"versions": [_model(m, split) for m in reg.list()], "traffic_split": split}

    def _registry_call(fn, version: str | None = None) -> dict[str, Any]:
        reg = registry()
        if version is not None and reg.get(version) is None:
            raise ApiError(404, "version", f"unknown model version {version!r}", "not_found")
        try:
            m = fn(reg)
        except RegistryError as exc:
            raise ApiError(409, "version" if version else "", str(exc), "conflict") from None
        try:  # a canary's weight is real traffic: the model servers' canary slot follows the registry
            serve_canary(reg, s)
        except (redis.RedisError, OSError) as exc:
            log.warning("canary slot not updated (the registry is): %s", exc)
        return _model(m, reg.traffic_split())

    @app.put("/api/v1/models/{version}/traffic", tags=["models"], summary="Set a canary's traffic weight")
    def set_traffic(version: VersionPath, body: TrafficRequest, _p: Operator) -> dict[str, Any]:
        def apply(r: ModelRegistry) -> Any:
            # A candidate given traffic becomes a canary ("start a canary"); production/retired refuse (409).
            if r.get(version).status == "candidate":
                return r.set_status(version, "canary", traffic_weight=body.weight)
            return r.set_traffic(version, body.weight)

        return _registry_call(apply, version)

    @app.put("/api/v1/models/{version}/status", tags=["models"], summary="Move a version to candidate/canary/retired")
    def set_status(version: VersionPath, body: StatusRequest, _p: Operator) -> dict[str, Any]:
        return _registry_call(lambda r: r.set_status(version, body.status, traffic_weight=body.traffic_weight),
                              version)

    @app.post("/api/v1/models/{version}/promote", tags=["models"], summary="Make a version production")
    def promote(version: VersionPath, _p: Operator) -> dict[str, Any]:
        return _registry_call(lambda r: r.promote(version), version)

    @app.post("/api/v1/models/rollback", tags=["models"], summary="Restore the previous production version")
    def rollback(_p: Operator) -> dict[str, Any]:
        return _registry_call(lambda r: r.rollback())

    # -- shopper demo (public, like the recommend API it wraps) --------------------------------------
    @app.get("/api/v1/shop/recommendations", tags=["shop"], summary="Recommendations for the shopper demo")
    async def shop_recommendations(user_id: str = Query(min_length=1, max_length=256, pattern=ID_PATTERN),
                                   count: int = Query(8, ge=1, le=50)) -> dict[str, Any]:
        return await recommend.call("POST", "/generate", json={"user_id": user_id, "count": count,
                                                               "context": {"surface": "shop-demo"}})

    @app.post("/api/v1/shop/feedback", status_code=202, tags=["shop"], summary="Like/skip from the shopper demo")
    async def shop_feedback(body: FeedbackRequest) -> dict[str, Any]:
        payload = body.model_dump(exclude_none=True)
        return await recommend.call("POST", "/feedback", json=payload, expect=(200, 202))

    _mount_frontend(app, static_dir)
    return app


def _mount_frontend(app: FastAPI, static_dir: Path | None) -> None:
    """Serve the built admin app at / (after every API route, so those win)."""
    if static_dir is not None and (static_dir / "index.html").exists():
        app.mount("/", StaticFiles(directory=static_dir, html=True), name="frontend")
        return

    @app.get("/", include_in_schema=False)
    async def not_built() -> HTMLResponse:
        return HTMLResponse("<h1>genrec admin API</h1><p>The admin app is not built: run <code>make install</code>"
                            " (npm ci and vite build in frontend/). The API is at <a href='/docs'>/docs</a>.</p>",
                            status_code=200)
