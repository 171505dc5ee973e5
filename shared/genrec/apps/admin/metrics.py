"""Serving analytics (latency, click-through, coverage, versions) and the live metrics feed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from genrec.apps.admin.deps import Analytics, Hours, Live, Stores, Viewer
from genrec.apps.admin_analytics import LiveMetrics

router = APIRouter(tags=["dashboard"])


@router.get("/api/v1/analytics/latency", summary="Requests and p50/p95/p99 per hour")
def latency(_p: Viewer, reader: Analytics, hours: Hours = 24,
            algorithm_version: str = Query("", max_length=256)) -> list[dict]:
    return reader.latency(hours, algorithm_version)


@router.get("/api/v1/analytics/ctr", summary="Click-through per model version")
def ctr(_p: Viewer, reader: Analytics, hours: Hours = 24,
        window_s: int = Query(1800, gt=0, le=7 * 86400)) -> list[dict]:
    return reader.ctr(hours, window_s)


@router.get("/api/v1/analytics/coverage", summary="Catalogue coverage per model version")
def coverage(_p: Viewer, reader: Analytics, res: Stores, hours: Hours = 24) -> list[dict]:
    return reader.coverage(hours, max(1, res.catalog.count()))


@router.get("/api/v1/analytics/ab", summary="The live A/B: canary against production, with intervals and a test")
def ab(_p: Viewer, reader: Analytics, hours: Hours = 24,
       margin: float = Query(0.0, ge=0, le=1, description="How much worse (a share of production's rate) "
                                                           "still counts as not worse")) -> dict:
    from genrec.evaluation.abtest import report  # here: genrec.evaluation's package imports torch

    return report(reader.ab(hours), reader.ab(hours, by_hour=True), margin=margin)


@router.get("/api/v1/analytics/versions", summary="Model versions side by side")
def versions(_p: Viewer, reader: Analytics, res: Stores, hours: Hours = 24) -> list[dict]:
    return reader.versions(hours, max(1, res.catalog.count()))


@router.get("/api/v1/metrics/live", summary="One live metrics snapshot")
def live_snapshot(_p: Viewer, live: Live) -> dict[str, Any]:
    return live.snapshot()


@router.get("/api/v1/metrics/stream", response_class=StreamingResponse,
            summary="Server-sent events: a live metrics snapshot every `interval` seconds")
async def live_stream(request: Request, _p: Viewer, live: Live, interval: float = Query(2.0, ge=0.5, le=60),
                      limit: int | None = Query(None, ge=1, le=100_000)) -> StreamingResponse:
    return StreamingResponse(_snapshots(request, live, interval, limit), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


async def _snapshots(request: Request, live: LiveMetrics, interval: float, limit: int | None) -> AsyncIterator[str]:
    """``limit`` snapshots (or until the client goes), ``interval`` seconds apart."""
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
