"""`genrec bench faults`: each dependency and each process fails under sustained mixed load, comes
back, and every accepted event is reconciled.

For every fault in the table, on the running local stack (`genrec dev up` + `make demo`'s model):

1. traffic starts: interaction batches into event-capture at a paced rate, sent as a
   well-behaved upstream does (a 5xx, 429 or no answer means "not accepted": the same batch, same
   ids, is sent again until a 202), item upserts at a slower pace, and recommend clients asking
   for users' lists (following a page token when there is one), popular and session lists;
2. the fault: a server is stopped (graceful), killed (SIGKILL, as a crash or an evicted pod) or
   stalled (SIGSTOP: it keeps its sockets and accepts connections but answers nothing), for
   ``outage_s``, then brought back;
3. traffic goes on for ``after_s``, stops, and the events are reconciled once the consumers
   caught up: every accepted (202) event exactly once in PostgreSQL ``user_events``, applied once
   to Redis hot state (its claim exists and the user's ``events`` counter equals the user's
   accepted events: a double application shows there), and once in the analytics store
   (counted after ReplacingMergeTree's collapse, ``FINAL``, which is what its queries read); every
   accepted item upsert has its vector in PostgreSQL and Milvus. Recommend must never answer 5xx.

``recovery_s`` is the time from the server's return until every event accepted before it
returned is in PostgreSQL and applied in Redis. Results: ``bench/results/faults.{json,md,png}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import numpy as np
import psutil

from genrec.bench.report import machine_info, write_report
from genrec.config import Settings, get_settings
from genrec.devstack import stack as devstack
from genrec.events.codec import BATCH_CONTENT_TYPE
from genrec.events.contracts import INTERACTION, ITEM_UPSERTED
from genrec.stores import redis_keys as keys
from genrec.workloads import workload

SOURCE = "genrec-bench-faults"
Action = Literal["stop", "kill", "stall"]
# Servers that may exit once resumed after a stall: Triton's Python backend aborts when the lock of
# its shared-memory channel to a stub timed out while both were frozen (boost lock_exception). The
# run starts such a server again, as Kubernetes restarts a pod, and the row says so.
MAY_EXIT_AFTER_A_STALL = frozenset({"model-server"})


class Watch(Protocol):
    """What the run tells a crash watch (``genrec.devstack.watch.StackWatch``) of its planned exits."""

    def expect_exit(self, name: str) -> None: ...
    def expect_back(self, name: str) -> None: ...


class _NoWatch:
    def expect_exit(self, name: str) -> None:
        pass

    def expect_back(self, name: str) -> None:
        pass


@dataclass(frozen=True)
class Fault:
    service: str  # a local server's name (genrec.devstack.services.SERVICES)
    action: Action

    @property
    def name(self) -> str:
        return f"{self.service} {self.action}"


# Stores and the broker stop (as an operator's restart or a failover would) and stall; the
# functions and the bridge are killed (a crash, an evicted pod: no graceful drain).
FAULTS: tuple[Fault, ...] = (
    *(Fault(svc, "stop") for svc in ("kafka", "s3", "postgres", "redis", "milvus", "model-server")),
    *(Fault(svc, "kill") for svc in ("event-capture", "feature-update", "cold-start-embedding", "llm-enrichment",
                                     "analytics-sink", "bridge", "bridge-bulk", "recommend")),
    *(Fault(svc, "stall") for svc in ("postgres", "redis", "kafka", "milvus", "model-server")),
)


def fault_named(name: str) -> Fault:
    for fault in FAULTS:
        if fault.name == name or fault.name.replace(" ", ":") == name:
            return fault
    raise ValueError(f"unknown fault {name!r}; known: {', '.join(f.name.replace(' ', ':') for f in FAULTS)}")


@dataclass
class FaultConfig:
    before_s: float = 10.0  # steady load before the fault
    outage_s: float = 20.0  # how long the server is away (or stalled)
    after_s: float = 10.0  # load after it is back
    event_rate: float = 200.0  # interactions/s offered
    event_batch: int = 20
    event_clients: int = 2
    item_rate: float = 2.0  # item upserts/s offered
    recommend_clients: int = 2
    users: int = 40  # per fault: hot-state counters are per user
    settle_s: float = 300.0  # how long the consumers may take to catch up afterwards
    request_timeout_s: float = 10.0  # a client's patience for one recommend answer
    seed: int = 0


# ------------------------------------------------------------------ traffic
_WORDS = ("rose", "matte", "velvet", "serum", "lip", "balm", "hydrating", "night", "cream", "shampoo", "argan",
          "oil", "mascara", "volume", "charcoal", "mask", "citrus", "toner", "sunscreen", "mineral", "glow",
          "primer", "brush", "nail", "polish", "vitamin", "retinol", "cleanser", "foam", "gel", "scrub", "musk")
_CATEGORIES = ("Beauty|Skin Care|Face", "Beauty|Makeup|Lips", "Beauty|Hair Care", "Beauty|Makeup|Eyes",
               "Beauty|Fragrance", "Beauty|Nails")
@dataclass
class Ledger:
    """What the traffic sent and what came back, for one fault."""

    accepted_at: dict[str, float] = field(default_factory=dict)  # event id -> first 202 (monotonic)
    user_of: dict[str, str] = field(default_factory=dict)  # event id -> user
    items_accepted: dict[str, float] = field(default_factory=dict)
    resends: Counter[str] = field(default_factory=Counter)  # why a batch was sent again
    rejected: list[str] = field(default_factory=list)  # 4xx: a bug in the traffic or the API
    abandoned: int = 0  # batches still not accepted when the run gave up on them
    recommend: list[tuple[float, str, float]] = field(default_factory=list)  # (t, status, ms)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Traffic:
    """Events, item upserts and recommend requests on threads, until ``stop()``."""

    def __init__(self, s: Settings, cfg: FaultConfig, tag: str, item_ids: list[str]) -> None:
        self.s, self.cfg, self.tag, self.item_ids = s, cfg, tag, item_ids
        self.users = [f"{tag}-u{k}" for k in range(cfg.users)]
        self.ledger = Ledger()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._give_up = float("inf")  # monotonic: senders stop resending after this

    def start(self) -> None:
        targets: list[Callable[[int], None]] = [self._events] * self.cfg.event_clients
        targets += [self._recommend] * self.cfg.recommend_clients
        if self.cfg.item_rate > 0:
            targets.append(self._items)
        for k, target in enumerate(targets):
            t = threading.Thread(target=target, args=(k,), daemon=True, name=f"faults-{target.__name__}-{k}")
            t.start()
            self._threads.append(t)

    def stop(self, give_up_after_s: float) -> None:
        """Stop offering new work; batches in flight keep being resent until accepted (or
        ``give_up_after_s``: an event never accepted is not counted as lost)."""
        self._give_up = time.monotonic() + give_up_after_s
        self._stop.set()
        for t in self._threads:
            t.join()

    # -- senders
    def _send_until_accepted(self, http: httpx.Client, body: list[dict]) -> bool:
        url = self.s.function_url("event_capture") + "/api/v1/events"
        while time.monotonic() < self._give_up:
            try:
                resp = http.post(url, content=json.dumps(body), headers={"content-type": BATCH_CONTENT_TYPE})
            except httpx.HTTPError as exc:
                why, wait_s = type(exc).__name__, 0.5
            else:
                if resp.status_code == 202:
                    return True
                if 400 <= resp.status_code < 500 and resp.status_code not in (408, 429):
                    with self.ledger.lock:
                        self.ledger.rejected.append(f"{resp.status_code}: {resp.text[:200]}")
                    return False
                why, wait_s = str(resp.status_code), float(resp.headers.get("retry-after", "1"))
            with self.ledger.lock:
                self.ledger.resends[why] += 1
            time.sleep(min(wait_s, 2.0))
        with self.ledger.lock:
            self.ledger.abandoned += 1
        return False

    def _events(self, client: int) -> None:
        rng = np.random.default_rng((self.cfg.seed, client))
        interval = self.cfg.event_batch * self.cfg.event_clients / self.cfg.event_rate
        next_at, n = time.monotonic(), 0
        with httpx.Client(timeout=self.cfg.request_timeout_s) as http:
            while not self._stop.is_set():
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at + interval, time.monotonic() - interval)  # no burst after an outage
                batch = []
                for _ in range(self.cfg.event_batch):
                    user = self.users[int(rng.integers(len(self.users)))]
                    batch.append({"specversion": "1.0", "id": f"{self.tag}-e{client}-{n}", "source": SOURCE,
                                  "type": INTERACTION, "data": {
                                      "user_id": user, "item_id": self.item_ids[int(rng.integers(len(self.item_ids)))],
                                      "event_type": "click"}})
                    n += 1
                if self._send_until_accepted(http, batch):
                    now = time.monotonic()
                    with self.ledger.lock:
                        for ev in batch:
                            self.ledger.accepted_at[ev["id"]] = now
                            self.ledger.user_of[ev["id"]] = ev["data"]["user_id"]

    def _items(self, client: int) -> None:
        rng = np.random.default_rng((self.cfg.seed, 200 + client))
        n = 0
        with httpx.Client(timeout=self.cfg.request_timeout_s) as http:
            while not self._stop.wait(1.0 / self.cfg.item_rate):
                item = f"{self.tag}-item-{n}"
                n += 1
                # Varied texts: items that all read alike would all get one code prefix, and fill it.
                title = " ".join(rng.choice(_WORDS, size=4))
                ev = {"specversion": "1.0", "id": f"{self.tag}-i{n}", "source": SOURCE, "type": ITEM_UPSERTED,
                      "data": {"item_id": item, "title": title.capitalize(),
                               "category_path": str(rng.choice(_CATEGORIES)), "price": 5.0 + n % 40}}
                if self._send_until_accepted(http, [ev]):
                    with self.ledger.lock:
                        self.ledger.items_accepted[item] = time.monotonic()

    def _recommend(self, client: int) -> None:
        """Lists for the traffic's users, popular and session lists, and next pages: some at once,
        some from a stash of earlier tokens (so tokens issued before a fault are used during it)."""
        base = self.s.function_url("recommend") + "/api/v1/recommend"
        rng = np.random.default_rng((self.cfg.seed, 100 + client))
        tokens: list[tuple[str, str]] = []  # (user, next_page_token)
        with httpx.Client(timeout=self.cfg.request_timeout_s) as http:
            k = 0
            while not self._stop.is_set():
                k += 1
                user = self.users[int(rng.integers(len(self.users)))]
                if k % 5 == 0:
                    self._ask(http, "GET", f"{base}/popular", params={"count": 10})
                elif k % 7 == 0:
                    picks = [self.item_ids[int(i)] for i in rng.integers(len(self.item_ids), size=3)]
                    self._ask(http, "POST", f"{base}/session", json={"items": picks, "count": 10})
                elif k % 3 == 0 and tokens:
                    user, token = tokens[int(rng.integers(len(tokens)))]
                    self._ask(http, "GET", f"{base}/user/{user}", params={"count": 10, "page_token": token})
                else:
                    body = self._ask(http, "GET", f"{base}/user/{user}", params={"count": 10})
                    if body and body.get("next_page_token"):
                        tokens = [*tokens[-19:], (user, body["next_page_token"])]

    def _ask(self, http: httpx.Client, method: str, url: str, **kwargs: Any) -> dict | None:
        started = time.monotonic()
        try:
            resp = http.request(method, url, **kwargs)
            status = str(resp.status_code)
        except httpx.TimeoutException:
            resp, status = None, "timeout"
        except httpx.HTTPError:
            resp, status = None, "unreachable"
            time.sleep(0.2)  # a refused connection returns at once: do not spin
        with self.ledger.lock:
            self.ledger.recommend.append((started, status, (time.monotonic() - started) * 1000))
        return resp.json() if resp is not None and resp.status_code == 200 else None


# ------------------------------------------------------------------ faults
def _tree(proc: psutil.Process) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return [proc, *proc.children(recursive=True)]
    return [proc]


def _signal_tree(procs: list[psutil.Process], sig: int) -> None:
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(sig)


@contextlib.contextmanager
def injected(s: Settings, fault: Fault, watch: Watch, outcome: dict[str, Any]) -> Iterator[None]:
    """The fault holds inside the block; on leaving it the server is back (healthy) or resumed.
    ``outcome["restarted"]``: a stalled server exited once resumed and was started again."""
    quiet = {"on_progress": lambda _m: None}
    proc = devstack.local_processes(s).get(fault.service)
    if proc is None:
        raise RuntimeError(f"{fault.service} is not running in this local stack: start it with `genrec dev up`")
    if fault.action == "stall":
        may_exit = fault.service in MAY_EXIT_AFTER_A_STALL
        if may_exit:
            watch.expect_exit(fault.service)
        procs = _tree(proc)
        _signal_tree(procs, signal.SIGSTOP)
        try:
            yield
        finally:
            _signal_tree(procs, signal.SIGCONT)
            if may_exit:
                gone, _alive = psutil.wait_procs([proc], timeout=5)
                if gone:
                    outcome["restarted"] = True
                    devstack.up(s, [fault.service], **quiet)
                watch.expect_back(fault.service)
        return
    watch.expect_exit(fault.service)
    if fault.action == "kill":
        _signal_tree(_tree(proc), signal.SIGKILL)
        psutil.wait_procs([proc], timeout=10)
    else:
        devstack.down(s, [fault.service], **quiet)
    try:
        yield
    finally:
        devstack.up(s, [fault.service], **quiet)


# ------------------------------------------------------------------ reconciling
def _pg_copies(s: Settings, ledger: Ledger, ids: list[str]) -> dict[str, int]:
    from genrec.stores.postgres import connect

    if not ids:
        return {}
    users = sorted({ledger.user_of[event_id] for event_id in ids})
    with connect(s) as conn:  # by user: the history's one index is (user_id, ts)
        rows = conn.execute("SELECT event_id, count(*) FROM user_events WHERE user_id = ANY(%s) AND source = %s"
                            " AND event_id = ANY(%s) GROUP BY event_id", (users, SOURCE, ids)).fetchall()
    return {event_id: n for event_id, n in rows}


def _redis_claimed(r: Any, ledger: Ledger, ids: list[str]) -> set[str]:
    pipe = r.pipeline(transaction=False)
    for event_id in ids:
        pipe.exists(keys.user_claim(ledger.user_of[event_id], SOURCE, event_id))
    return {event_id for event_id, found in zip(ids, pipe.execute(), strict=True) if found}


def _redis_counters(r: Any, users: list[str]) -> dict[str, int]:
    pipe = r.pipeline(transaction=False)
    for user in users:
        pipe.hget(keys.user_features(user), "events")
    return {user: int(n or 0) for user, n in zip(users, pipe.execute(), strict=True)}


def _caught_up(s: Settings, r: Any, ledger: Ledger, ids: list[str]) -> bool:
    try:
        in_pg = _pg_copies(s, ledger, ids)
        claimed = _redis_claimed(r, ledger, ids)
    except Exception:  # a store still coming back
        return False
    return len(in_pg) == len(ids) and len(claimed) == len(ids)


class RecoveryClock:
    """Polls, from the server's return, until every event accepted before it is stored and applied."""

    def __init__(self, s: Settings, r: Any, ledger: Ledger, back_at: float, limit_s: float) -> None:
        with ledger.lock:
            self.ids = [e for e, t in ledger.accepted_at.items() if t <= back_at]
        self.seconds: float | None = None
        self._thread = threading.Thread(target=self._run, args=(s, r, ledger, back_at, limit_s), daemon=True)
        self._thread.start()

    def _run(self, s: Settings, r: Any, ledger: Ledger, back_at: float, limit_s: float) -> None:
        while time.monotonic() - back_at < limit_s:
            if _caught_up(s, r, ledger, self.ids):
                self.seconds = time.monotonic() - back_at
                return
            time.sleep(0.5)

    def wait(self) -> float | None:
        self._thread.join()
        return self.seconds


