"""`genrec bench capacity`: cores and replicas for a request rate, from measured CPU per request.

The inputs are two profiled load runs (``genrec bench load --profile``): one whose every request was
a cache miss served by the model, one whose every request was a cache hit (``--cache-hits 1``). Each
gives the CPU milliseconds one request costs in every process. For a rate ``Q`` (requests/s) and a
cache-hit ratio ``h``, a tier needs

    cores = Q * (h * hit_ms + (1 - h) * miss_ms) / 1000 / utilisation

``utilisation`` is the share of a core a tier is planned to use: queues, and with them the p99, grow
steeply as it nears 1. Replicas are the cores divided by a replica's size, rounded up. The load
clients are left out (in production they are the callers), and so is the event path (issue 23's
budget per event sizes it).

With a GPU run of the served graph (``genrec bench graph`` on a CUDA machine), the plan also gives
the GPUs that carry the misses' model work: ``gpus = Q * (1 - h) / (users/s of one GPU * utilisation)``,
one GPU's users/s being the slowest catalogue's at ``GPU_BATCH`` users per call, for the graph as the
model server runs it on a GPU without a TensorRT plan (traced); its CUDA-graph replay is quoted beside.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RATES = (10_000, 100_000, 1_000_000)
HIT_RATIOS = (0.0, 0.5, 0.8, 0.95)
# Users per call a GPU replica's batcher is planned to fill: past it, a call's latency grows about as
# fast as its users (the graph is no longer launch-bound), and one call must stay well inside p99 < 50 ms.
GPU_BATCH = 256


@dataclass(frozen=True)
class Tier:
    name: str
    processes: tuple[str, ...]  # the load run's process names whose CPU this tier carries
    replica_cores: float  # cores per replica
    why: str


TIERS = (
    Tier("recommend", ("recommend",), 1.0, "one uvicorn process: Python runs one core's worth per process"),
    Tier("model server", ("model-server",), 2.0, "one single-thread Triton model instance per core "
                                                 "requested (model_server.instances), fed by the dynamic batcher"),
    Tier("Redis", ("redis",), 1.0, "a shard is single-threaded"),
    Tier("PostgreSQL", ("postgres",), 4.0, "catalogue rows (cached for seconds per recommend replica)"),
    Tier("served-list log", ("kafka", "s3", "kafka-retention", "bridge-bulk", "analytics-sink"), 2.0,
         "each list's `recommendation.served` event: broker, its storage, delivery, the analytics sink"),
)


def per_request_ms(run: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """CPU ms per request of each tier, and where the figures came from."""
    budgets = [b for b in run.get("cpu_budget", []) if b["unit"] == "request"]
    if not budgets or budgets[0].get("mixed"):
        raise ValueError("the run needs a CPU budget per request from recommend load alone "
                         "(genrec bench load --profile --event-clients 0x0)")
    processes = budgets[0]["processes"]
    ms = {t.name: sum((processes.get(p) or {}).get("cpu_ms") or 0.0 for p in t.processes) for t in TIERS}
    rec = run["recommend"]
    source = {"machine": run["machine"].get("cpu"), "cores": run["machine"].get("cores"),
              "started": run.get("started"), "requests": rec["requests"], "per_s": rec["per_s"],
              "p99_ms": rec["latency_ms"]["p99"], "served_by": rec["served_by"]}
    return ms, source


def plan(miss: dict[str, float], hit: dict[str, float], *, utilisation: float = 0.5,
         rates: tuple[int, ...] = RATES, hit_ratios: tuple[float, ...] = HIT_RATIOS) -> list[dict[str, Any]]:
    """One row per (rate, hit ratio): cores and replicas per tier, and in all."""
    rows = []
    for q in rates:
        for h in hit_ratios:
            tiers = {}
            for t in TIERS:
                cores = q * (h * hit[t.name] + (1 - h) * miss[t.name]) / 1000 / utilisation
                tiers[t.name] = {"cores": round(cores, 1), "replicas": max(1, math.ceil(cores / t.replica_cores))}
            rows.append({"rate": q, "hit_ratio": h, "tiers": tiers,
                         "cores": round(sum(v["cores"] for v in tiers.values()), 1)})
    return rows


def gpu_throughput(graph_run: dict[str, Any], batch: int = GPU_BATCH) -> dict[str, Any]:
    """One GPU's users/s for the served graph at ``batch``, the slowest catalogue's: traced, as the model
    server runs it; and its CUDA-graph replay's (what capturing it would add), where it was captured."""
    served = [{**r, "served": r.get("served") or r.get("traced")} for r in graph_run["rows"]]  # "traced": older runs
    rows = [r for r in served if r["batch"] == batch and "p50_ms" in (r["served"] or {})]
    if graph_run.get("device", "cpu") == "cpu" or not rows:
        raise ValueError(f"the graph run needs a CUDA device and batch {batch} (genrec bench graph on a GPU)")
    slowest = min(rows, key=lambda r: r["served"]["users_per_s"])
    replays = [r["cuda_graph"]["users_per_s"] for r in rows if "users_per_s" in (r.get("cuda_graph") or {})]
    return {"gpu": graph_run["machine"].get("gpu"), "batch": batch, "catalog": slowest["catalog"],
            "users_per_s": slowest["served"]["users_per_s"], "p50_ms": slowest["served"]["p50_ms"],
            "replay_users_per_s": min(replays) if len(replays) == len(rows) else None}


