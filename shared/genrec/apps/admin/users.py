"""Users: who was active, one user in depth (events, hot state), their live recommendations,
and test interactions (sent as events)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import redis
from fastapi import APIRouter, Query
from pydantic import Field

from genrec.apps import admin_queries as q
from genrec.apps.admin.deps import EventCapture, IdPath, Operator, RecommendApi, Stores, StrictBody, Viewer
from genrec.events.contracts import INTERACTION, Identifier, InteractionType
from genrec.stores.resources import Resources

router = APIRouter(tags=["users"])


class InteractionRequest(StrictBody):
    item_id: Identifier
    event_type: InteractionType = "click"
    value: float | None = Field(default=None, allow_inf_nan=False)


@router.get("/api/v1/users", summary="Recently active users")
def list_users(_p: Viewer, res: Stores, limit: int = Query(50, ge=1, le=500)) -> list[dict]:
    return q.recent_users(res.pool, limit)


@router.get("/api/v1/users/{user_id}", summary="A user: profile, recent events, hot sequence and features")
def user_detail(_p: Viewer, res: Stores, user_id: IdPath,
                events_limit: int = Query(20, ge=1, le=200)) -> dict[str, Any]:
    profile = res.users.get(user_id)
    recent = res.events.recent(user_id, events_limit)
    sequence, features, cached = _hot_state(res, user_id)
    names = q.titles(res.pool, list({*sequence, *(e.item_id for e in recent)}))
    return {
        "user_id": user_id, "known": bool(profile or recent or sequence),
        "profile": profile.profile if profile else {}, "preferences": profile.preferences if profile else {},
        "last_active_at": profile.last_active_at if profile else None,
        "recent_events": [{"event_id": e.event_id, "item_id": e.item_id, "event_type": e.event_type,
                           "value": e.value, "ts": e.ts, "source": e.source,
                           "title": names.get(e.item_id, {}).get("title", "")} for e in recent],
        "sequence": [{"item_id": i, "title": names.get(i, {}).get("title", "")} for i in sequence],
        "features": features, "cached_recommendations": cached,
    }


@router.get("/api/v1/users/{user_id}/recommendations",
            summary="Live recommendations from the recommend API (scores, reasons, serving path)")
async def user_recommendations(_p: Viewer, recommend: RecommendApi, user_id: IdPath,
                               count: int = Query(10, ge=1, le=50),
                               category: str | None = Query(None, max_length=512)) -> dict[str, Any]:
    return await recommend.call("GET", f"/user/{quote(user_id, safe='')}",
                                params={"count": count, "category": category})


@router.post("/api/v1/users/{user_id}/interactions", status_code=202,
             summary="Send a test interaction (an interaction event through event capture)")
async def test_interaction(user_id: IdPath, body: InteractionRequest, _p: Operator,
                           events: EventCapture) -> dict[str, str]:
    data = {"user_id": user_id, "item_id": body.item_id, "event_type": body.event_type, "value": body.value,
            "context": {"origin": "admin-test"}}
    return {"event_id": await events.send(INTERACTION, data)}


def _hot_state(res: Resources, user_id: str) -> tuple[list[str], dict[str, Any], bool]:
    """The user's recent sequence, features and whether a list is cached; empty while Redis is down."""
    try:
        sequence = res.hot.recent_items(user_id, 50)
        features = res.hot.user_features(user_id)
        cached = res.hot.cached_recommendations(user_id) is not None
    except (redis.ConnectionError, redis.TimeoutError):
        return [], {}, False
    return sequence, features, cached