def _items_stored(s: Settings, items: list[str]) -> tuple[set[str], set[str]]:
    """The accepted items with a vector in PostgreSQL, and with one in Milvus."""
    from genrec.stores.milvus import ItemVectorIndex
    from genrec.stores.postgres import connect

    if not items:
        return set(), set()
    with connect(s) as conn:
        rows = conn.execute("SELECT item_id FROM items WHERE item_id = ANY(%s) AND embedding IS NOT NULL",
                            (items,)).fetchall()
    store = ItemVectorIndex(s)
    try:
        in_milvus = {v.item_id for v in store.get(items)}
    finally:
        store.close()
    return {row[0] for row in rows}, in_milvus


def reconcile(s: Settings, r: Any, ledger: Ledger, settle_s: float) -> dict[str, Any]:
    """Wait (up to ``settle_s``) for every accepted event and item, then count the copies."""
    ids = list(ledger.accepted_at)
    items = list(ledger.items_accepted)
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if _caught_up(s, r, ledger, ids) and all(len(found) == len(items) for found in _items_stored(s, items)):
                break
        time.sleep(1.0)
    copies = _pg_copies(s, ledger, ids)
    claimed = _redis_claimed(r, ledger, ids)
    expected = Counter(ledger.user_of[e] for e in ids)
    counters = _redis_counters(r, list(expected))
    in_pg, in_milvus = _items_stored(s, items)
    return {
        "accepted": len(ids),
        "postgres": {"lost": sum(1 for e in ids if e not in copies),
                     "duplicated": sum(n - 1 for n in copies.values() if n > 1)},
        "redis": {"lost": len(ids) - len(claimed),
                  # a user's counter above their accepted events: an event applied twice
                  "duplicated": sum(max(0, counters[u] - n) for u, n in expected.items()),
                  "undercounted": sum(max(0, n - counters[u]) for u, n in expected.items())},
        "items": {"accepted": len(items), "lost_postgres": len(set(items) - in_pg),
                  "lost_milvus": len(set(items) - in_milvus)},
    }


