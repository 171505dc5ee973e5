"""The recommendation lists: for a user (POST and GET forms), for an anonymous session, items
similar to an item, and popular items. A bad ``page_token`` is a 400 naming it (the app's
``PageTokenError`` handler).

A list the service built is answered as its JSON at once (``_json``): FastAPI would otherwise dump
it, validate the dump against the response model and serialise that, three passes over 50 items.
The response models still describe the answers in the OpenAPI document."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import Response

from genrec.apps.errors import ApiError
from genrec.apps.recommend.deps import Served, Service
from genrec.events.contracts import Identifier
from genrec.recommend.experiment import VARIANT_HEADER, Variant
from genrec.recommend.schemas import Filters, GenerateRequest, RecommendationList, SessionRequest

router = APIRouter()
# The live A/B arm to serve from, for testing (the user's own arm without it).
ArmHeader = Annotated[Variant | None, Header(alias=VARIANT_HEADER, description="production or canary (testing)")]


def _json(result: RecommendationList) -> Response:
    return Response(result.model_dump_json(), media_type="application/json")


@router.post("/api/v1/recommend/generate", response_model=RecommendationList,
             summary="Generate recommendations for a user")
def generate(req: GenerateRequest, service: Service, served: Served, arm: ArmHeader = None) -> Response:
    started = time.perf_counter()
    result = service.for_user(req.user_id, req.count, exclude=req.exclude, filters=req.filters,
                              page_token=req.page_token, context=req.context, variant=arm)
    return _json(served.record(result, started))


@router.get("/api/v1/recommend/user/{user_id}", response_model=RecommendationList,
            summary="Recommendations for a user (GET form)")
def for_user(service: Service, served: Served, user_id: Identifier = Path(max_length=256),
             count: int = Query(10, ge=1, le=50), category: str | None = Query(None, max_length=512),
             page_token: str | None = Query(None, max_length=200), arm: ArmHeader = None) -> Response:
    started = time.perf_counter()
    result = service.for_user(user_id, count, filters=Filters(category=category), page_token=page_token,
                              variant=arm)
    return _json(served.record(result, started))


@router.post("/api/v1/recommend/session", response_model=RecommendationList,
             summary="Recommendations for an anonymous session's item list")
def for_session(req: SessionRequest, service: Service, served: Served) -> Response:
    started = time.perf_counter()
    return _json(served.record(service.for_session(req.items, req.count, filters=req.filters), started))


@router.get("/api/v1/recommend/item/{item_id}/similar", response_model=RecommendationList,
            summary="Nearest items to an item")
def similar(service: Service, item_id: Identifier = Path(max_length=256),
            count: int = Query(10, ge=1, le=50)) -> Response:
    result = service.similar(item_id, count)
    if result is None:
        raise ApiError(404, "path", f"unknown item {item_id!r}", "not_found")
    return _json(result)


@router.get("/api/v1/recommend/popular", response_model=RecommendationList,
            summary="Popular items, optionally within a category")
def popular(service: Service, category: str = Query("", max_length=512), count: int = Query(10, ge=1, le=50),
            page_token: str | None = Query(None, max_length=200)) -> Response:
    return _json(service.popular(category, count, page_token))
