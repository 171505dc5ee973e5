"""One-line reasons shown with each recommendation, from what the serving path knows.

Generated items are explained by the history item that shares the longest Semantic-ID
prefix with them (the model's own notion of "close"); fallbacks say what they are.
"""

from __future__ import annotations

from collections.abc import Sequence

from genrec.stores.catalog_repo import Item
from genrec.stores.categories import CATEGORY_SEP


def _shared_prefix(a: Sequence[int] | None, b: Sequence[int] | None) -> int:
    if not a or not b:
        return 0
    n = 0
    for x, y in zip(a[:-1], b[:-1], strict=False):  # the last level only disambiguates
        if x != y:
            break
        n += 1
    return n


def _leaf(category_path: str) -> str:
    return category_path.split(CATEGORY_SEP)[-1].strip() if category_path else ""


def explain(item: Item, served_by: str, history: Sequence[Item], category: str | None = None) -> str:
    if served_by in ("model", "session", "cache") and history:
        best = max(reversed(history), key=lambda h: _shared_prefix(item.semantic_ids, h.semantic_ids))
        depth = _shared_prefix(item.semantic_ids, best.semantic_ids)
        if depth > 0:
            return f"Because you viewed “{best.title[:60]}”"
        same = next((h for h in reversed(history) if h.category_path and h.category_path == item.category_path), None)
        if same:
            return f"More from {_leaf(same.category_path)}, which you have been browsing"
        return "Predicted from your recent activity"
    if served_by == "vector":
        if history:
            return f"Similar to “{history[-1].title[:60]}”"
        return "Matches your interests"
    where = _leaf(category or item.category_path)
    return f"Popular in {where} right now" if where else "Trending right now"