def gpu_plan(gpu: dict[str, Any], utilisation: float, rates: tuple[int, ...] = RATES,
             hit_ratios: tuple[float, ...] = HIT_RATIOS) -> list[dict[str, Any]]:
    # rounded before the ceiling: 1 - 0.95 is a hair over 0.05 in floating point
    return [{"rate": q, "hit_ratio": h,
             "gpus": max(1, math.ceil(round(q * (1 - h) / (gpu["users_per_s"] * utilisation), 6)))}
            for q in rates for h in hit_ratios]


def build(miss_run: dict[str, Any], hit_run: dict[str, Any], utilisation: float = 0.5,
          graph_run: dict[str, Any] | None = None) -> dict[str, Any]:
    miss, miss_source = per_request_ms(miss_run)
    hit, hit_source = per_request_ms(hit_run)
    if miss_source["served_by"].get("model", 0) < 0.9 * miss_source["requests"]:
        raise ValueError(f"the miss run was not served by the model: {miss_source['served_by']}")
    if hit_source["served_by"].get("cache", 0) < 0.9 * hit_source["requests"]:
        raise ValueError(f"the hit run was not served from the cache: {hit_source['served_by']}")
    out = {"miss_ms": miss, "hit_ms": hit, "sources": {"miss": miss_source, "hit": hit_source},
           "utilisation": utilisation, "rows": plan(miss, hit, utilisation=utilisation)}
    if graph_run is not None:
        gpu = gpu_throughput(graph_run)
        out["gpu"] = {**gpu, "rows": gpu_plan(gpu, utilisation)}
    return out


def gpu_markdown(gpu: dict[str, Any] | None, utilisation: float, gpu_file: str | None) -> list[str]:
    if gpu is None:
        return ["Not measured: no GPU run of the served graph (`genrec bench graph` on a CUDA machine) was given "
                "(`--gpu`). The model server's tier is the one a GPU replaces."]
    h_cols = sorted({r["hit_ratio"] for r in gpu["rows"]})
    replay = gpu.get("replay_users_per_s")
    lines = [
        f"The model's work for the misses on GPUs: `{gpu_file}`, the served graph alone on one {gpu['gpu']}, "
        f"traced as the model server runs it, {gpu['batch']} users per call: {gpu['users_per_s']:,.0f} users/s at "
        f"p50 {gpu['p50_ms']} ms a call (the slowest catalogue measured: {gpu['catalog']:,} items). "
        f"GPUs = Q × (1 − h) / (users/s × {utilisation:.0%})."
        + (f" Replayed as a CUDA graph the same calls give {replay:,.0f} users/s (the server does not capture "
           "one yet)." if replay else ""),
        "",
        "| requests/s | " + " | ".join(f"{h:.0%} hits" for h in h_cols) + " |",
        "| ---: | " + " | ".join("---:" for _ in h_cols) + " |",
    ]
    for q in sorted({r["rate"] for r in gpu["rows"]}):
        cells = [next(r["gpus"] for r in gpu["rows"] if r["rate"] == q and r["hit_ratio"] == h) for h in h_cols]
        lines.append(f"| {q:,} | " + " | ".join(f"{g:,} GPU{'s' if g > 1 else ''}" for g in cells) + " |")
    lines += [
        "",
        "With GPUs, the model server tier's cores above are replaced by these GPUs and the host cores that "
        "batch and feed them; the other tiers stay. Not yet measured on a GPU machine: the serving process "
        "around the graph (Triton, its Python backend, dynamic batching to this batch size) and TensorRT "
        "(the lent machine had neither); on a CPU that wrapper cost about 1.5 ms of CPU a request.",
    ]
    return lines


