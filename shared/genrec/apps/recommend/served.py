"""What happens to every served list: counted by the path that served it, its model version
shown, and emitted as a ``recommendation.served`` event for analytics without waiting for the broker."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge

from genrec.events.codec import new_event
from genrec.events.contracts import RECOMMENDATION_SERVED
from genrec.events.publisher import EventPublisher
from genrec.recommend.schemas import RecommendationList
from genrec.stores.resources import Lazy

log = logging.getLogger("genrec.recommend")
SOURCE = "genrec/recommend"  # the CloudEvents source of what the recommend API emits


class ServedLog:
    def __init__(self, publisher: Lazy[EventPublisher], registry: CollectorRegistry) -> None:
        self.publisher = publisher
        # Which path served each list (model / cache / vector / popularity / session): the
        # fallback rate and the cache hit ratio are ratios of this counter.
        self.served_by = Counter("recommendations_served", "Recommendation lists served, by path", ["served_by"],
                                 registry=registry)
        self.model_version = Gauge("recommend_model_version_info", "Artifact version of the last model-served list",
                                   ["version"], registry=registry)
        self._version: str | None = None

    def record(self, result: RecommendationList, started: float) -> RecommendationList:
        """Count, time and log ``result`` (served since ``started``, a ``perf_counter``); returns it."""
        latency_ms = (time.perf_counter() - started) * 1000
        self.served_by.labels(result.served_by).inc()
        if result.served_by in ("model", "session") and self._version != result.algorithm_version:
            self._version = result.algorithm_version
            self.model_version.clear()  # one series: the version now answering
            self.model_version.labels(result.algorithm_version).set(1)
        result.debug["latency_ms"] = round(latency_ms, 2)
        try:
            ev = new_event(RECOMMENDATION_SERVED, {
                "request_id": result.request_id, "user_id": result.user_id or "anonymous",
                "items": [i["item_id"] for i in result.items], "scores": [i["score"] for i in result.items],
                "algorithm_version": result.algorithm_version, "served_by": result.served_by,
                "variant": result.variant,
                "latency_ms": latency_ms, "timestamp": datetime.now(UTC).isoformat(),
            }, source=SOURCE, event_id=f"served-{result.request_id}-{uuid.uuid4().hex[:8]}")
            self.publisher.get().publish_nowait([ev])
        except Exception as exc:  # analytics must never fail a recommendation
            log.warning("served event not emitted: %s", exc)
        return result
