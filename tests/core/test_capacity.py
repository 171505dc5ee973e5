"""The capacity plan's arithmetic and its refusal of runs that do not measure what it needs."""

from __future__ import annotations

import pytest

from genrec.bench.capacity import TIERS, build, plan


def _run(served_by: dict[str, int], ms: dict[str, float], mixed: bool = False) -> dict:
    n = sum(served_by.values())
    return {"machine": {"cpu": "test CPU", "cores": 2}, "started": "now",
            "recommend": {"requests": n, "per_s": 100.0, "latency_ms": {"p99": 40.0}, "served_by": served_by},
            "cpu_budget": [{"unit": "request", "units": n, "mixed": mixed,
                            "processes": {p: {"cpu_ms": v} for p, v in ms.items()}}]}


def test_cores_follow_the_hit_ratio_and_replicas_round_up() -> None:
    miss = {t.name: 0.0 for t in TIERS} | {"recommend": 4.0, "model server": 6.0}
    hit = {t.name: 0.0 for t in TIERS} | {"recommend": 2.0}
    rows = plan(miss, hit, utilisation=0.5, rates=(1000,), hit_ratios=(0.0, 0.5))
    cold, half = rows
    # 1,000 req/s x 4 ms = 4 cores of work, planned at 50 %: 8 cores, 8 one-core replicas.
    assert cold["tiers"]["recommend"] == {"cores": 8.0, "replicas": 8}
    assert cold["tiers"]["model server"] == {"cores": 12.0, "replicas": 6}  # two-core replicas
    assert half["tiers"]["recommend"]["cores"] == 6.0 and half["tiers"]["model server"]["cores"] == 6.0
    assert half["tiers"]["Redis"] == {"cores": 0.0, "replicas": 1}  # every tier keeps one replica
    assert half["cores"] == 12.0


def test_a_plan_needs_a_model_served_miss_run_and_a_cache_served_hit_run() -> None:
    ms = {"recommend": 4.0, "model-server": 6.0, "redis": 0.3, "kafka": 0.2, "s3": 0.5}
    c = build(_run({"model": 100}, ms), _run({"cache": 100}, {"recommend": 2.0}))
    assert c["miss_ms"]["served-list log"] == pytest.approx(0.7) and c["hit_ms"]["model server"] == 0.0
    with pytest.raises(ValueError, match="not served by the model"):
        build(_run({"popularity": 100}, ms), _run({"cache": 100}, ms))
    with pytest.raises(ValueError, match="not served from the cache"):
        build(_run({"model": 100}, ms), _run({"model": 100}, ms))
    with pytest.raises(ValueError, match="recommend load alone"):
        build(_run({"model": 100}, ms, mixed=True), _run({"cache": 100}, ms))
