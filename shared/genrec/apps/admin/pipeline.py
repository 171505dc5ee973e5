"""The event pipeline as the dashboard shows it: how far each subscription is behind its topic.

Realtime subscriptions are the freshness path (a lag there is a click not yet in the next list);
bulk ones (the event history, analytics, LLM tags) may lag without harm and catch up in big
batches when the cores are free (genrec.workloads). Read from the broker, so it is the same view
locally and in production: the committed offset of each consumer group against its topic's end.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from genrec.apps.admin.deps import AppSettings, PipelineLagCache, Viewer
from genrec.config import Settings
from genrec.events.subscriptions import SUBSCRIPTIONS, consumer_groups

router = APIRouter()


@router.get("/api/v1/pipeline/lag", summary="Records each subscription has not yet handled, by priority",
            tags=["dashboard"])
async def pipeline_lag(_p: Viewer, s: AppSettings, cache: PipelineLagCache) -> dict[str, Any]:
    # Measuring costs the broker a fetch per partition and group: the dashboards polling it share one.
    return await run_in_threadpool(cache.get, "lag", lambda _key: measure_lag(s))


def measure_lag(s: Settings) -> dict[str, Any]:
    """Each subscription's lag; with the broker away, the same rows without lag and the reason."""
    from genrec.apps.outages import classify
    from genrec.events.kafka import consumer_lag

    lag: dict[tuple[str, str], int | None] | None = None  # a subscription's None: its fetch did not answer
    error = None
    try:
        lag = consumer_lag(s, consumer_groups(s), timeout_s=3.0)
    except Exception as exc:
        fault = classify(exc)
        if fault is None:
            raise
        error = fault.message
    rows = [{"function": sub.function, "topic": sub.topic(s), "group": sub.group_id, "priority": sub.priority,
             "max_batch": sub.max_batch, "lag": None if lag is None else lag.get((sub.group_id, sub.topic(s)), 0)}
            for sub in SUBSCRIPTIONS]
    return {"measured_at": datetime.now(UTC).isoformat(), "error": error, "subscriptions": rows}
