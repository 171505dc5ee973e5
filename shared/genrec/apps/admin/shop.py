"""The shopper demo's two endpoints: public, like the recommend API they wrap."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from genrec.apps.admin.deps import ID_PATTERN, RecommendApi, StrictBody
from genrec.events.contracts import Identifier

router = APIRouter(tags=["shop"])


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


@router.post("/api/v1/shop/feedback", status_code=202, summary="Like/skip from the shopper demo")
async def shop_feedback(body: FeedbackRequest, recommend: RecommendApi) -> dict[str, Any]:
    payload = body.model_dump(exclude_none=True)
    return await recommend.call("POST", "/feedback", json=payload, expect=(200, 202))
