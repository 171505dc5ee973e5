"""analytics-sink: the one process that owns the analytics store locally.

chDB is ClickHouse in-process with one engine per data path, so locally this service writes
the interaction and served-recommendation topics into it (delivered by the eventing bridge)
and answers the admin API's analytics queries over HTTP. In production ClickHouse is a server:
the same sink (or ClickHouse's Kafka engine) ingests, and readers may query it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from functools import cached_property

from fastapi import FastAPI, Query

from genrec.apps.event_function import create_event_app
from genrec.apps.readiness import Readiness
from genrec.config import Settings, get_settings
from genrec.events.codec import ValidEvent
from genrec.events.contracts import INTERACTION, RECOMMENDATION_SERVED, InteractionData, RecommendationServedData
from genrec.stores.analytics import AnalyticsEvent, AnalyticsStore, RecommendationLog


class _Store:
    def __init__(self, s: Settings) -> None:
        self.s = s

    @cached_property
    def analytics(self) -> AnalyticsStore:
        return AnalyticsStore(self.s)


def create_app(s: Settings | None = None) -> FastAPI:
    s = s or get_settings()
    holder = _Store(s)

    def interaction_row(ev: ValidEvent) -> AnalyticsEvent:
        d: InteractionData = ev.data  # type: ignore[assignment]
        return AnalyticsEvent(
            event_id=ev.id, source=ev.source, user_id=d.user_id, item_id=d.item_id, event_type=d.event_type,
            timestamp=d.timestamp or ev.time, value=d.value if d.value is not None else 1.0,
            request_id=str(d.context.get("request_id", "")),
        )

    def served_row(ev: ValidEvent) -> RecommendationLog:
        d: RecommendationServedData = ev.data  # type: ignore[assignment]
        return RecommendationLog(
            request_id=d.request_id, user_id=d.user_id, items=list(d.items), scores=list(d.scores),
            algorithm_version=d.algorithm_version, served_by=d.served_by, latency_ms=d.latency_ms,
            timestamp=d.timestamp,
        )

    def on_interactions(evs: Sequence[ValidEvent]) -> list[dict]:
        holder.analytics.insert_events([interaction_row(ev) for ev in evs])
        return [{"id": ev.id} for ev in evs]

    def on_served(evs: Sequence[ValidEvent]) -> list[dict]:
        holder.analytics.insert_recommendation_logs([served_row(ev) for ev in evs])
        return [{"id": ev.id} for ev in evs]

    # One insert per delivered batch: ClickHouse wants few large inserts, not many rows.
    app = create_event_app("analytics-sink", "genrec analytics sink", path="/events",
                           batch_handlers={INTERACTION: on_interactions, RECOMMENDATION_SERVED: on_served},
                           ready=Readiness(s, ("clickhouse",)))
    app.state.on_start = lambda: holder.analytics  # open (and create the schema) at start

    def window(hours: float) -> tuple[datetime, datetime]:
        until = datetime.now(UTC) + timedelta(minutes=1)
        return until - timedelta(hours=hours), until

    @app.get("/api/v1/analytics/latency", summary="Requests and p50/p95/p99 latency per hour")
    def latency(hours: float = Query(24, gt=0, le=24 * 90), algorithm_version: str = "") -> list[dict]:
        since, until = window(hours)
        return [asdict(r) for r in holder.analytics.latency_by_hour(since, until,
                                                                    algorithm_version=algorithm_version)]

    @app.get("/api/v1/analytics/ctr", summary="Click-through of served recommendations per model version")
    def ctr(hours: float = Query(24, gt=0, le=24 * 90), window_s: int = Query(1800, gt=0, le=7 * 86400)) -> list[dict]:
        since, until = window(hours)
        return [asdict(r) for r in holder.analytics.click_through(since, until, window_s=window_s)]

    @app.get("/api/v1/analytics/coverage", summary="Share of the catalogue that was recommended")
    def coverage(catalog_size: int = Query(gt=0), hours: float = Query(24, gt=0, le=24 * 90)) -> list[dict]:
        since, until = window(hours)
        return [asdict(r) for r in holder.analytics.coverage(since, until, catalog_size)]

    @app.get("/api/v1/analytics/versions", summary="Per-model-version comparison")
    def versions(hours: float = Query(24, gt=0, le=24 * 90),
                 catalog_size: int | None = Query(None, gt=0)) -> list[dict]:
        since, until = window(hours)
        return [asdict(r) for r in holder.analytics.compare_versions(since, until, catalog_size=catalog_size)]

    return app
