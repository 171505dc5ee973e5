"""`genrec bench serving`: the model server alone (real Triton, real HTTP, tritonclient).

For each catalogue size a synthetic artifact is written (random unique codes over the
production code layout 4 x 256, and an *untrained* TigerModel of the production size:
``GenerativeConfig`` defaults; latency depends on shapes, not weight values). One server
serves it twice: ``genrec`` (dynamic batching) and ``genrec_nobatch`` (none). Measured:

* batch sweep: one client, sequential requests of B users (B = 1..64) -> latency
  p50/p95/p99 per request and users/s;
* concurrency: C clients sending single-user requests at once, with and without dynamic
  batching -> latency percentiles, users/s, and the mean batch Triton actually executed;
* the compute floor (``genrec.serving.floor``): the FLOPs of a request over the matmul
  throughput of this CPU, beside the server's CPU time per user in the batch sweep and the
  graph's own (``graph_alone``: called in process on one thread, before the server starts).

The client runs on the same machine as the server (they share its cores): on a small
box the numbers are a floor for what a dedicated replica does. End-to-end numbers of the
recommend API (client -> recommend function -> model server) come from `genrec bench load`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from genrec.bench.report import finish_figure, machine_info, write_report
from genrec.config import TOP_K
from genrec.serving.launch import UNBATCHED_TWIN, serving_python
from genrec.serving.synthetic import PRODUCTION_LEVELS, describe_model, make_artifact, production_model

BUDGETS: dict[str, dict[str, Any]] = {
    # ~1 min: does it run at all
    "smoke": {"sizes": [2_000], "batches": [1, 8], "point_s": 1.0, "min_requests": 3, "concurrency": 4},
    # ~10 min on 2 CPU cores
    "cpu": {"sizes": [10_000, 100_000, 1_000_000], "batches": [1, 8, 16, 32, 64], "point_s": 4.0,
            "min_requests": 5, "concurrency": 16},
    "gpu": {"sizes": [10_000, 100_000, 1_000_000], "batches": [1, 8, 16, 32, 64], "point_s": 15.0,
            "min_requests": 50, "concurrency": 64},
}


# ------------------------------------------------------------------ server
class LocalServer:
    """Triton from .venv-serving on a free port, serving one pinned artifact (and its unbatched twin), or
    a model repository as it is (as KServe's Triton runtime serves one)."""

    def __init__(self, workdir: Path, *, artifact: Path | None = None, repository: Path | None = None,
                 threads: int = 0, instances: int = 1) -> None:
        self.port = _free_port_triplet()
        self.url = f"127.0.0.1:{self.port}"
        self.log = workdir / "server.log"
        argv = [str(serving_python()), "-m", "genrec.serving.launch", "--http-port", str(self.port),
                "--workdir", str(workdir)]
        if repository is not None:
            argv += ["--model-repository", str(repository)]
            self.models: tuple[str, ...] = ("genrec",)
        else:
            argv += ["--artifact", str(artifact), "--no-feed", "--blocking-load", "--with-unbatched-twin",
                     "--threads", str(threads), "--instances", str(instances)]
            self.models = ("genrec", UNBATCHED_TWIN)
        workdir.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout_s: float = 900.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"model server exited; see {self.log}")
            try:
                ok = [httpx.get(f"http://{self.url}/v2/models/{m}/ready", timeout=2).status_code == 200
                      for m in self.models]
                if all(ok):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        raise TimeoutError(f"model server not ready after {timeout_s}s; see {self.log}")

    def stats(self, model: str) -> tuple[int, int]:
        """(inference_count, execution_count): their ratio is the mean executed batch."""
        import httpx

        s = httpx.get(f"http://{self.url}/v2/models/{model}/stats", timeout=5).json()["model_stats"][0]
        return int(s["inference_count"]), int(s["execution_count"])

    def cpu_seconds(self) -> float:
        """CPU time (user + system) so far of the server's processes: Triton and the model's stub."""
        import psutil

        from genrec.bench.profile import process_tree_cpu

        return sum(process_tree_cpu(psutil.Process(self.proc.pid)).values())

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _free_port_triplet() -> int:
    from genrec.devstack.process import port_is_free

    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port < 65000 and all(port_is_free("127.0.0.1", port + i) for i in (1, 2)):
            return port
    raise RuntimeError("no three consecutive free ports")


# ------------------------------------------------------------------ load
def _client(url: str, model: str):
    from genrec.serving.breaker import CircuitBreaker
    from genrec.serving.client import ModelClient

    return ModelClient(url=url, model_name=model, timeout_s=120.0, breaker=CircuitBreaker(1_000_000, 0.0))


