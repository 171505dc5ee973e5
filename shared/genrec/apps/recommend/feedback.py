"""Feedback on a recommended item: an interaction event, answered once the broker has it.

Feedback writes a user's history, as ingested events do, so it takes the same credential:
when ingest keys are configured the caller presents one (the shop's backend, not a browser).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from genrec.apps.auth import require_ingest_key
from genrec.apps.errors import ApiError
from genrec.apps.outages import KAFKA, OUTAGE, Fault
from genrec.apps.recommend.deps import FeedbackPublisher, state
from genrec.apps.recommend.served import SOURCE
from genrec.events.codec import EventError, new_event
from genrec.events.contracts import INTERACTION
from genrec.events.publisher import BrokerUnavailable
from genrec.recommend.schemas import FeedbackRequest

log = logging.getLogger("genrec.recommend")
router = APIRouter()


async def _ingest_key(request: Request) -> None:
    require_ingest_key(request, state(request).settings.auth.ingest_api_keys)


@router.post("/api/v1/recommend/feedback", status_code=202, summary="Feedback on a recommended item",
             description="Needs an ingest API key (`x-api-key` or `Authorization: Bearer`) when keys are configured.",
             dependencies=[Depends(_ingest_key)])
async def feedback(req: FeedbackRequest, publisher: FeedbackPublisher) -> JSONResponse:
    try:
        ev = new_event(INTERACTION, {
            "user_id": req.user_id, "item_id": req.item_id, "event_type": req.feedback,
            "context": {"request_id": req.request_id} if req.request_id else {},
        }, source=SOURCE)
    except EventError as exc:
        raise ApiError.from_event(exc) from None
    try:
        await publisher.publish([ev])
    except BrokerUnavailable as exc:
        log.warning("feedback refused: %s", exc)  # the broker's hosts stay in the log
        raise ApiError.unavailable(Fault(KAFKA, OUTAGE).message, "broker_unavailable") from None
    return JSONResponse({"event_id": ev.id}, status_code=202)
