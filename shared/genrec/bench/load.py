"""`genrec bench load`: sustained mixed traffic against a running stack, from separate processes.

Recommendation requests (top-50, by default every request a cache miss: each goes to a user nobody
has asked about yet, whose history was just written to Redis; ``cache_hits`` asks that share of them
again for a user already answered) and interaction events (batched CloudEvents into event-capture)
run closed-loop for a fixed time. The event clients stand in for upstream systems, which run on
other machines: here they run at the event path's nice value, so that on a shared box they take
CPU from the event path they feed rather than from the recommend requests being measured.
Meanwhile probes measure:

* freshness: a user clicks the top item of their list; how long until their next list no
  longer shows it (event-capture → Kafka → bridge → feature-update → cache invalidated);
* new item: an item is upserted; how long until it has a Semantic ID in the production
  model's code feed (cold-start-embedding); model servers pick the feed up within
  ``feed_poll_s`` (0.5 s) after that;
* consumer lag of every subscription, sampled during the run, and the time to drain after.

Needs `genrec dev up` and a model in production (`make demo` leaves both).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import numpy as np
import orjson
import psutil

from genrec.bench.parity import served_parity
from genrec.bench.profile import SamplingProfiler, budget, process_tree_cpu
from genrec.bench.profile import markdown as budget_markdown
from genrec.bench.report import machine_info, write_report
from genrec.config import MAX_HISTORY, TOP_K, Settings, get_settings
from genrec.events.codec import BATCH_CONTENT_TYPE
from genrec.events.contracts import INTERACTION, ITEM_UPSERTED
from genrec.workloads import NICENESS, PRIORITIES, Priority

SOURCE = "genrec-bench-load"
PROFILE_RATE_HZ = 100  # py-spy samples per second and process (--profile)


@dataclass
class LoadConfig:
    duration_s: float = 60.0
    recommend_processes: int = 2
    recommend_threads: int = 4  # closed-loop clients per process
    event_processes: int = 1
    event_threads: int = 2
    event_batch: int = 100
    event_rate: float = 0.0  # events/s offered in total, paced; 0 = as fast as event-capture accepts
    history_len: int = MAX_HISTORY
    count: int = TOP_K
    cache_hits: float = 0.0  # share of requests that ask again for a user already answered (the cache serves)
    freshness_probes: int = 20
    new_item_probes: int = 5
    seed: int = 0
    profile: bool = False  # sample every local Python process with py-spy (genrec.bench.profile)
    protocol: Literal["http", "grpc"] = "http"  # the recommend clients' API: HTTP/1.1 or recommend.v1 over gRPC
    # recommend requests/s offered in total, each client on a fixed schedule, latency counted from the
    # scheduled time (a late request's wait counts too); 0 = closed loop, as fast as answered
    recommend_rate: float = 0.0


class LoadError(RuntimeError):
    """The stack is not ready for a load run (message says what to do)."""


# ------------------------------------------------------------------ load processes
def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    arr = np.asarray(values)
    return {"p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95)),
            "p99": float(np.percentile(arr, 99)), "max": float(arr.max()), "mean": float(arr.mean())}


def _run_clients(client: Any, n: int) -> None:
    """``client(index)`` on ``n`` threads, until each returns."""
    threads = [threading.Thread(target=client, args=(t,)) for t in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class LeanClient:
    """One keep-alive HTTP/1.1 connection with the standard library: the load clients share the cores
    they measure, and httpx cost twice the CPU per request."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        self.host, self.port, self.timeout_s = parts.hostname or "127.0.0.1", parts.port or 80, timeout_s
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[str, bytes]:
        """(status code, or the exception's name; body)."""
        return self.request("GET", path)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[str, bytes]:
        """(status code, or the exception's name; body)."""
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            self.conn.request(method, path, body, headers or {})
            resp = self.conn.getresponse()
            return str(resp.status), resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return type(exc).__name__, b""

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


_SERVED_BY = re.compile(rb'"served_by":\s*"(\w+)"')


def _served_by(body: bytes) -> str:
    """The list's ``served_by``, read from the head of the body (parsing 50 items would cost more)."""
    match = _SERVED_BY.search(body, 0, 1024)
    return match.group(1).decode() if match else "error"


