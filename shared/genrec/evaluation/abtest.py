"""Live A/B between model versions, in numbers: each served list is a trial (clicked or not,
converted or not), so an arm's click-through rate is a binomial proportion.

An arm's rate gets a Wilson score interval (it stays inside [0, 1] and behaves at small counts);
the difference between the canary and production a normal-approximation interval and a pooled
two-proportion z-test. "Not worse" is a non-inferiority decision: the lower end of the
difference's interval is above ``-margin`` times production's rate (margin 0: the canary is at
least as good at that confidence).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

VARIANTS = ("production", "canary")


@dataclass(frozen=True)
class Arm:
    variant: str
    lists: int  # served lists (trials)
    users: int
    clicked: int  # lists with at least one click
    converted: int  # lists with at least one add-to-cart or purchase
    versions: tuple[str, ...] = ()  # the model versions (or "fallback") that served its lists

    @property
    def ctr(self) -> float:
        return self.clicked / self.lists if self.lists else 0.0

    @property
    def conversion(self) -> float:
        return self.converted / self.lists if self.lists else 0.0


def z_of(confidence: float) -> float:
    """The two-sided normal quantile: 1.96 for 0.95."""
    lo, hi = 0.0, 10.0
    for _ in range(80):  # bisection on the normal tail, to well below float noise
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erfc(mid / math.sqrt(2)) > 1 - confidence else (lo, mid)
    return (lo + hi) / 2


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    z, p = z_of(confidence), successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_p(s1: int, n1: int, s2: int, n2: int) -> float:
    """Two-sided p-value of the pooled z-test that both rates are equal (1.0 without data)."""
    if not n1 or not n2:
        return 1.0
    pooled = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    return math.erfc(abs(s1 / n1 - s2 / n2) / se / math.sqrt(2))


def compare(production: Arm, canary: Arm, *, metric: str = "ctr", margin: float = 0.0,
            confidence: float = 0.95) -> dict[str, Any]:
    """The two arms on ``metric`` (ctr or conversion): each rate with its interval, the difference
    (canary - production) with its interval, the p-value, which arm is better at ``confidence``
    (None: no significant difference) and whether the canary is not worse by more than ``margin``
    (a share of production's rate)."""
    hits = "clicked" if metric == "ctr" else "converted"
    (s_p, n_p), (s_c, n_c) = (getattr(production, hits), production.lists), (getattr(canary, hits), canary.lists)
    r_p, r_c = (s_p / n_p if n_p else 0.0), (s_c / n_c if n_c else 0.0)
    z = z_of(confidence)
    se = math.sqrt((r_p * (1 - r_p) / n_p if n_p else 0.25) + (r_c * (1 - r_c) / n_c if n_c else 0.25))
    diff = r_c - r_p
    lo, hi = diff - z * se, diff + z * se
    p = two_proportion_p(s_c, n_c, s_p, n_p)
    significant = p < 1 - confidence and n_p > 0 and n_c > 0
    return {
        "metric": metric, "confidence": confidence, "margin": margin,
        "production": {**asdict(production), "rate": r_p, "interval": wilson(s_p, n_p, confidence)},
        "canary": {**asdict(canary), "rate": r_c, "interval": wilson(s_c, n_c, confidence)},
        "difference": diff, "difference_interval": (lo, hi), "p_value": p,
        "better": ("canary" if diff > 0 else "production") if significant else None,
        "canary_not_worse": n_p > 0 and n_c > 0 and lo >= -margin * r_p,
    }


def arm_of(rows: list[dict[str, Any]], variant: str) -> Arm:
    """The arm ``variant`` from the analytics store's rows (``genrec.stores.analytics.AbRow`` as dicts);
    an arm with no lists yet is empty."""
    row = next((r for r in rows if r["variant"] == variant), None)
    if row is None:
        return Arm(variant, 0, 0, 0, 0)
    return Arm(variant, row["lists"], row["users"], row["clicked"], row["converted"], tuple(row["versions"]))


def report(rows: list[dict[str, Any]], timeline: list[dict[str, Any]] | None = None, *, margin: float = 0.0,
           confidence: float = 0.95) -> dict[str, Any]:
    """Click-through and conversion of both arms compared, the canary's share of lists, and per hour
    each arm's click-through (``timeline``: the store's rows by hour)."""
    production, canary = arm_of(rows, "production"), arm_of(rows, "canary")
    lists = production.lists + canary.lists
    hours: dict[str, dict[str, Any]] = {}
    for r in timeline or []:
        hour = r["hour"] if isinstance(r["hour"], str) else r["hour"].isoformat()
        hours.setdefault(hour, {"hour": hour})[r["variant"]] = {
            "lists": r["lists"], "ctr": r["clicked"] / r["lists"] if r["lists"] else 0.0}
    return {
        "canary_share": canary.lists / lists if lists else 0.0,
        "ctr": compare(production, canary, metric="ctr", margin=margin, confidence=confidence),
        "conversion": compare(production, canary, metric="conversion", margin=margin, confidence=confidence),
        "timeline": [hours[h] for h in sorted(hours)],
    }
