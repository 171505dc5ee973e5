"""Who is asking, and the dashboard's first view: counts, model versions, service health."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from genrec.api.health import address_of, serving
from genrec.apps import admin_queries as q
from genrec.apps.admin.deps import AppSettings, Stores, Viewer
from genrec.config import Settings
from genrec.stores.resources import Resources
from genrec.workloads import WORKLOADS, Workload

router = APIRouter()
# The overview's health view: every other workload, at its own readiness path.
WATCHED = tuple(w for w in WORKLOADS if w.name != "admin-api")


@router.get("/api/v1/auth/me", summary="Who the presented token belongs to, and its role", tags=["auth"])
def me(p: Viewer) -> dict[str, str]:
    return {"name": p.name, "role": p.role, "via": p.via}


@router.get("/api/v1/overview", summary="Counts, model versions and service health", tags=["dashboard"])
async def overview(_p: Viewer, s: AppSettings, res: Stores) -> dict[str, Any]:
    data, *up = await asyncio.gather(run_in_threadpool(_counts, res), *(_healthy(s, w) for w in WATCHED))
    return {**data, "services": {w.key: ok for w, ok in zip(WATCHED, up, strict=True)}}


async def _healthy(s: Settings, w: Workload) -> bool:
    if w.grpc:
        return await run_in_threadpool(serving, address_of(s.function_url(w.name)), timeout_s=1.5)
    try:
        async with httpx.AsyncClient(timeout=1.5) as c:
            return (await c.get(s.function_url(w.name) + w.health[0])).status_code == 200
    except httpx.HTTPError:
        return False


def _counts(res: Resources) -> dict[str, Any]:
    reg = res.registry
    return {**q.item_counts(res.pool), "users": res.users.count(), "active_users_30d": q.active_users(res.pool),
            "traffic_split": reg.traffic_split(), "production": getattr(reg.production(), "version", None)}