class GrpcAsker:
    """One channel to recommend-grpc: ``Generate`` for a user, as ``LeanClient`` asks the HTTP API."""

    def __init__(self, s: Settings, timeout_s: float) -> None:
        import grpc

        from genrec.api.recommend.v1 import recommend_pb2, recommend_pb2_grpc

        self.grpc, self.pb, self.timeout_s = grpc, recommend_pb2, timeout_s
        self.channel = grpc.insecure_channel(f"{s.stack.host}:{s.stack.port('recommend_grpc')}")
        self.stub = recommend_pb2_grpc.RecommendServiceStub(self.channel)

    def ask(self, user: str, count: int) -> tuple[str, str]:
        """(status code name, served_by)."""
        try:
            answer = self.stub.Generate(self.pb.GenerateRequest(user_id=user, count=count), timeout=self.timeout_s)
        except self.grpc.RpcError as exc:
            return exc.code().name, "error"
        return "OK", answer.served_by

    def close(self) -> None:
        self.channel.close()


class HttpAsker:
    def __init__(self, s: Settings, timeout_s: float) -> None:
        self.http = LeanClient(s.function_url("recommend"), timeout_s=timeout_s)

    def ask(self, user: str, count: int) -> tuple[str, str]:
        """(HTTP status, served_by)."""
        status, body = self.http.get(f"/api/v1/recommend/user/{user}?count={count}")
        return status, _served_by(body) if status == "200" else "error"

    def close(self) -> None:
        self.http.close()


def _recommend_process(args: tuple[list[str], LoadConfig, int, float]) -> dict[str, Any]:
    """One load process: ``recommend_threads`` closed-loop clients until ``deadline`` (wall clock).
    Settings come from the environment and genrec.toml, which the spawned process inherits."""
    item_ids, cfg, proc, deadline = args
    s = get_settings()
    from genrec.stores.hot_state import HotState

    hot = HotState(s)
    asker = GrpcAsker if cfg.protocol == "grpc" else HttpAsker
    lock = threading.Lock()
    latencies: list[float] = []
    answers: list[float] = []  # from send to answer: on a schedule, without the wait to be sent
    statuses: Counter[str] = Counter()
    served_by: Counter[str] = Counter()

    def client(thread: int) -> None:
        rng = np.random.default_rng((cfg.seed, proc, thread))
        api = asker(s, timeout_s=30)
        n, asked = 0, []
        clients = cfg.recommend_processes * cfg.recommend_threads
        interval = clients / cfg.recommend_rate if cfg.recommend_rate > 0 else 0.0
        next_at = time.perf_counter() + rng.random() * interval  # clients spread over the first interval
        while time.time() < deadline:
            if asked and rng.random() < cfg.cache_hits:
                user = asked[rng.integers(len(asked))]  # answered before, history unchanged: a cache hit
            else:
                user = f"load-{proc}-{thread}-{n}-{uuid.uuid4().hex[:6]}"
                n += 1
                hot.append_recent_items(user, [item_ids[i] for i in rng.integers(0, len(item_ids), cfg.history_len)])
                asked = [*asked[-99:], user]
            started = time.perf_counter()
            if interval:
                time.sleep(max(0.0, next_at - started))
                started, next_at = next_at, next_at + interval
            sent = time.perf_counter()
            status, served = api.ask(user, cfg.count)
            answered = time.perf_counter()
            with lock:
                latencies.append((answered - started) * 1000)
                answers.append((answered - sent) * 1000)
                statuses[status] += 1
                served_by[served] += 1
        api.close()

    _run_clients(client, cfg.recommend_threads)
    return {"latencies_ms": latencies, "answers_ms": answers, "statuses": dict(statuses), "served_by": dict(served_by)}