def _histories(rng: np.random.Generator, n_items: int, batch: int, length: int) -> np.ndarray:
    return rng.integers(0, n_items, size=(batch, length), dtype=np.int64)


def _summary(latencies: list[float], users: int, seconds: float) -> dict[str, Any]:
    lat = np.asarray(latencies) * 1000
    return {
        "requests": len(lat), "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p95_ms": round(float(np.percentile(lat, 95)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "mean_ms": round(float(lat.mean()), 2), "users_per_s": round(users / seconds, 1),
        "requests_per_s": round(len(lat) / seconds, 2), "seconds": round(seconds, 2),
    }


def sweep_point(server: LocalServer, n_items: int, batch: int, length: int, point_s: float, min_requests: int,
                seed: int = 0) -> dict[str, Any]:
    client, rng = _client(server.url, "genrec"), np.random.default_rng(seed)
    lat: list[float] = []
    cpu = server.cpu_seconds()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < point_s or len(lat) < min_requests:
        seq = _histories(rng, n_items, batch, length)
        t = time.perf_counter()
        client.infer(seq)
        lat.append(time.perf_counter() - t)
    out = _summary(lat, batch * len(lat), time.perf_counter() - t0)
    out["server_cpu_ms_per_user"] = round((server.cpu_seconds() - cpu) * 1000 / (batch * len(lat)), 3)
    return out


def compute_floors(artifact: Path, batches: list[int], length: int, threads: int) -> dict[str, Any]:
    """The compute floor of the served graph for each batch size (FLOPs per user, and the matmul
    throughput at that batch's GEMM shape on one thread and on the server's threads)."""
    from genrec.serving.artifact import ServingArtifact
    from genrec.serving.floor import compute_floor
    from genrec.serving.graph import TableTensors, base_table, build_graph

    art = ServingArtifact.open(artifact)
    graph, table = build_graph(art, TOP_K), TableTensors.from_table(base_table(art))
    return {str(b): compute_floor(graph, table, length, batch=b, threads=threads).as_dict() for b in batches}


def graph_alone(artifact: Path, batches: list[int], length: int, seconds: float = 1.0) -> dict[str, float]:
    """The served graph (as the model server builds it) called in this process on one thread: its
    median milliseconds per user by batch size. One thread, so this is its CPU time, beside the
    server's CPU time per user (the rest is the server: Triton, IPC, batching) and the floor."""
    import torch

    from genrec.bench.graph import measure_artifact

    rows = measure_artifact(artifact, batches, length, torch.device("cpu"), seconds)
    return {str(r["batch"]): round(r["served"]["p50_ms"] / r["batch"], 3) for r in rows}


def concurrency_point(server: LocalServer, model: str, n_items: int, clients: int, length: int, point_s: float,
                      min_requests: int) -> dict[str, Any]:
    lat: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + point_s

    def worker(seed: int) -> None:
        client, rng = _client(server.url, model), np.random.default_rng(seed)
        done = 0
        while time.perf_counter() < stop_at or done < min_requests:
            seq = _histories(rng, n_items, 1, length)
            t = time.perf_counter()
            client.infer(seq)
            with lock:
                lat.append(time.perf_counter() - t)
            done += 1

    before = server.stats(model)
    server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    seconds = time.perf_counter() - t0
    after = server.stats(model)
    out = _summary(lat, len(lat), seconds)
    executions = max(after[1] - before[1], 1)
    # The clients share the machine: the server's own CPU per user is what a replica with its cores
    # to itself would spend (the capacity plan's input), the clients' (this process's threads) what this
    # benchmark adds.
    out.update(clients=clients, mean_executed_batch=round((after[0] - before[0]) / executions, 2),
               server_cpu_ms_per_user=round((server.cpu_seconds() - server_cpu) * 1000 / len(lat), 3),
               client_cpu_ms_per_user=round((time.process_time() - client_cpu) * 1000 / len(lat), 3))
    return out


# ------------------------------------------------------------------ driver
def run_serving_bench(
    out_dir: Path = Path("bench/results"),
    *,
    budget: str = "cpu",
    sizes: list[int] | None = None,
    batches: list[int] | None = None,
    length: int = 20,
    threads: int = 1,
    instances: int = 0,
    workdir: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    cfg = dict(BUDGETS[budget])
    cfg["sizes"] = sizes or cfg["sizes"]
    cfg["batches"] = batches or cfg["batches"]
    instances = instances or os.cpu_count() or 1  # as the deployment runs a CPU replica: one per core
    work = workdir or Path(tempfile.mkdtemp(prefix="genrec-bench-serving-"))
    results: dict[str, Any] = {
        "benchmark": "serving", "budget": budget, "machine": machine_info(),
        "config": {**cfg, "history_length": length, "instances": instances, "torch_threads": threads or "all cores"},
        "model": production_model(),
        "sweep": [], "concurrency": [], "floor": {}, "graph": {},
    }
    started = time.perf_counter()
    for n in cfg["sizes"]:
        log(f"catalogue {n:,} items: writing a synthetic artifact")
        art = make_artifact(work / f"artifact-{n}", n, level_sizes=PRODUCTION_LEVELS, seed=n % 9973)
        if not results["floor"]:  # FLOPs do not depend on the catalogue; measured before any server runs
            results["floor"] = compute_floors(art, cfg["batches"], length, threads and threads * instances)
            one = results["floor"][str(cfg["batches"][0])]
            log(f"compute floor: {one['flops_per_user'] / 1e6:.1f} MFLOP per user, "
                f"{one['floor']['1']['ms_per_user']} ms per user on one thread")
        results["graph"][str(n)] = graph_alone(art, cfg["batches"], length)
        log(f"  the graph alone, one thread: {results['graph'][str(n)]} ms per user by batch size")
        server = LocalServer(work / f"server-{n}", artifact=art, threads=threads, instances=instances)
        try:
            t = time.perf_counter()
            server.wait_ready()
            log(f"  server ready in {time.perf_counter() - t:.0f}s; warming up")
            for model in ("genrec", UNBATCHED_TWIN):
                for b in (1, 64):
                    _client(server.url, model).infer(_histories(np.random.default_rng(0), n, b, length))
            for b in cfg["batches"]:
                point = sweep_point(server, n, b, length, cfg["point_s"], cfg["min_requests"])
                results["sweep"].append({"catalog": n, "batch": b, **point})
                log(f"  batch {b:>2}: p50 {point['p50_ms']} ms, p99 {point['p99_ms']} ms, "
                    f"{point['users_per_s']} users/s")
            for model, label in (("genrec", "on"), (UNBATCHED_TWIN, "off")):
                point = concurrency_point(server, model, n, cfg["concurrency"], length, 2 * cfg["point_s"],
                                          cfg["min_requests"])
                results["concurrency"].append({"catalog": n, "dynamic_batching": label, **point})
                log(f"  {cfg['concurrency']} clients x batch 1, dynamic batching {label}: p50 {point['p50_ms']} ms, "
                    f"p99 {point['p99_ms']} ms, {point['users_per_s']} users/s, "
                    f"executed batch {point['mean_executed_batch']}")
        finally:
            server.stop()
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    write_results(results, out_dir)
    return results


# ------------------------------------------------------------------ report
def result_stem(results: dict[str, Any]) -> str:
    return f"serving-{results['budget']}"


def _instances(config: dict[str, Any]) -> str:
    """How the server ran its model (reports from before ``instances`` ran one instance)."""
    n, threads = config.get("instances", 1), config.get("torch_threads", "all cores")
    return f"{n} model instance{'s' if n > 1 else ''}, {threads} torch thread{'s' if threads != 1 else ''} each"


def markdown_report(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"# Model server benchmark ({results['budget']})", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GiB, GPU: {m['gpu'] or 'none'}; "
        f"torch {m['torch']}; load average {m['load_average_at_start']} at start, "
        f"{m.get('load_average_at_end')} at end. Client and server share the machine.", "",
        f"Model: {describe_model(results['model'])}; "
        f"history length {results['config']['history_length']}. Server: {_instances(results['config'])}.", "",
        "## Latency by batch size (one client, sequential requests)", "",
        "| catalogue | batch | requests | p50 ms | p95 ms | p99 ms | users/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["sweep"]:
        lines.append(f"| {r['catalog']:,} | {r['batch']} | {r['requests']} | {r['p50_ms']} | {r['p95_ms']} | "
                     f"{r['p99_ms']} | {r['users_per_s']} |")
    lines += [
        "", f"## {results['config']['concurrency']} concurrent clients, single-user requests", "",
        "| catalogue | dynamic batching | requests | p50 ms | p95 ms | p99 ms | users/s | executed batch | "
        "server CPU ms/user | users/s per server core | clients' CPU ms/user |",
        "|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["concurrency"]:
        server_ms = r.get("server_cpu_ms_per_user")  # reports before session 44 lack it
        per_core = round(1000 / server_ms, 1) if server_ms else "-"
        lines.append(f"| {r['catalog']:,} | {r['dynamic_batching']} | {r['requests']} | {r['p50_ms']} | "
                     f"{r['p95_ms']} | {r['p99_ms']} | {r['users_per_s']} | {r['mean_executed_batch']} | "
                     f"{server_ms or '-'} | {per_core} | {r.get('client_cpu_ms_per_user', '-')} |")
    return "\n".join(lines + floor_report(results)) + "\n"


def floor_report(results: dict[str, Any]) -> list[str]:
    """The "Compute floor" section: the floor by batch, then each sweep point's CPU time per user
    against it (the floor on one thread is CPU time: all the server's threads count), with the
    graph's own CPU time (called in process on one thread) between the two."""
    floors = results.get("floor") or {}
    if not floors:
        return []
    any_floor = next(iter(floors.values()))
    threads = max(int(t) for t in any_floor["gflops"])
    lines = [
        "", "## Compute floor", "",
        f"FLOPs per user (matrix products and attention, counted on the serving graph): "
        f"{any_floor['flops_per_user'] / 1e6:.1f} M. Throughput: fp32 `torch.mm` of the decoder's largest GEMM "
        f"at the batch's shape, best of short loops. Floor = FLOPs / throughput.", "",
        f"| batch | GEMM timed | GFLOP/s 1 thread | GFLOP/s {threads} threads | floor ms/user (1 thread) | "
        f"floor users/s ({threads} threads) |",
        "|---:|:---:|---:|---:|---:|---:|",
    ]
    for b, f in floors.items():
        m, k, n = f["gemm"]
        lines.append(f"| {b} | [{m}, {k}] x [{k}, {n}] | {f['gflops']['1']} | {f['gflops'][str(threads)]} | "
                     f"{f['floor']['1']['ms_per_user']} | {f['floor'][str(threads)]['users_per_s']} |")
    lines += [
        "", "Graph: the served graph alone, called in process on one thread (its CPU time per user).", "",
        "| catalogue | batch | server CPU ms/user | graph ms/user | floor ms/user | CPU / floor | graph / floor | "
        "users/s | floor users/s | floor / users/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    graphs = results.get("graph") or {}
    for r in results["sweep"]:
        f = floors.get(str(r["batch"]))
        if f is None or "server_cpu_ms_per_user" not in r:
            continue
        floor_ms, floor_users = f["floor"]["1"]["ms_per_user"], f["floor"][str(threads)]["users_per_s"]
        graph_ms = graphs.get(str(r["catalog"]), {}).get(str(r["batch"]))
        ratio = "-" if graph_ms is None else f"{graph_ms / floor_ms:.1f}x"
        lines.append(f"| {r['catalog']:,} | {r['batch']} | {r['server_cpu_ms_per_user']} | {graph_ms or '-'} | "
                     f"{floor_ms} | {r['server_cpu_ms_per_user'] / floor_ms:.1f}x | {ratio} | {r['users_per_s']} | "
                     f"{floor_users} | {floor_users / r['users_per_s']:.1f}x |")
    return lines


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    sizes = sorted({r["catalog"] for r in results["sweep"]})
    for n in sizes:
        rows = [r for r in results["sweep"] if r["catalog"] == n]
        b = [r["batch"] for r in rows]
        axes[0].plot(b, [r["p50_ms"] for r in rows], marker="o", label=f"{n:,} p50")
        axes[0].plot(b, [r["p99_ms"] for r in rows], marker="x", linestyle="--", label=f"{n:,} p99")
        axes[1].plot(b, [r["users_per_s"] for r in rows], marker="o", label=f"{n:,} items")
    batches = sorted({r["batch"] for r in results["sweep"]})
    axes[0].set(xlabel="batch size (users per request)", ylabel="latency (ms)", title="latency per request",
                yscale="log")
    axes[1].set(xlabel="batch size", ylabel="users / s", title="throughput, one client")
    for ax in axes[:2]:
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.minorticks_off()
    conc = results["concurrency"]
    x = np.arange(len(sizes))
    for k, label in enumerate(("on", "off")):
        vals = [next((r["users_per_s"] for r in conc if r["catalog"] == n and r["dynamic_batching"] == label), 0)
                for n in sizes]
        axes[2].bar(x + (k - 0.5) * 0.38, vals, width=0.38, label=f"dynamic batching {label}")
    axes[2].set_xticks(x, [f"{n:,}" for n in sizes])
    axes[2].set(xlabel="catalogue items", ylabel="users / s",
                title=f"{results['config']['concurrency']} concurrent single-user clients")
    finish_figure(fig, axes, f"genrec model server (Triton, CPU: {results['machine']['cores']} cores)", path)


def write_results(results: dict[str, Any], out_dir: Path) -> Path:
    return write_report(results, Path(out_dir) / result_stem(results), markdown_report, plot)
