"""llm-enrichment: item upserts → LLM tags/summary/attributes → `item.enriched` events.

With no LLM configured the function still runs, says so on /status, and passes items through
(no enrichment event; cold start works from the item's own text). A provider outage answers
503 so deliveries are retried later; output that never validates is dead-lettered (422).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from genrec.apps.event_function import UNAVAILABLE_ERRORS, create_event_app
from genrec.apps.readiness import Readiness
from genrec.config import Settings, get_settings
from genrec.enrichment.client import LLMBadOutput, LLMUnavailable
from genrec.enrichment.enricher import ItemEnricher
from genrec.events.codec import EventError, ValidEvent, new_event
from genrec.events.contracts import ITEM_ENRICHED, ITEM_UPSERTED, ItemUpsertedData
from genrec.events.publisher import EventPublisher
from genrec.stores.hot_state import redis_client

SOURCE = "genrec/llm-enrichment"


def create_app(s: Settings | None = None, enricher: ItemEnricher | None = None) -> FastAPI:
    s = s or get_settings()
    state: dict[str, object] = {}

    def get_enricher() -> ItemEnricher:
        if "enricher" not in state:
            state["enricher"] = enricher or ItemEnricher(s, redis_client(s))
        return state["enricher"]  # type: ignore[return-value]

    def publisher() -> EventPublisher:
        if "publisher" not in state:
            state["publisher"] = EventPublisher(s, timeout_s=s.kafka.publish_timeout_s)
        return state["publisher"]  # type: ignore[return-value]

    def on_item(ev: ValidEvent) -> dict:
        item: ItemUpsertedData = ev.data  # type: ignore[assignment]
        if item.status == "deleted":
            return {"id": ev.id, "enriched": False, "reason": "item deleted"}
        try:
            result = get_enricher().enrich(item)
        except LLMBadOutput as exc:
            raise EventError("data", f"enrichment failed: {exc}") from None
        if result.enrichment is None:
            return {"id": ev.id, "enriched": False, "reason": result.skipped_reason}
        # A deterministic id: redelivery of the same upsert re-emits the same event (deduplicated).
        enriched = new_event(ITEM_ENRICHED, {"item_id": item.item_id, "model": result.model,
                                             **result.enrichment.model_dump()},
                             source=SOURCE, event_id=f"enriched-{ev.source}-{ev.id}")
        publisher().publish_sync([enriched])
        return {"id": ev.id, "enriched": True, "cached": result.cached, "model": result.model,
                "tags": result.enrichment.tags}

    # Without an LLM, items pass through untouched: neither the cache (Redis) nor Kafka is needed.
    # The LLM provider itself is not a readiness dependency: its outages answer 503 per delivery.
    needs = ("redis", "kafka") if s.llm.base_url or enricher is not None else ()
    app = create_event_app("llm-enrichment", "genrec LLM enrichment", {ITEM_UPSERTED: on_item},
                           unavailable=(*UNAVAILABLE_ERRORS, LLMUnavailable), ready=Readiness(s, needs))
    app.state.on_start = get_enricher
    app.state.on_stop = lambda: publisher().close() if "publisher" in state else None

    @app.get("/status", summary="Whether an LLM is configured, which models serve which task, budget")
    def status() -> JSONResponse:
        return JSONResponse(get_enricher().status())

    return app