def _event_process(args: tuple[list[str], LoadConfig, int, float]) -> dict[str, Any]:
    """Batches of interaction events into event-capture until ``deadline``, at the event path's
    nice value (the pool runs one task per process, so the process is not reused for recommend)."""
    item_ids, cfg, proc, deadline = args
    os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), NICENESS["realtime"]))
    s = get_settings()
    base = s.function_url("event_capture")
    lock = threading.Lock()
    out: dict[str, Any] = {"accepted": 0, "refused": 0, "errors": 0, "batch_ms": []}

    def client(thread: int) -> None:
        rng = np.random.default_rng((cfg.seed, 1000 + proc, thread))
        # The clients share the cores they load: one lean connection, the batch drawn at once,
        # ids a run-unique prefix and a counter (the edge remembers ids for a day).
        http = LeanClient(base, timeout_s=30)
        prefix = uuid.uuid4().hex[:12]
        clients = cfg.event_processes * cfg.event_threads
        interval = cfg.event_batch * clients / cfg.event_rate if cfg.event_rate > 0 else 0.0
        next_at, sent = time.time(), 0
        while time.time() < deadline:
            if interval:
                time.sleep(max(0.0, next_at - time.time()))
                next_at += interval
            users = rng.integers(0, 50_000, cfg.event_batch).tolist()
            items = rng.integers(0, len(item_ids), cfg.event_batch).tolist()
            batch = [{"specversion": "1.0", "id": f"{prefix}-{sent + i}", "source": SOURCE, "type": INTERACTION,
                      "data": {"user_id": f"load-ev-{user}", "item_id": item_ids[item], "event_type": "view"}}
                     for i, (user, item) in enumerate(zip(users, items, strict=True))]
            sent += len(batch)
            started = time.perf_counter()
            status, _ = http.request("POST", "/api/v1/events", orjson.dumps(batch),
                                     {"content-type": BATCH_CONTENT_TYPE})
            ok = status == "202" if status.isdigit() else None
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                out["batch_ms"].append(elapsed)
                if ok:
                    out["accepted"] += len(batch)
                elif ok is None:
                    out["errors"] += 1
                else:
                    out["refused"] += 1
        http.close()

    _run_clients(client, cfg.event_threads)
    return out


# ------------------------------------------------------------------ probes (main process)
class Probes:
    def __init__(self, s: Settings, item_ids: list[str], cfg: LoadConfig, catalogs: Any) -> None:
        from genrec.stores.hot_state import HotState

        self.s, self.item_ids, self.cfg, self.catalogs = s, item_ids, cfg, catalogs
        self.hot = HotState(s)
        self.http = httpx.Client(timeout=30)
        self.rng = np.random.default_rng(cfg.seed + 7)
        self.freshness_ms: list[float] = []
        self.new_item_ms: list[float] = []
        self.timeouts = Counter()

    def _post(self, ev: dict, attempts: int = 10) -> None:
        """Send as a well-behaved caller does: a 503 means "not accepted, retry" (same id)."""
        for _ in range(attempts):
            resp = self.http.post(self.s.function_url("event_capture") + "/api/v1/events", content=json.dumps(ev),
                                  headers={"content-type": "application/cloudevents+json"})
            if resp.status_code != 503:
                resp.raise_for_status()
                return
            self.timeouts["probe_event_retried_503"] += 1
            time.sleep(float(resp.headers.get("retry-after", "1")))
        resp.raise_for_status()

    def _list(self, user: str) -> list[str]:
        resp = self.http.get(self.s.function_url("recommend") + f"/api/v1/recommend/user/{user}",
                             params={"count": 10})
        return [i["item_id"] for i in resp.json().get("items", [])] if resp.status_code == 200 else []

    def freshness(self, timeout_s: float = 10.0) -> None:
        user = f"load-probe-{uuid.uuid4().hex[:8]}"
        self.hot.append_recent_items(user, list(self.rng.choice(self.item_ids, self.cfg.history_len)))
        top = self._list(user)
        if not top:
            self.timeouts["freshness_no_list"] += 1
            return
        self._post({"specversion": "1.0", "id": uuid.uuid4().hex, "source": SOURCE, "type": INTERACTION,
                    "data": {"user_id": user, "item_id": top[0], "event_type": "click"}})
        accepted = time.perf_counter()
        while time.perf_counter() - accepted < timeout_s:
            if top[0] not in self._list(user):
                self.freshness_ms.append((time.perf_counter() - accepted) * 1000)
                return
            time.sleep(0.02)
        self.timeouts["freshness"] += 1

    def new_item(self, timeout_s: float = 30.0) -> None:
        item = f"load-new-{uuid.uuid4().hex[:8]}"
        self._post({"specversion": "1.0", "id": uuid.uuid4().hex, "source": SOURCE, "type": ITEM_UPSERTED,
                    "data": {"item_id": item, "title": "Hydrating rose face mist with hyaluronic acid",
                             "category_path": "Beauty|Skin Care|Face", "price": 18.5}})
        accepted = time.perf_counter()
        while time.perf_counter() - accepted < timeout_s:
            if self.catalogs.get().indices([item])[0] >= 0:
                self.new_item_ms.append((time.perf_counter() - accepted) * 1000)
                return
            time.sleep(0.05)
        self.timeouts["new_item"] += 1

    def run(self, deadline: float) -> None:
        """Spread the probes over the run (wall-clock ``deadline``)."""
        total = self.cfg.freshness_probes + self.cfg.new_item_probes
        kinds = ["freshness"] * self.cfg.freshness_probes + ["new_item"] * self.cfg.new_item_probes
        self.rng.shuffle(kinds)
        gap = max(0.0, (deadline - time.time()) / max(total, 1) - 0.5)
        for kind in kinds:
            if time.time() >= deadline:
                break
            getattr(self, kind)()
            time.sleep(gap * float(self.rng.uniform(0.5, 1.0)))