def analytics_copies(s: Settings, ids: list[str], settle_s: float, watch: Watch | None = None,
                     ) -> tuple[dict[str, int], dict[str, int]]:
    """Copies of each event in the analytics store as its queries see them (``FINAL``), and the
    rows stored right now (before background merges collapse re-deliveries). Counted once the
    sink's subscriptions show no lag, and again while some are missing, for up to ``settle_s``:
    the bridge's lag is its consumers' last view, which lags itself after a broker outage.

    The local store is chDB inside the analytics sink, one process at a time: the sink stops
    while it is read, and its backlog waits in the broker."""
    deadline = time.monotonic() + settle_s
    while True:
        _analytics_synced(s, max(1.0, deadline - time.monotonic()))
        copies, stored = _count_analytics(s, ids, watch or _NoWatch())
        if all(e in copies for e in ids) or time.monotonic() > deadline:
            return copies, stored
        time.sleep(5.0)


def _count_analytics(s: Settings, ids: list[str], watch: Watch) -> tuple[dict[str, int], dict[str, int]]:
    from genrec.stores.analytics import AnalyticsStore

    def count() -> tuple[dict[str, int], dict[str, int]]:
        store = AnalyticsStore(s, create_schema=False)
        try:
            return store.event_copies(SOURCE, ids), store.event_copies(SOURCE, ids, final=False)
        finally:
            store.close()

    if not s.embedded:
        return count()
    quiet = {"on_progress": lambda _m: None}
    watch.expect_exit("analytics-sink")
    devstack.down(s, ["analytics-sink"], **quiet)
    try:
        return count()
    finally:
        devstack.up(s, ["analytics-sink"], **quiet)


