"""llm-enrichment: item upserts → LLM tags/summary/attributes → `item.enriched` events.

With no LLM configured the function still runs, says so on /status, and passes items through
(no enrichment event; cold start works from the item's own text). A provider outage answers
503 so deliveries are retried later; output that never validates is dead-lettered (422).
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from genrec.apps.event_function import create_event_app
from genrec.apps.readiness import Readiness
from genrec.config import Settings, get_settings
from genrec.enrichment.client import LLMBadOutput
from genrec.enrichment.enricher import ItemEnricher
from genrec.events.codec import EventError, ValidEvent, new_event
from genrec.events.contracts import ITEM_ENRICHED, ITEM_UPSERTED, ItemUpsertedData
from genrec.events.publisher import EventPublisher
from genrec.stores.hot_state import redis_client
from genrec.stores.resources import Lazy

SOURCE = "genrec/llm-enrichment"


class Enrichment:
    """Item upserts in, ``item.enriched`` events out; the enricher and publisher open on first use."""

    def __init__(self, s: Settings, enricher: ItemEnricher | None = None) -> None:
        self.enricher = Lazy(lambda: enricher or ItemEnricher(s, redis_client(s)))
        self.publisher = Lazy(lambda: EventPublisher(s, timeout_s=s.kafka.publish_timeout_s),
                              close=EventPublisher.close)
        # One pool for every request: at most llm.concurrency questions in flight per process, and no threads
        # started per request (they start on first use).
        self.questions = ThreadPoolExecutor(s.llm.concurrency, thread_name_prefix="llm-question")

    def on_items(self, events: Sequence[ValidEvent[ItemUpsertedData]]) -> list[dict]:
        """A delivered batch's items asked of the LLM at once (``llm.concurrency`` questions in flight), their
        ``item.enriched`` events published in one produce. One answer that never validates fails the batch
        (422): the bridge then delivers it record by record, and the answers already given come from the cache."""
        # Each question in a copy of this request's context: its log lines keep the request id and trace.
        asked = [self.questions.submit(contextvars.copy_context().run, self._enrich, ev) for ev in events]
        wait(asked)  # every answer in the cache before a failure answers the batch
        outcomes = [question.result() for question in asked]
        enriched = [event for _, event in outcomes if event is not None]
        if enriched:
            self.publisher.get().publish_sync(enriched)
        return [result for result, _ in outcomes]

    def close(self) -> None:
        self.questions.shutdown(cancel_futures=True)
        self.publisher.close()

    def _enrich(self, ev: ValidEvent[ItemUpsertedData]) -> tuple[dict, ValidEvent | None]:
        item = ev.data
        if item.status == "deleted":
            return {"id": ev.id, "enriched": False, "reason": "item deleted"}, None
        try:
            result = self.enricher.get().enrich(item)
        except LLMBadOutput as exc:
            raise EventError("data", f"enrichment failed: {exc}") from None
        if result.enrichment is None:
            return {"id": ev.id, "enriched": False, "reason": result.skipped_reason}, None
        # A deterministic id: redelivery of the same upsert re-emits the same event (deduplicated).
        enriched = new_event(ITEM_ENRICHED, {"item_id": item.item_id, "model": result.model,
                                             **result.enrichment.model_dump()},
                             source=SOURCE, event_id=f"enriched-{ev.source}-{ev.id}")
        return {"id": ev.id, "enriched": True, "cached": result.cached, "model": result.model,
                "tags": result.enrichment.tags}, enriched


async def _enrichment(request: Request) -> Enrichment:
    return request.app.state.enrichment


router = APIRouter()


@router.get("/status", summary="Whether an LLM is configured, which models serve which task, budget")
def status(enrichment: Annotated[Enrichment, Depends(_enrichment)]) -> JSONResponse:
    return JSONResponse(enrichment.enricher.get().status())


def create_app(s: Settings | None = None, enricher: ItemEnricher | None = None) -> FastAPI:
    s = s or get_settings()
    enrichment = Enrichment(s, enricher)
    # Without an LLM, items pass through untouched: neither the cache (Redis) nor Kafka is needed.
    # The LLM provider itself is not a readiness dependency: its outages answer 503 per delivery.
    needs = ("redis", "kafka") if s.llm.base_url or enricher is not None else ()
    app = create_event_app("llm-enrichment", "genrec LLM enrichment",
                           batch_handlers={ITEM_UPSERTED: enrichment.on_items}, ready=Readiness(s, needs))
    app.state.enrichment = enrichment
    app.state.on_start = enrichment.enricher.get
    app.state.on_stop = enrichment.close
    app.include_router(router)
    return app