def _scrape(url: str, prefix: str) -> list[Any]:
    """The samples of the metric families named ``prefix``… on a Prometheus /metrics page."""
    from prometheus_client.parser import text_string_to_metric_families

    return [(family.name, sample) for family in text_string_to_metric_families(httpx.get(url, timeout=5).text)
            if family.name.startswith(prefix) for sample in family.samples if not sample.name.endswith("_created")]


def bridge_lag(s: Settings, priorities: tuple[Priority, ...] = PRIORITIES) -> dict[str, int]:
    """``group/topic`` -> records not yet delivered, as the local bridges' /metrics report it (their
    consumers' own view: asking the broker every few seconds would itself load tansu and the object store)."""
    return {f"{sample.labels['group']}/{sample.labels['topic']}": int(sample.value)
            for priority in priorities
            for _, sample in _scrape(s.bridge_metrics_url(priority), "genrec_bridge_consumer_lag")}


def broker_log(s: Settings) -> dict[str, dict[str, int]]:
    """Per topic, what the embedded broker holds, as its retention's /metrics reports it: records
    ever written, batches still stored, batches dropped (empty when no retention runs: a cluster)."""
    try:
        samples = _scrape(f"http://{s.stack.host}:{s.stack.port('kafka_retention')}/metrics", "genrec_broker_")
    except httpx.HTTPError:
        return {}
    log: dict[str, dict[str, int]] = {}
    for name, sample in samples:
        log.setdefault(sample.labels["topic"], {})[name.removeprefix("genrec_broker_")] = int(sample.value)
    return log


class LagSampler:
    """Consumer lag of every subscription, sampled from the bridges during a run (bridge_lag)."""

    def __init__(self, s: Settings, interval_s: float = 2.0) -> None:
        self.s, self.interval_s = s, interval_s
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.stop = threading.Event()

    def read(self) -> dict[str, int]:
        return bridge_lag(self.s)

    def run(self, t0: float) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(Exception):  # keep sampling; a missed sample shows as a gap
                self.samples.append((time.time() - t0, self.read()))
            self.stop.wait(self.interval_s)

    def drain(self, timeout_s: float = 180.0) -> float | None:
        """Seconds until every subscription has caught up (None: not within ``timeout_s``, or no
        bridge to ask: a run that measures event capture alone stops it)."""
        started = time.time()
        while time.time() - started < timeout_s:
            try:
                if sum(self.read().values()) == 0:
                    return time.time() - started
            except httpx.HTTPError:
                return None
            time.sleep(1.0)
        return None


class CpuMeter:
    """CPU each local server used during the run (children included: the model server runs Triton
    and its Python stubs as child processes), and the load clients' own share, since they run on the
    same machine. Empty for servers that are not local processes. The profiler's own recorders are
    children of the load clients and are left out."""

    def __init__(self, s: Settings) -> None:
        from genrec.devstack.stack import local_processes

        self.processes = {**local_processes(s), "load clients": psutil.Process()}
        self.started, self.before = time.monotonic(), self._times()

    def _times(self) -> dict[tuple[str, int], float]:
        return {(name, pid): t for name, proc in self.processes.items() for pid, t in process_tree_cpu(proc).items()}

    def seconds(self) -> dict[str, float]:
        """CPU seconds per server since the meter started, busiest first."""
        used: Counter[str] = Counter()
        for (name, pid), t in self._times().items():
            used[name] += t - self.before.get((name, pid), 0.0)
        return dict(used.most_common())

    def percent(self, seconds: dict[str, float] | None = None) -> dict[str, float]:
        """``seconds`` as % of one core over the time since the meter started."""
        wall = time.monotonic() - self.started
        return {name: round(100 * cpu / wall, 1) for name, cpu in (seconds or self.seconds()).items()}


