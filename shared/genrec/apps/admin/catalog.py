"""The catalogue: search, the category tree, one item in depth, and upserts (as events)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import redis
from fastapi import APIRouter, Query

from genrec.apps import admin_queries as q
from genrec.apps.admin.deps import EventCapture, IdPath, Operator, Stores, Viewer
from genrec.apps.errors import ApiError
from genrec.events.contracts import ITEM_UPSERTED, ItemUpsertedData
from genrec.stores.resources import Resources

router = APIRouter(tags=["catalogue"])


@router.get("/api/v1/items", summary="Search and filter items (keyset pages)")
def list_items(_p: Viewer, res: Stores, q_: str = Query("", alias="q", max_length=200),
               category: str | None = Query(None, max_length=512),
               status: Literal["active", "inactive", "deleted", "any"] = "active",
               cursor: str | None = Query(None, max_length=256),
               limit: int = Query(25, ge=1, le=200)) -> dict[str, Any]:
    items, nxt = q.search_items(res.pool, q=q_.strip(), category=category or None,
                                status=None if status == "any" else status, after=cursor, limit=limit)
    return {"items": items, "next_cursor": nxt}


@router.get("/api/v1/categories", summary="Category tree with active item counts")
def categories(_p: Viewer, res: Stores) -> list[dict]:
    return q.category_tree(q.category_counts(res.pool))


@router.get("/api/v1/items/{item_id}",
            summary="One item: text, enrichment, embedding summary, neighbours, semantic IDs")
def item_detail(_p: Viewer, res: Stores, item_id: IdPath, neighbours: int = Query(8, ge=0, le=50)) -> dict[str, Any]:
    it = res.catalog.get(item_id)
    if it is None:
        raise ApiError(404, "item_id", f"no item {item_id!r}", "not_found")
    near = res.catalog.similar_to(item_id, neighbours) if neighbours and it.embedding is not None else []
    names = q.titles(res.pool, [n.item_id for n in near])
    attrs = dict(it.attributes or {})
    return {
        "item_id": it.item_id, "title": it.title, "description": it.description,
        "category_path": it.category_path, "attributes": attrs, "enrichment": _enrichment(attrs),
        "status": it.status, "semantic_ids": it.semantic_ids, "embedding": _embedding_summary(it.embedding),
        "popularity": _popularity(res, item_id), "created_at": it.created_at, "updated_at": it.updated_at,
        "neighbours": [{"item_id": n.item_id, "score": n.score, **names.get(n.item_id, {})} for n in near],
    }


@router.post("/api/v1/items", status_code=202,
             summary="Upsert an item: sent as an item.upserted event through event capture")
async def upsert_item(body: ItemUpsertedData, _p: Operator, events: EventCapture) -> dict[str, str]:
    return {"event_id": await events.send(ITEM_UPSERTED, body), "item_id": body.item_id}


def _embedding_summary(emb: np.ndarray | None) -> dict[str, Any] | None:
    if emb is None:
        return None
    return {"dim": int(emb.shape[0]), "norm": float((emb ** 2).sum() ** 0.5),
            "head": [round(float(v), 4) for v in emb[:8]]}


def _enrichment(attrs: dict[str, Any]) -> dict[str, Any]:
    """The LLM's enrichment: its own attribute, or the tags and summary merged into the item's."""
    return attrs.get("enrichment") or {k: attrs[k] for k in ("tags", "summary") if k in attrs}


def _popularity(res: Resources, item_id: str) -> Any:
    try:
        return res.hot.popularity(item_id)
    except (redis.ConnectionError, redis.TimeoutError):
        return None