def _analytics_synced(s: Settings, timeout_s: float) -> None:
    """Until the analytics sink's subscriptions have no lag (its bridge's own view)."""
    from genrec.bench.load import bridge_lag

    bulk = (workload("analytics-sink").priority,)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if sum(bridge_lag(s, bulk).values()) == 0:
                return
        time.sleep(1.0)


# ------------------------------------------------------------------ one fault, the run
def _recommend_summary(ledger: Ledger, fault_at: float, back_at: float) -> dict[str, Any]:
    statuses = Counter(status for _, status, _ in ledger.recommend)
    during = [ms for t, _, ms in ledger.recommend if fault_at <= t <= back_at]
    return {
        "requests": len(ledger.recommend), "statuses": dict(statuses),
        "server_errors": sum(n for code, n in statuses.items() if code.startswith("5")),
        "timeouts": statuses.get("timeout", 0), "unreachable": statuses.get("unreachable", 0),
        "during_fault_p99_ms": round(float(np.percentile(during, 99)), 1) if during else None,
        "during_fault_max_ms": round(max(during), 1) if during else None,
    }


def run_fault(s: Settings, fault: Fault, cfg: FaultConfig, item_ids: list[str], watch: Watch | None = None,
              say: Callable[[str], None] = lambda _m: None) -> tuple[dict[str, Any], Ledger]:
    from genrec.stores.hot_state import redis_client

    tag = f"f{uuid.uuid4().hex[:8]}"
    r = redis_client(s)
    traffic = Traffic(s, cfg, tag, item_ids)
    traffic.start()
    time.sleep(cfg.before_s)
    say(f"{fault.name}: for {cfg.outage_s:.0f} s under load")
    fault_at = time.monotonic()
    outcome: dict[str, Any] = {"restarted": False}
    with injected(s, fault, watch or _NoWatch(), outcome):
        time.sleep(cfg.outage_s)
    back_at = time.monotonic()
    clock = RecoveryClock(s, r, traffic.ledger, back_at, cfg.settle_s)
    time.sleep(cfg.after_s)
    traffic.stop(give_up_after_s=cfg.settle_s)
    say(f"{fault.name}: back after {back_at - fault_at:.1f} s; reconciling")
    counts = reconcile(s, r, traffic.ledger, cfg.settle_s)
    ledger = traffic.ledger
    row = {"fault": fault.name, "service": fault.service, "action": fault.action, **counts,
           "recovery_s": None if (t := clock.wait()) is None else round(t, 1),
           "restored_after_s": round(back_at - fault_at, 1), **outcome,
           "resends": dict(ledger.resends), "rejected": ledger.rejected[:5], "abandoned": ledger.abandoned,
           "recommend": _recommend_summary(ledger, fault_at, back_at)}
    return row, ledger


