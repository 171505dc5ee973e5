"""The A/B statistics against textbook values and against simulated arms with planted rates."""

from __future__ import annotations

import random

import pytest

from genrec.evaluation.abtest import Arm, compare, two_proportion_p, wilson, z_of


def test_textbook_values() -> None:
    assert z_of(0.95) == pytest.approx(1.959964, abs=1e-5)
    assert z_of(0.99) == pytest.approx(2.575829, abs=1e-5)
    # Wilson 95 % for 10 of 100: (0.0552, 0.1744) (Newcombe 1998, table I style)
    assert wilson(10, 100) == pytest.approx((0.05523, 0.17437), abs=1e-4)
    assert wilson(0, 20)[0] == 0.0 and wilson(20, 20)[1] == 1.0
    # 40/400 vs 60/400: pooled 0.125, z = 0.05 / 0.02339 = 2.138, two-sided p = 0.0325
    assert two_proportion_p(40, 400, 60, 400) == pytest.approx(0.0325, abs=1e-3)


def _arm(variant: str, n: int, ctr: float, rng: random.Random) -> Arm:
    clicked = sum(rng.random() < ctr for _ in range(n))
    return Arm(variant, n, n, clicked, clicked // 4)


def test_planted_rates_name_the_better_arm_or_none() -> None:
    rng = random.Random(7)
    better = compare(_arm("production", 9000, 0.08, rng), _arm("canary", 1000, 0.12, rng))
    assert better["better"] == "canary" and better["p_value"] < 0.01 and better["canary_not_worse"]
    lo, hi = better["difference_interval"]
    assert lo < 0.04 < hi
    worse = compare(_arm("production", 9000, 0.10, rng), _arm("canary", 1000, 0.06, rng))
    assert worse["better"] == "production" and not worse["canary_not_worse"]
    same = compare(_arm("production", 9000, 0.10, rng), _arm("canary", 1000, 0.10, rng), margin=0.2)
    assert same["better"] is None and same["canary_not_worse"]
    empty = compare(Arm("production", 0, 0, 0, 0), Arm("canary", 0, 0, 0, 0))
    assert empty["better"] is None and not empty["canary_not_worse"]
