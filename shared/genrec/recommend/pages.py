"""Ranked lists kept per request so that paging never repeats or skips an item."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from genrec.recommend.experiment import Variant
from genrec.recommend.schemas import RecommendedItem
from genrec.stores import redis_keys as keys

PAGE_TTL_S = 600
_TOKEN = re.compile(r"^([0-9a-f]{32})\.(\d{1,4})$")


class PageTokenError(ValueError):
    """A page token that is unknown, expired or not the caller's."""


@dataclass
class RankedList:
    request_id: str
    user_id: str | None
    served_by: str
    version: str
    rows: list[RecommendedItem]
    debug: dict[str, Any] = field(default_factory=dict)
    variant: Variant = "production"  # the live A/B arm


class PageStore:
    def __init__(self, client) -> None:
        self.r = client

    @staticmethod
    def token(request_id: str, offset: int) -> str:
        return f"{request_id}.{offset}"

    @staticmethod
    def _parse(token: str) -> tuple[str, int]:
        match = _TOKEN.match(token)
        if not match:
            raise PageTokenError("malformed page_token")
        return match.group(1), int(match.group(2))

    @staticmethod
    def offset(token: str) -> int:
        """Where in its list a (well-formed) token points."""
        return PageStore._parse(token)[1]

    def save(self, ranked: RankedList) -> None:
        self.r.set(keys.ranked_page(ranked.request_id), orjson.dumps(asdict(ranked)), ex=PAGE_TTL_S)

    def load(self, token: str) -> tuple[RankedList, int]:
        request_id, offset = self._parse(token)
        raw = self.r.get(keys.ranked_page(request_id))
        if raw is None:
            raise PageTokenError("page_token expired or unknown; request the first page again")
        return RankedList(**orjson.loads(raw)), offset
