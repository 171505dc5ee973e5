"""The request's context, and what it changes in a list.

A caller describes the page asking for recommendations: ``surface`` (where the list shows:
home, product_page, cart, search, email, ...), ``device``, ``locale``, ``hour`` (the viewer's
local hour) and ``page_category`` (the category the page is about). Hard filters are the
request's ``filters``; the context re-weights instead: items under ``page_category`` move up
(``recommend.page_category_weight``), and each configured ``recommend.context_rules`` entry
whose ``when`` matches moves the items it names up or down.

Re-weighting works on ranks, not scores, so it means the same for every path that ranked the
list (model log-probabilities, popularity counts, vector similarities): an item at rank r gets
``-ln(r + 1) + weights``, the list is re-sorted on that (ties keep their order), and a weight of
ln 4 lets an item at rank 20 compete as if it were at rank 5. It applies after the per-user
cache (which holds the ranked list before any context), so a change of context is never served
a list made for another one; the next pages of a list keep its first page's context.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from genrec.config import ContextRule, RecommendSettings
from genrec.events.contracts import bounded
from genrec.stores.catalog_repo import Item
from genrec.stores.categories import category_levels

Device = Literal["mobile", "desktop", "tablet", "tv", "app", "other"]


class RequestContext(BaseModel):
    """What the page asking for a list says about itself; every field is optional, and other
    keys are kept (bounded) without changing anything unless a context rule names them."""

    model_config = ConfigDict(extra="allow")
    surface: str | None = Field(default=None, max_length=64, description="Where the list shows: home, cart, ...")
    device: Device | None = None
    locale: str | None = Field(default=None, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$",
                               description="BCP 47, e.g. en-US")
    hour: int | None = Field(default=None, ge=0, le=23, description="The viewer's local hour (0-23)")
    page_category: str | None = Field(default=None, max_length=512,
                                      description="The category the page is about: items under it move up")

    @model_validator(mode="after")
    def _extras_bounded(self) -> RequestContext:
        bounded(self.model_extra or {})
        return self

    def value(self, name: str) -> Any:
        return getattr(self, name) if name in type(self).model_fields else (self.model_extra or {}).get(name)


def _matches_when(rule: ContextRule, ctx: RequestContext) -> bool:
    for name, wanted in rule.when.items():
        have = ctx.value(name)
        if have is None:
            return False
        if name == "hour":
            lo, _, hi = wanted.partition("-")
            lo_h, hi_h = int(lo), int(hi or lo)
            inside = lo_h <= have <= hi_h if lo_h <= hi_h else (have >= lo_h or have <= hi_h)
            if not inside:
                return False
        elif str(have).lower() != wanted.lower():
            return False
    return True


def _names(item: Item, category: str | None, attributes: dict[str, str]) -> bool:
    if category and category not in category_levels(item.category_path):
        return False
    return all(str(item.attributes.get(k)) == v for k, v in attributes.items())


def weights(ctx: RequestContext | None, s: RecommendSettings) -> list[tuple[str | None, dict[str, str], float]]:
    """The (category, attributes, weight) boosts this context turns on."""
    if ctx is None:
        return []
    boosts = [(ctx.page_category, {}, s.page_category_weight)] if ctx.page_category and s.page_category_weight \
        else []
    return boosts + [(r.category, r.attributes, r.weight) for r in s.context_rules
                     if (r.category or r.attributes) and _matches_when(r, ctx)]


def reweigh(ranked: Sequence[str], items: dict[str, Item], ctx: RequestContext | None,
            s: RecommendSettings) -> tuple[list[str], int]:
    """``ranked`` (item ids, best first) re-ordered for the context, and how many items it moved up or down."""
    boosts = weights(ctx, s)
    if not boosts:
        return list(ranked), 0
    keys, touched = [], 0
    for rank, item_id in enumerate(ranked):
        extra = sum(w for category, attrs, w in boosts if _names(items[item_id], category, attrs))
        touched += extra != 0
        keys.append(-math.log(rank + 1) + extra)
    order = sorted(range(len(ranked)), key=lambda i: -keys[i])  # stable: ties keep the ranked order
    return [ranked[i] for i in order], touched
