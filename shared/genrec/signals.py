"""How much each kind of interaction says about what a user wants.

One table used by feature updates (popularity boards, sequences) and training data, so the
online and offline views of a user's history agree.
"""

from __future__ import annotations

EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "like": 3.0,
    "rating": 3.0,  # scaled by the rating below
    "add_to_cart": 4.0,
    "purchase": 5.0,
    "skip": 0.0,
}


def weight(event_type: str, value: float | None = None) -> float:
    """Popularity weight of one interaction (ratings scale with their value on a 5-point scale)."""
    base = EVENT_WEIGHTS.get(event_type, 1.0)
    if event_type == "rating" and value is not None:
        return base * max(0.0, min(value, 5.0)) / 5.0
    return base


def is_positive(event_type: str, value: float | None = None) -> bool:
    """Whether the interaction belongs in the user's sequence (the model's input)."""
    if event_type == "skip":
        return False
    if event_type == "rating" and value is not None:
        return value >= 3.0
    return True
