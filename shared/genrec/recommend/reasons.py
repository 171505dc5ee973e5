"""One-line reasons shown with each recommendation, from what the serving path knows.

Generated items are explained by the history item that shares the longest Semantic-ID
prefix with them (the model's own notion of "close"; the most recent such item); fallbacks
say what they are.
"""

from __future__ import annotations

from collections.abc import Sequence

from genrec.stores.catalog_repo import Item
from genrec.stores.categories import CATEGORY_SEP

GENERATED = ("model", "session", "cache")


def _leaf(category_path: str) -> str:
    return category_path.split(CATEGORY_SEP)[-1].strip() if category_path else ""


class Reasons:
    """The reasons for one list: built once from its history, then one dictionary lookup per code
    level and item (a list of 50 against a history of 20 compared every pair before)."""

    def __init__(self, served_by: str, history: Sequence[Item], category: str | None = None) -> None:
        self.served_by, self.history, self.category = served_by, history, category
        # prefix -> the most recent history item with it. Prefixes stop before the last level,
        # which only disambiguates items within a leaf.
        self._by_prefix: dict[tuple[int, ...], Item] = {}
        self._by_category: dict[str, Item] = {}
        for h in history:  # oldest first: a later item overwrites an earlier one
            codes = tuple(h.semantic_ids or ())
            for depth in range(1, len(codes)):
                self._by_prefix[codes[:depth]] = h
            if h.category_path:
                self._by_category[h.category_path] = h

    def explain(self, item: Item) -> str:
        if self.served_by in GENERATED and self.history:
            codes = tuple(item.semantic_ids or ())
            for depth in range(len(codes) - 1, 0, -1):
                if (near := self._by_prefix.get(codes[:depth])) is not None:
                    return f"Because you viewed “{near.title[:60]}”"
            if item.category_path and (same := self._by_category.get(item.category_path)) is not None:
                return f"More from {_leaf(same.category_path)}, which you have been browsing"
            return "Predicted from your recent activity"
        if self.served_by == "vector":
            if self.history:
                return f"Similar to “{self.history[-1].title[:60]}”"
            return "Matches your interests"
        where = _leaf(self.category or item.category_path)
        return f"Popular in {where} right now" if where else "Trending right now"
