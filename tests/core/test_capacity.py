"""The capacity plan's arithmetic and its refusal of runs that do not measure what it needs."""

from __future__ import annotations

import pytest

from genrec.bench.capacity import GPU_BATCH, TIERS, build, plan


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


def _graph_run(device: str, users_per_s: dict[int, float], captured: bool = True) -> dict:
    def timing(u: float) -> dict:
        return {"p50_ms": round(GPU_BATCH * 1000 / u, 3), "p99_ms": None, "users_per_s": u}

    rows = [{"catalog": n, "batch": GPU_BATCH, "traced": timing(u / 2),
             **({"cuda_graph": timing(u)} if captured else {"cuda_graph": {"error": "capture failed"}})}
            for n, u in users_per_s.items()]
    return {"device": device, "machine": {"gpu": "test GPU"}, "rows": rows}


def test_gpus_carry_the_misses_at_the_served_graphs_slowest_rate() -> None:
    ms = {"recommend": 4.0, "model-server": 6.0}
    runs = (_run({"model": 100}, ms), _run({"cache": 100}, {"recommend": 2.0}))
    c = build(*runs, utilisation=0.5, graph_run=_graph_run("cuda", {10_000: 60_000.0, 1_000_000: 40_000.0}))
    gpu = c["gpu"]
    # the traced graph (what the server runs) of the slowest catalogue; its replay quoted beside
    assert (gpu["users_per_s"], gpu["catalog"], gpu["replay_users_per_s"]) == (20_000.0, 1_000_000, 40_000.0)
    rows = {(r["rate"], r["hit_ratio"]): r["gpus"] for r in gpu["rows"]}
    # 1 M requests/s, no hits: 1 M users/s over 20 k users/s per GPU planned at 50 %: 100 GPUs
    assert rows[(1_000_000, 0.0)] == 100 and rows[(1_000_000, 0.95)] == 5 and rows[(10_000, 0.95)] == 1
    # where the replay could not be captured, none is quoted
    traced = build(*runs, graph_run=_graph_run("cuda", {10_000: 30_000.0}, captured=False))["gpu"]
    assert (traced["users_per_s"], traced["replay_users_per_s"]) == (15_000.0, None)
    with pytest.raises(ValueError, match="CUDA device"):
        build(*runs, graph_run=_graph_run("cpu", {10_000: 300.0}))
