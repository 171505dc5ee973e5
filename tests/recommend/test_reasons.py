"""Each recommendation's one-line reason."""

from __future__ import annotations

import random

from genrec.recommend.reasons import Reasons
from genrec.stores.catalog_repo import Item


def _item(name: str, codes: list[int] | None, category: str = "") -> Item:
    return Item(name, title=name, semantic_ids=codes, category_path=category)


def _nearest_by_pairs(item: Item, history: list[Item]) -> Item | None:
    """The definition: the most recent history item sharing the longest prefix (last level excluded)."""
    def shared(a: list[int] | None, b: list[int] | None) -> int:
        n = 0
        for x, y in zip((a or [])[:-1], (b or [])[:-1], strict=False):
            if x != y:
                break
            n += 1
        return n

    best = max(reversed(history), key=lambda h: shared(item.semantic_ids, h.semantic_ids))
    return best if shared(item.semantic_ids, best.semantic_ids) else None


def test_a_generated_item_is_explained_by_the_most_recent_closest_history_item() -> None:
    rng = random.Random(0)
    for _ in range(300):
        history = [_item(f"h{i}", [rng.randrange(3) for _ in range(4)]) for i in range(rng.randrange(1, 12))]
        why = Reasons("model", history)
        for _ in range(10):
            item = _item("x", [rng.randrange(3) for _ in range(4)])
            nearest = _nearest_by_pairs(item, history)
            expected = f"Because you viewed “{nearest.title}”" if nearest else "Predicted from your recent activity"
            assert why.explain(item) == expected


def test_without_a_shared_code_the_category_then_the_path_explains() -> None:
    history = [_item("old", [1, 1, 1], "Beauty|Skin"), _item("new", [2, 2, 2], "Beauty|Skin")]
    assert Reasons("cache", history).explain(_item("x", [3, 0, 0], "Beauty|Skin")) == \
        "More from Skin, which you have been browsing"
    assert Reasons("model", history).explain(_item("x", [3, 0, 0], "Toys")) == "Predicted from your recent activity"
    assert Reasons("vector", history).explain(_item("x", None)) == "Similar to “new”"
    assert Reasons("vector", []).explain(_item("x", None)) == "Matches your interests"
    assert Reasons("popularity", [], "Beauty|Hair").explain(_item("x", None, "Beauty|Hair|Dry")) == \
        "Popular in Hair right now"
    assert Reasons("popularity", []).explain(_item("x", None)) == "Trending right now"
