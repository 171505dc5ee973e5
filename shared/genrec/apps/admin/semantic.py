"""The Semantic ID tree (one level at a time) and the item embedding space in 3-D."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from genrec.apps import admin_queries as q
from genrec.apps.admin.deps import Stores, Viewer

router = APIRouter()


@router.get("/api/v1/semantic-ids", tags=["semantic ids"],
            summary="Codes one level below a prefix, with item counts and sample titles")
def semantic_ids(_p: Viewer, res: Stores,
                 prefix: str = Query("", max_length=200, pattern=r"^(\d{1,6}(,\d{1,6})*)?$",
                                     description="Comma-separated codes, each below 1,000,000"),
                 items: int = Query(0, ge=0, le=100)) -> dict[str, Any]:
    codes = [int(c) for c in prefix.split(",") if c]
    level = q.semantic_level(res.pool, codes)
    if items:
        level["items_sample"] = q.items_with_prefix(res.pool, codes, items)
    return level


@router.get("/api/v1/embeddings/projection", tags=["embeddings"],
            summary="Item embeddings projected to 3-D by PCA (a stable sample)")
def projection(_p: Viewer, res: Stores, limit: int = Query(1500, ge=10, le=10_000),
               category: str | None = Query(None, max_length=512)) -> dict[str, Any]:
    proj = q.project_embeddings(res.pool, limit=limit, category=category or None)
    return {"points": proj.points, "explained_variance": proj.explained_variance, "total": proj.total,
            "method": "pca"}
