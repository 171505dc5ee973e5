"""Re-weighting a ranked list for the request's context (genrec.recommend.context): by rank, so the
same weights mean the same on every path; rules fire only when their whole `when` matches."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from genrec.config import ContextRule, RecommendSettings
from genrec.recommend.context import RequestContext, reweigh
from genrec.stores.catalog_repo import Item

IDS = [f"i{k:02d}" for k in range(30)]
# every third item is a "Shoes" item, every fifth one is on sale
ITEMS = {i: Item(i, category_path="Shop|Shoes" if k % 3 == 0 else "Shop|Bags",
                 attributes={"sale": k % 5 == 0}) for k, i in enumerate(IDS)}


def test_no_context_or_no_weights_keeps_the_ranking() -> None:
    assert reweigh(IDS, ITEMS, None, RecommendSettings()) == (IDS, 0)
    assert reweigh(IDS, ITEMS, RequestContext(surface="home"), RecommendSettings()) == (IDS, 0)
    ctx = RequestContext(page_category="Shop|Shoes")
    assert reweigh(IDS, ITEMS, ctx, RecommendSettings(page_category_weight=0)) == (IDS, 0)


def test_the_page_category_moves_its_items_up_by_rank() -> None:
    order, moved = reweigh(IDS, ITEMS, RequestContext(page_category="Shop|Shoes"), RecommendSettings())
    assert moved == 10 and sorted(order) == sorted(IDS)
    # ln 4: the Shoes item at rank 21 (0-based) competes as if at rank 4.5, so it passes the Bags
    # items ranked 5 and below, and stays behind those ranked 4 and above
    ahead = order[:order.index("i21")]
    assert {"i01", "i02", "i04"} <= set(ahead) and not {"i05", "i07", "i08"} & set(ahead)
    assert order[0] == "i00" and order.index("i03") < order.index("i01")


def test_rules_need_their_whole_when_and_hours_wrap_past_midnight() -> None:
    sale_at_night = ContextRule(when={"surface": "Cart", "hour": "22-5"}, attributes={"sale": "True"},
                                weight=math.log(10))
    s = RecommendSettings(context_rules=[sale_at_night])
    for hour in (23, 0, 5):
        order, moved = reweigh(IDS, ITEMS, RequestContext(surface="cart", hour=hour), s)
        assert moved == 6 and order.index("i25") < order.index("i03"), hour
    for ctx in (RequestContext(surface="cart", hour=12), RequestContext(surface="home", hour=23),
                RequestContext(surface="cart")):
        assert reweigh(IDS, ITEMS, ctx, s) == (IDS, 0)
    # a rule on a key the caller made up
    s = RecommendSettings(context_rules=[ContextRule(when={"campaign": "summer"}, category="Shop|Bags")])
    assert reweigh(IDS, ITEMS, RequestContext.model_validate({"campaign": "summer"}), s)[1] == 20


def test_the_context_is_checked_and_its_other_keys_bounded() -> None:
    for bad in ({"device": "fridge"}, {"hour": 24}, {"locale": "en US"}, {"surface": "x" * 65},
                {"k": "x" * 30_000}):
        with pytest.raises(ValidationError):
            RequestContext.model_validate(bad)
    assert RequestContext.model_validate({"hour": "7", "locale": "pt-BR"}).hour == 7