def run_faults(cfg: FaultConfig, faults: tuple[Fault, ...] = FAULTS, *, s: Settings | None = None,
               watch: Watch | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    s = s or get_settings()
    say = progress or (lambda _m: None)
    # pymilvus logs every failed call of its reconnecting client with a traceback, also while the
    # bench itself stops Milvus on purpose; the reconcile's own failures are retried and counted.
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    item_ids = catalogue_sample(s)
    rows, ledgers = [], []
    started = time.time()
    for fault in faults:
        row, ledger = run_fault(s, fault, cfg, item_ids, watch, say)
        rows.append(row)
        ledgers.append(ledger)
    say("counting every accepted event in the analytics store")
    copies, stored = analytics_copies(s, [e for led in ledgers for e in led.accepted_at], cfg.settle_s, watch)
    for row, ledger in zip(rows, ledgers, strict=True):
        ids = list(ledger.accepted_at)
        row["analytics"] = {"lost": sum(1 for e in ids if e not in copies),
                            "duplicated": sum(copies[e] - 1 for e in ids if copies.get(e, 0) > 1),
                            "rows_before_merge": sum(stored.get(e, 0) for e in ids)}
        row["ok"] = _row_ok(row)
    return {"kind": "faults", "machine": machine_info(), "config": asdict(cfg),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds": round(time.time() - started, 1), "faults": rows,
            "all_ok": all(row["ok"] for row in rows)}


def _row_ok(row: dict[str, Any]) -> bool:
    stores = (row["postgres"], row["redis"], row["analytics"])
    items = row["items"]
    return (all(st["lost"] == 0 and st["duplicated"] == 0 for st in stores) and row["redis"]["undercounted"] == 0
            and items["lost_postgres"] == 0 and items["lost_milvus"] == 0 and not row["rejected"]
            and row["abandoned"] == 0
            and row["recommend"]["server_errors"] == 0 and row["accepted"] > 0)


def catalogue_sample(s: Settings, n: int = 1000) -> list[str]:
    """Active items the traffic interacts with (any catalogue: the demo's or a test's), among
    those whose ids an event may carry."""
    from pydantic import TypeAdapter, ValidationError

    from genrec.events.contracts import Identifier
    from genrec.stores.postgres import connect

    with connect(s) as conn:
        rows = conn.execute("SELECT item_id FROM items WHERE status = 'active' AND item_id NOT LIKE 'f%%-item-%%'"
                            " ORDER BY item_id LIMIT %s", (4 * n,)).fetchall()
    valid, ids = TypeAdapter(Identifier), []
    for (item_id,) in rows:
        try:
            if valid.validate_python(item_id) == item_id:
                ids.append(item_id)
        except ValidationError:
            continue
    if not ids:
        raise RuntimeError("the catalogue is empty: run `make demo` (or load items) before `genrec bench faults`")
    return ids[:n]


# ------------------------------------------------------------------ reporting
def markdown_report(r: dict[str, Any]) -> str:
    c, m = r["config"], r["machine"]
    lines = [
        "# Faults under sustained mixed load: nothing lost, nothing applied twice, no 5xx",
        "",
        f"{m.get('cpu', '?')} ({m.get('cores', '?')} cores), {r['started']}, {r['seconds']:.0f} s in all. Per fault: "
        f"{c['before_s']:.0f} s of load, the fault for {c['outage_s']:.0f} s, {c['after_s']:.0f} s after; "
        f"{c['event_rate']:.0f} interactions/s offered in batches of {c['event_batch']} (resent until accepted), "
        f"{c['item_rate']} item upserts/s, {c['recommend_clients']} closed-loop recommend clients.",
        "",
        "| fault | accepted | lost PG / analytics / Redis | duplicated PG / analytics / Redis | items lost "
        "PG / Milvus | recommend 5xx | recommend p99 during (ms) | recovery (s) | ok |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for row in r["faults"]:
        an = row["analytics"]
        rec = row["recommend"]
        lines.append(
            f"| {row['fault']} | {row['accepted']} | {row['postgres']['lost']} / {an['lost']} / {row['redis']['lost']} "
            f"| {row['postgres']['duplicated']} / {an['duplicated']} / {row['redis']['duplicated']} "
            f"| {row['items']['lost_postgres']} / {row['items']['lost_milvus']} of {row['items']['accepted']} "
            f"| {rec['server_errors']} | {_or_dash(rec['during_fault_p99_ms'])} | {_or_dash(row['recovery_s'])} "
            f"| {'yes' if row['ok'] else '**no**'} |")
    lines += ["", "Recommend answers per fault (status: count; `unreachable` is a refused connection, only while "
              "the recommend process itself is down; production runs several replicas):", ""]
    lines += [f"- {row['fault']}: {row['recommend']['statuses']}; event batches resent (why: times): "
              f"{row['resends'] or 'none'}, never accepted: {row['abandoned']}"
              + ("; the server exited once resumed and was started again" if row.get("restarted") else "")
              for row in r["faults"]]
    return "\n".join(lines) + "\n"


def _or_dash(value: float | None) -> str:
    return "-" if value is None else f"{value}"


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = r["faults"]
    names = [row["fault"] for row in rows]
    fig, axes = plt.subplots(1, 2, figsize=(14, 0.4 * len(rows) + 2))
    axes[0].barh(names, [row["recovery_s"] or 0 for row in rows], color=["#55a868" if row["ok"] else "#c44e52"
                                                                          for row in rows])
    axes[0].set_title("recovery: server back → its backlog stored and applied (s)")
    axes[0].invert_yaxis()
    axes[1].barh(names, [row["recommend"]["during_fault_p99_ms"] or 0 for row in rows], color="#4c72b0")
    axes[1].set_title("recommend p99 during the fault (ms)")
    axes[1].invert_yaxis()
    axes[1].set_yticklabels([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(r: dict[str, Any], out_dir: Path) -> Path:
    return write_report(r, out_dir / "faults", markdown_report, plot)