def markdown(c: dict[str, Any], miss_file: str, hit_file: str, gpu_file: str | None = None) -> str:
    src = c["sources"]
    names = [t.name for t in TIERS]
    lines = [
        "# Capacity plan",
        "",
        "Generated by `genrec bench capacity` from two measured load runs; rerun it after new runs. "
        "Formula: cores per tier = Q × (h × hit ms + (1 − h) × miss ms) / 1000 / utilisation, replicas = "
        f"cores / replica size, rounded up. Utilisation {c['utilisation']:.0%}: a tier is planned at that share "
        "of its cores, leaving room for bursts and keeping queueing (the p99) low.",
        "",
        "## Measured inputs (CPU ms per request)",
        "",
        f"- cache miss, served by the model: `{miss_file}` ({src['miss']['requests']:,} requests, "
        f"{src['miss']['per_s']} req/s, p99 {src['miss']['p99_ms']:.0f} ms on {src['miss']['machine']}, "
        f"{src['miss']['cores']} cores, {src['miss']['started']})",
        f"- cache hit: `{hit_file}` ({src['hit']['requests']:,} requests, {src['hit']['per_s']} req/s, "
        f"p99 {src['hit']['p99_ms']:.0f} ms, {src['hit']['started']})",
        "",
        "| tier | miss ms | hit ms | replica | why that size |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for t in TIERS:
        lines.append(f"| {t.name} | {c['miss_ms'][t.name]:.2f} | {c['hit_ms'][t.name]:.2f} | "
                     f"{t.replica_cores:g} core{'s' if t.replica_cores != 1 else ''} | {t.why} |")
    lines += ["", "## Cores (replicas) per tier", "",
              "| requests/s | cache hits | " + " | ".join(names) + " | all cores |",
              "| ---: | ---: | " + " | ".join("---:" for _ in names) + " | ---: |"]
    for r in c["rows"]:
        cells = [f"{r['tiers'][n]['cores']:,.0f} ({r['tiers'][n]['replicas']:,})" for n in names]
        lines.append(f"| {r['rate']:,} | {r['hit_ratio']:.0%} | " + " | ".join(cells) + f" | {r['cores']:,.0f} |")
    lines += ["", "## GPU", "", *gpu_markdown(c.get("gpu"), c["utilisation"], gpu_file)]
    lines += [
        "",
        "## What this leaves out",
        "",
        "- The event path (interactions into event capture and its consumers) is sized per event: see the "
        "CPU budget per event in `bench/results/load-events-*.md`.",
        "- Network and the ingress (Istio) in front of recommend.",
        "- The figures come from a 2-core machine where every process shares the cores; a dedicated "
        "replica usually does better, so the plan errs on the large side.",
    ]
    return "\n".join(lines) + "\n"


def write(miss_file: Path, hit_file: Path, doc: Path, data: Path, utilisation: float = 0.5,
          gpu_file: Path | None = None) -> dict[str, Any]:
    """The plan as Markdown (``doc``) and JSON (``data``)."""
    graph_run = json.loads(gpu_file.read_text()) if gpu_file else None
    c = build(json.loads(miss_file.read_text()), json.loads(hit_file.read_text()), utilisation, graph_run)
    for path in (doc, data):
        path.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(markdown(c, str(miss_file), str(hit_file), str(gpu_file) if gpu_file else None))
    data.write_text(json.dumps(c, indent=2))
    return c
