"""Category paths ("top|mid|leaf", as genrec.data writes them) shared by every store's filters.

A category filter means "this category or any descendant"; stores match it exactly
against the path's ancestor levels rather than with LIKE patterns, so names may contain
any character.
"""

from __future__ import annotations

CATEGORY_SEP = "|"


def category_levels(category_path: str) -> list[str]:
    """Every ancestor path of a category, root first: "a|b|c" -> ["a", "a|b", "a|b|c"]."""
    parts = [p for p in category_path.split(CATEGORY_SEP) if p]
    return [CATEGORY_SEP.join(parts[: i + 1]) for i in range(len(parts))]