# ------------------------------------------------------------------ the run
def _production_items(s: Settings) -> tuple[str, list[str], Any]:
    from genrec.serving.catalog import CatalogCache
    from genrec.stores.hot_state import redis_client

    catalogs = CatalogCache(redis_client(s), s)
    try:
        cat = catalogs.get()
    except LookupError as exc:
        raise LoadError("no model in production: run `make demo` (or `genrec pipeline nightly`) first") from exc
    return cat.version, list(cat.art.item_ids), catalogs


def _check_stack(s: Settings) -> None:
    for name in ("recommend", "event_capture"):
        url = s.function_url(name) + "/readyz"
        try:
            ok = httpx.get(url, timeout=5).status_code == 200
        except httpx.HTTPError:
            ok = False
        if not ok:
            raise LoadError(f"{name} is not ready at {url}: start the stack with `genrec dev up`")


def run_load(cfg: LoadConfig, progress: Any = None) -> dict[str, Any]:
    s = get_settings()
    _check_stack(s)
    version, item_ids, catalogs = _production_items(s)
    say = progress or (lambda _m: None)
    say("checking the served lists against the reference graph")
    parity = served_parity(s, catalogs.get().art.uri)
    sampler = LagSampler(s)
    probes = Probes(s, item_ids, cfg, catalogs)
    ctx = get_context("spawn")
    n_procs = cfg.recommend_processes + cfg.event_processes
    with ProcessPoolExecutor(max_workers=n_procs, mp_context=ctx) as pool:
        # Workers import genrec before the clock starts (spawn is slow on a busy 2-core box).
        list(pool.map(_noop, range(n_procs)))
        t0 = time.time()
        deadline = t0 + cfg.duration_s
        say(f"load running for {cfg.duration_s:.0f} s against model {version}")
        rec = [pool.submit(_recommend_process, (item_ids, cfg, p, deadline))
               for p in range(cfg.recommend_processes)]
        ev = [pool.submit(_event_process, (item_ids, cfg, p, deadline))
              for p in range(cfg.event_processes)]
        lag_thread = threading.Thread(target=sampler.run, args=(t0,), daemon=True)
        lag_thread.start()
        cpu = CpuMeter(s)
        profiler = _profiler(cpu, cfg, deadline)
        probes.run(deadline)
        rec_out = [f.result() for f in rec]
        ev_out = [f.result() for f in ev]
        elapsed = time.time() - t0
        cpu_s = cpu.seconds()
        cpu_percent = cpu.percent(cpu_s)
    sampler.stop.set()
    say("load finished; waiting for the consumers to drain")
    drain_s = sampler.drain()
    result = _summarise(cfg, version, elapsed, rec_out, ev_out, probes, sampler, drain_s)
    result["model_server"] = _model_server_config(s)
    result["parity"] = parity
    result["cpu_percent"] = cpu_percent
    result["broker_log"] = broker_log(s)
    if profiler is not None:
        result["cpu_budget"] = _budgets(cpu_s, profiler.samples(), result)
    return result


def _profiler(cpu: CpuMeter, cfg: LoadConfig, deadline: float) -> SamplingProfiler | None:
    if not cfg.profile:
        return None
    servers = {name: p for name, p in cpu.processes.items() if name != "load clients"}
    profiler = SamplingProfiler(servers, Path(tempfile.mkdtemp(prefix="genrec-profile-")), deadline - time.time(),
                                PROFILE_RATE_HZ)
    profiler.start()
    return profiler


