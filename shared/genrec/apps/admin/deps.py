"""What the admin API's endpoints depend on, as typed FastAPI dependencies.

``create_app`` opens one ``AdminServices`` and keeps it on ``app.state``; an endpoint names what
it uses as a parameter (``res: Stores``, ``reader: Analytics``, ``_p: Operator``) and FastAPI
hands it over. Nothing here touches a store: the store clients open on first use, inside the
endpoint, so a caller without the role gets its 401/403 (and a bad request its 422) even while
a store is down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict

from genrec.apps.admin_analytics import AnalyticsReader, LiveMetrics, make_reader
from genrec.apps.admin_auth import Principal, require
from genrec.apps.admin_clients import EventSender, RecommendClient
from genrec.apps.ratelimit import TokenBuckets
from genrec.config import Settings
from genrec.stores.resources import Resources, TTLCache

audit = logging.getLogger("genrec.admin.audit")


@dataclass
class AdminServices:
    """The clients the admin API reads and writes through, one set per app."""

    settings: Settings
    res: Resources
    reader: AnalyticsReader
    live: LiveMetrics
    events: EventSender
    recommend: RecommendClient
    # The shop demo's feedback per shopper: one event every 5 s after a burst of 10 (genrec.apps.admin.shop).
    shop_feedback: TokenBuckets = field(default_factory=lambda: TokenBuckets(0.2, burst=10))
    # The pipeline's lag, measured at most every 5 s however many dashboards poll (genrec.apps.admin.pipeline).
    pipeline_lag: TTLCache = field(default_factory=lambda: TTLCache(ttl_s=5.0))

    @classmethod
    def open(cls, s: Settings) -> AdminServices:
        reader = make_reader(s)
        return cls(s, Resources(s), reader, LiveMetrics(s, reader), EventSender(s), RecommendClient(s))

    def close(self) -> None:
        # The async clients belong to the server's event loop, which is closing them with the process.
        self.res.close()
        self.live.close()


def services(request: Request) -> AdminServices:
    return request.app.state.services


async def _settings(request: Request) -> Settings:
    return services(request).settings


async def _resources(request: Request) -> Resources:
    return services(request).res


async def _reader(request: Request) -> AnalyticsReader:
    return services(request).reader


async def _live(request: Request) -> LiveMetrics:
    return services(request).live


async def _events(request: Request) -> EventSender:
    return services(request).events


async def _recommend(request: Request) -> RecommendClient:
    return services(request).recommend


async def _shop_feedback(request: Request) -> TokenBuckets:
    return services(request).shop_feedback


async def _pipeline_lag(request: Request) -> TTLCache:
    return services(request).pipeline_lag


AppSettings = Annotated[Settings, Depends(_settings)]
Stores = Annotated[Resources, Depends(_resources)]
Analytics = Annotated[AnalyticsReader, Depends(_reader)]
Live = Annotated[LiveMetrics, Depends(_live)]
EventCapture = Annotated[EventSender, Depends(_events)]
RecommendApi = Annotated[RecommendClient, Depends(_recommend)]
ShopFeedbackLimits = Annotated[TokenBuckets, Depends(_shop_feedback)]
PipelineLagCache = Annotated[TTLCache, Depends(_pipeline_lag)]

# -- who is calling ---------------------------------------------------------------------------------
# The bearer scheme is declared for the OpenAPI document (and /docs' Authorize button); the
# check itself is genrec.apps.admin_auth's, which also accepts an x-api-key header.
_bearer = HTTPBearer(auto_error=False, description="Admin token or HS256 JWT with a 'role' claim")


def _viewer(_c: HTTPAuthorizationCredentials | None = Depends(_bearer),
            p: Principal = Depends(require("viewer"))) -> Principal:
    return p


def _operator(request: Request, _c: HTTPAuthorizationCredentials | None = Depends(_bearer),
              p: Principal = Depends(require("operator"))) -> Principal:
    # The audit trail: every change an operator makes, with who made it.
    audit.info("%s %s by %s (%s)", request.method, request.url.path, p.name, p.via)
    return p


Viewer = Annotated[Principal, Depends(_viewer)]
Operator = Annotated[Principal, Depends(_operator)]

# -- parameters and bodies several areas share ------------------------------------------------------
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
IdPath = Annotated[str, PathParam(min_length=1, max_length=256, pattern=ID_PATTERN)]  # a user, item or version
Hours = Annotated[float, Query(gt=0, le=24 * 90, description="Look back this many hours")]


class StrictBody(BaseModel):
    """A request body that refuses unknown fields (a typo is a 422 naming it, not ignored)."""

    model_config = ConfigDict(extra="forbid")
