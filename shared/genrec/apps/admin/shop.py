"""The shopper demo's two endpoints: public, like the recommend API they wrap.

Anyone may send the demo's feedback for any shopper id, so it is not treated as the shopper's
own: each event carries the source ``genrec/shop-demo`` and ``context.trust = "untrusted"``
(it moves that shopper's hot state, which is what the demo shows, and training leaves it out),
and it is limited per shopper here as well as per client by the app's rate limit.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from genrec.apps.admin.deps import ID_PATTERN, EventCapture, RecommendApi, ShopFeedbackLimits, StrictBody
from genrec.apps.errors import ApiError
from genrec.events.contracts import INTERACTION, TRUST, UNTRUSTED, Identifier

router = APIRouter(tags=["shop"])
SHOP_SOURCE = "genrec/shop-demo"  # the CloudEvents source of the demo's feedback


class FeedbackRequest(StrictBody):
    user_id: Identifier
    item_id: Identifier
    feedback: Literal["like", "skip", "click", "add_to_cart", "purchase", "view"]
    request_id: str | None = Field(default=None, max_length=256)


@router.get("/api/v1/shop/recommendations", summary="Recommendations for the shopper demo")
async def shop_recommendations(recommend: RecommendApi,
                               user_id: str = Query(min_length=1, max_length=256, pattern=ID_PATTERN),
                               count: int = Query(8, ge=1, le=50)) -> dict[str, Any]:
    return await recommend.call("POST", "/generate", json={"user_id": user_id, "count": count,
                                                           "context": {"surface": "shop-demo"}})


@router.post("/api/v1/shop/feedback", status_code=202, summary="Like/skip from the shopper demo",
             description="An untrusted signal: limited per shopper, and left out of training.")
async def shop_feedback(body: FeedbackRequest, events: EventCapture, limits: ShopFeedbackLimits) -> dict[str, Any]:
    wait_s = limits.take(body.user_id)
    if wait_s > 0:
        raise ApiError.rate_limited(wait_s, "user_id", "too much feedback for this shopper; slow down")
    context = {TRUST: UNTRUSTED, "surface": "shop-demo", **({"request_id": body.request_id} if body.request_id else {})}
    event_id = await events.send(INTERACTION, {"user_id": body.user_id, "item_id": body.item_id,
                                               "event_type": body.feedback, "context": context}, source=SHOP_SOURCE)
    return {"event_id": event_id}
