"""A canary's weight is a share of users: stable per user, fresh per canary."""

from __future__ import annotations

from genrec.serving.artifact import Canary


def test_a_canary_takes_its_weight_of_users_and_keeps_them() -> None:
    canary = Canary("s3://genrec/models/v2", "v2", 0.2)
    users = [f"user-{i}" for i in range(20_000)]
    taken = [canary.takes(u) for u in users]
    assert 0.18 < sum(taken) / len(users) < 0.22
    assert taken == [canary.takes(u) for u in users]  # a user sees one version throughout
    assert not canary.takes(None) and not canary.takes("")  # anonymous requests stay on production
    assert not any(Canary("s3://genrec/models/v2", "v2", 0.0).takes(u) for u in users[:1000])
    assert all(Canary("s3://genrec/models/v2", "v2", 1.0).takes(u) for u in users[:1000])


def test_each_canary_draws_a_fresh_sample() -> None:
    users = [f"user-{i}" for i in range(20_000)]
    first, second = Canary("a", "v2", 0.2), Canary("b", "v3", 0.2)
    both = sum(first.takes(u) and second.takes(u) for u in users) / len(users)
    assert 0.03 < both < 0.05  # independent draws overlap at 0.2 x 0.2