def _budgets(cpu_s: dict[str, float], samples: dict, result: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's CPU per recommend request and per accepted event. A run with both loads divides
    all of its CPU by each: a budget is exact only for a run with one kind of load."""
    units = [("request", result["recommend"]["requests"]), ("event", result["events"]["accepted"])]
    mixed = all(n for _, n in units)
    return [{**budget(cpu_s, samples, n, unit, PROFILE_RATE_HZ), "mixed": mixed} for unit, n in units if n]


def _model_server_config(s: Settings) -> dict[str, Any]:
    """What the model server says about itself: whether its dynamic batcher was on."""
    base = str(s.model_server.url)
    base = base if "://" in base else f"http://{base}"  # tritonclient takes host:port
    try:
        cfg = httpx.get(f"{base}/v2/models/{s.model_server.model_name}/config", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return {"model": s.model_server.model_name, "dynamic_batching": bool(cfg.get("dynamic_batching")),
            "max_batch_size": cfg.get("max_batch_size")}


def _noop(_: int) -> None:
    import genrec.stores.hot_state  # noqa: F401


def _summarise(cfg: LoadConfig, version: str, elapsed: float, rec_out: list[dict], ev_out: list[dict],
               probes: Probes, sampler: LagSampler, drain_s: float | None) -> dict[str, Any]:
    latencies = [x for r in rec_out for x in r["latencies_ms"]]
    statuses: Counter[str] = Counter()
    served_by: Counter[str] = Counter()
    for r in rec_out:
        statuses.update(r["statuses"])
        served_by.update(r["served_by"])
    accepted = sum(e["accepted"] for e in ev_out)
    max_lag: dict[str, int] = {}
    for _, sample in sampler.samples:
        for key, n in sample.items():
            max_lag[key] = max(max_lag.get(key, 0), n)
    server_errors = sum(n for code, n in statuses.items()  # gRPC: any code but OK
                        if code != "OK" and (not code.isdigit() or code.startswith("5")))
    return {
        "kind": "load", "machine": machine_info(), "config": asdict(cfg), "model_version": version,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": round(elapsed, 1),
        "recommend": {
            "requests": len(latencies), "per_s": round(len(latencies) / elapsed, 1),
            "latency_ms": _percentiles(latencies),
            "answer_ms": _percentiles([x for r in rec_out for x in r["answers_ms"]]),
            "statuses": dict(statuses), "served_by": dict(served_by),
            "server_errors": server_errors, "cache_hits": served_by.get("cache", 0),
        },
        "events": {
            "accepted": accepted, "accepted_per_s": round(accepted / elapsed, 1),
            "refused_batches": sum(e["refused"] for e in ev_out), "failed_batches": sum(e["errors"] for e in ev_out),
            "batch_size": cfg.event_batch,
            "batch_latency_ms": _percentiles([x for e in ev_out for x in e["batch_ms"]]),
        },
        "freshness_ms": {**_percentiles(probes.freshness_ms), "n": len(probes.freshness_ms)},
        "new_item_ms": {**_percentiles(probes.new_item_ms), "n": len(probes.new_item_ms)},
        "probe_timeouts": dict(probes.timeouts),
        "consumer_lag": {"max": max_lag, "drain_seconds": None if drain_s is None else round(drain_s, 1),
                         "samples": [[round(t, 1), sum(v.values())] for t, v in sampler.samples]},
        "latency_timeline": _timeline(rec_out),
    }


def _timeline(rec_out: list[dict]) -> dict[str, Any]:
    """Median latency per decile of the run, to show whether latency drifted under sustained load."""
    lat = [x for r in rec_out for x in r["latencies_ms"]]
    if len(lat) < 10:
        return {}
    chunks = np.array_split(np.asarray(lat), 10)
    return {"decile_p50_ms": [round(float(np.median(c)), 2) for c in chunks]}


# ------------------------------------------------------------------ reporting
def markdown_report(r: dict[str, Any]) -> str:
    def ms(d: dict, k: str) -> str:
        return "-" if d.get(k) is None else f"{d[k]:.1f}"

    rec, ev = r["recommend"], r["events"]
    m = r["machine"]
    lines = [
        "# Load: recommend API and event capture under sustained mixed traffic",
        "",
        f"{r['seconds']:.0f} s on {m.get('cpu', '?')} ({m.get('cores', '?')} cores), model {r['model_version']}; "
        f"{r['config']['recommend_processes']}x{r['config']['recommend_threads']} recommend clients over "
        f"{r['config'].get('protocol', 'http')}"
        f"{', ' + str(r['config']['recommend_rate']) + ' req/s offered' if r['config'].get('recommend_rate') else ''} "
        f"(top-{r['config']['count']}, {_hits(r['config'].get('cache_hits', 0.0))}), "
        f"{r['config']['event_processes']}x{r['config']['event_threads']} event clients "
        f"(batches of {ev['batch_size']}, offered "
        f"{'as fast as accepted' if not r['config']['event_rate'] else str(r['config']['event_rate']) + ' events/s'}). "
        f"Model server dynamic batching: {_on_off(r.get('model_server', {}).get('dynamic_batching'))}.",
        "",
        "| measure | value | p50 ms | p95 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| recommend requests/s | {rec['per_s']} | {ms(rec['latency_ms'], 'p50')} | {ms(rec['latency_ms'], 'p95')} "
        f"| {ms(rec['latency_ms'], 'p99')} |",
        *([f"| recommend answers, from send (the row above counts from each request's scheduled time) | - | "
           f"{ms(rec['answer_ms'], 'p50')} | {ms(rec['answer_ms'], 'p95')} | {ms(rec['answer_ms'], 'p99')} |"]
          if r['config'].get('recommend_rate') and rec.get('answer_ms') else []),
        f"| events accepted/s (durable, acks=all) | {ev['accepted_per_s']} | {ms(ev['batch_latency_ms'], 'p50')} "
        f"| {ms(ev['batch_latency_ms'], 'p95')} | {ms(ev['batch_latency_ms'], 'p99')} |",
        f"| freshness: click → next list ({r['freshness_ms']['n']} probes) | - | {ms(r['freshness_ms'], 'p50')} "
        f"| {ms(r['freshness_ms'], 'p95')} | {ms(r['freshness_ms'], 'p99')} |",
        f"| new item → in the model's code table ({r['new_item_ms']['n']} probes) | - | "
        f"{ms(r['new_item_ms'], 'p50')} | {ms(r['new_item_ms'], 'p95')} | {ms(r['new_item_ms'], 'p99')} |",
        "",
        f"Served by: {rec['served_by']}; {r['config'].get('protocol', 'http')} statuses: {rec['statuses']}; "
        f"server errors: {rec['server_errors']}; "
        f"event batches refused/failed: {ev['refused_batches']}/{ev['failed_batches']}; probe timeouts: "
        f"{r['probe_timeouts'] or 'none'}.",
        f"Consumer lag: max per subscription {r['consumer_lag']['max']}; drained "
        f"{r['consumer_lag']['drain_seconds']} s after the load stopped.",
    ]
    if log := r.get("broker_log"):
        lines += ["", "Broker log after the run (embedded broker, retention on): " + "; ".join(
            f"{topic} {t['records_written']:,} records written, {t['batches_stored']:,} batches stored "
            f"({t['batches_dropped']:,} dropped)" for topic, t in sorted(log.items())) + "."]
    if p := r.get("parity"):
        lines += ["", f"Served lists against the reference (eager) graph on the same table, {p['users']} users "
                  f"of model {p['version']}: items equal {_share(p['item_match'])} (worst user), scores within "
                  f"{p['max_score_diff']:.1e}."]
    if r.get("cpu_percent"):
        lines += ["", f"CPU during the load, % of one core ({m.get('cores', '?')} cores in all): "
                  + ", ".join(f"{name} {pct:.0f}" for name, pct in r["cpu_percent"].items()) + "."]
    for b in r.get("cpu_budget", []):
        lines += ["", *budget_markdown(b)]
        if b.get("mixed"):
            lines.append("\n(Both loads ran: all of the run's CPU is divided by this unit.)")
    return "\n".join(lines) + "\n"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _hits(share: float) -> str:
    return "every request a cache miss" if not share else f"{100 * share:.0f} % of requests asking again (cache hits)"


def _on_off(flag: bool | None) -> str:
    return "unknown" if flag is None else ("on" if flag else "off")


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    pct = r["recommend"]["latency_ms"]
    axes[0].bar(["p50", "p95", "p99"], [pct["p50"] or 0, pct["p95"] or 0, pct["p99"] or 0], color="#4c72b0")
    axes[0].axhline(50, color="red", linestyle="--", label="design P99 bound (50 ms)")
    axes[0].set_title(f"recommend latency ({r['recommend']['per_s']} req/s)")
    axes[0].set_ylabel("ms")
    axes[0].legend()
    lag = r["consumer_lag"]["samples"]
    if lag:
        axes[1].plot([t for t, _ in lag], [n for _, n in lag], marker=".")
    axes[1].set_title("consumer lag during the run (records)")
    axes[1].set_xlabel("s")
    fresh = [v for v in (r["freshness_ms"]["p50"], r["freshness_ms"]["p99"]) if v is not None]
    new = [v for v in (r["new_item_ms"]["p50"], r["new_item_ms"]["p99"]) if v is not None]
    axes[2].bar(["fresh p50", "fresh p99"][: len(fresh)] + ["new item p50", "new item p99"][: len(new)],
                fresh + new, color="#55a868")
    axes[2].set_title("event → visible (ms)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(r: dict[str, Any], out_dir: Path, label: str = "cpu") -> Path:
    return write_report(r, out_dir / f"load-{label}", markdown_report, plot)
