"""Ranked lists kept per request so that paging never repeats or skips an item."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

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
    rows: list[dict[str, Any]]
    debug: dict[str, Any] = field(default_factory=dict)


class PageStore:
    def __init__(self, client) -> None:
        self.r = client

    @staticmethod
    def token(request_id: str, offset: int) -> str:
        return f"{request_id}.{offset}"

    def save(self, ranked: RankedList) -> None:
        self.r.set(keys.ranked_page(ranked.request_id), json.dumps(asdict(ranked)), ex=PAGE_TTL_S)

    def load(self, token: str) -> tuple[RankedList, int]:
        match = _TOKEN.match(token)
        if not match:
            raise PageTokenError("malformed page_token")
        raw = self.r.get(keys.ranked_page(match.group(1)))
        if raw is None:
            raise PageTokenError("page_token expired or unknown; request the first page again")
        return RankedList(**json.loads(raw)), int(match.group(2))
