"""analytics-sink: the bulk consumer of the event streams, and locally the one process that owns
the analytics store.

It stores every interaction in the event history (PostgreSQL ``user_events``: what training
data and the admin app read) and in ClickHouse, and every served list in ClickHouse. It may lag
without harm (feature-update keeps the freshness path), so it takes big batches at low priority.

chDB is ClickHouse in-process with one engine per data path, so locally this service also
answers the admin API's analytics queries over HTTP. In production ClickHouse is a server:
the same sink ingests, and readers may query it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated

from clickhouse_connect.driver.exceptions import ClickHouseError
from fastapi import APIRouter, Depends, FastAPI, Query, Request

from genrec.apps.event_function import create_event_app
from genrec.apps.outages import answer_faults
from genrec.apps.readiness import Readiness
from genrec.config import Settings, get_settings
from genrec.events.codec import ValidEvent
from genrec.events.contracts import INTERACTION, RECOMMENDATION_SERVED, InteractionData, RecommendationServedData
from genrec.stores.analytics import AnalyticsEvent, AnalyticsStore, RecommendationLog
from genrec.stores.events_repo import UserEvent
from genrec.stores.resources import Lazy, Resources


def history_row(ev: ValidEvent[InteractionData]) -> UserEvent:
    d = ev.data
    return UserEvent(event_id=ev.id, source=ev.source, user_id=d.user_id, item_id=d.item_id,
                     event_type=d.event_type, ts=d.timestamp or ev.time, value=d.value, context=d.context)


def interaction_row(ev: ValidEvent[InteractionData]) -> AnalyticsEvent:
    d = ev.data
    return AnalyticsEvent(
        event_id=ev.id, source=ev.source, user_id=d.user_id, item_id=d.item_id, event_type=d.event_type,
        timestamp=d.timestamp or ev.time, value=d.value if d.value is not None else 1.0,
        request_id=str(d.context.get("request_id", "")),
    )


def served_row(ev: ValidEvent[RecommendationServedData]) -> RecommendationLog:
    d = ev.data
    return RecommendationLog(
        request_id=d.request_id, user_id=d.user_id, items=list(d.items), scores=list(d.scores),
        algorithm_version=d.algorithm_version, served_by=d.served_by, latency_ms=d.latency_ms,
        timestamp=d.timestamp, variant=d.variant,
    )


class Sink:
    """Batches of delivered events into the stores, one insert per store and batch (ClickHouse
    wants few large inserts, not many rows)."""

    def __init__(self, s: Settings) -> None:
        self.res = Resources(s)
        self.store = Lazy(lambda: AnalyticsStore(s))

    def on_interactions(self, evs: Sequence[ValidEvent[InteractionData]]) -> list[dict]:
        # The history first: its insert skips events it has (user_event_ids), and ClickHouse
        # collapses re-delivered rows, so a batch retried after either failed is stored once.
        new_ids = self.res.events.insert_new([history_row(ev) for ev in evs])
        self.store.get().insert_events([interaction_row(ev) for ev in evs])
        return [{"id": ev.id, "stored": (ev.source, ev.id) in new_ids} for ev in evs]

    def on_served(self, evs: Sequence[ValidEvent[RecommendationServedData]]) -> list[dict]:
        self.store.get().insert_recommendation_logs([served_row(ev) for ev in evs])
        return [{"id": ev.id} for ev in evs]


async def _store(request: Request) -> AnalyticsStore:
    return await request.app.state.sink.store.aget()


Store = Annotated[AnalyticsStore, Depends(_store)]
HoursQuery = Annotated[float, Query(gt=0, le=24 * 90)]
router = APIRouter()


def _window(hours: float) -> tuple[datetime, datetime]:
    until = datetime.now(UTC) + timedelta(minutes=1)
    return until - timedelta(hours=hours), until


@router.get("/api/v1/analytics/latency", summary="Requests and p50/p95/p99 latency per hour")
def latency(store: Store, hours: HoursQuery = 24, algorithm_version: str = "") -> list[dict]:
    return [asdict(r) for r in store.latency_by_hour(*_window(hours), algorithm_version=algorithm_version)]


@router.get("/api/v1/analytics/ctr", summary="Click-through of served recommendations per model version")
def ctr(store: Store, hours: HoursQuery = 24, window_s: int = Query(1800, gt=0, le=7 * 86400)) -> list[dict]:
    return [asdict(r) for r in store.click_through(*_window(hours), window_s=window_s)]


@router.get("/api/v1/analytics/coverage", summary="Share of the catalogue that was recommended")
def coverage(store: Store, catalog_size: int = Query(gt=0), hours: HoursQuery = 24) -> list[dict]:
    return [asdict(r) for r in store.coverage(*_window(hours), catalog_size)]


@router.get("/api/v1/analytics/ab", summary="The live A/B arms: lists served, clicked and converted (per hour)")
def ab(store: Store, hours: HoursQuery = 24, by_hour: bool = False) -> list[dict]:
    return [asdict(r) for r in store.ab_arms(*_window(hours), by_hour=by_hour)]


@router.get("/api/v1/analytics/versions", summary="Per-model-version comparison")
def versions(store: Store, hours: HoursQuery = 24, catalog_size: int | None = Query(None, gt=0)) -> list[dict]:
    return [asdict(r) for r in store.compare_versions(*_window(hours), catalog_size=catalog_size)]


def create_app(s: Settings | None = None) -> FastAPI:
    s = s or get_settings()
    sink = Sink(s)
    app = create_event_app("analytics-sink", "genrec analytics sink", path="/events",
                           batch_handlers={INTERACTION: sink.on_interactions, RECOMMENDATION_SERVED: sink.on_served},
                           ready=Readiness(s, ("clickhouse", "postgres")))
    app.state.sink = sink
    app.state.on_stop = sink.res.close
    app.state.on_start = sink.store.get  # open (and create the schema) at start
    answer_faults(app, ClickHouseError)  # the admin API's queries: 503 while ClickHouse is down
    app.include_router(router)
    return app
