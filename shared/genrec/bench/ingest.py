"""`genrec bench ingest`: item upserts end to end, at catalogue speed.

``items`` item.upserted events for a synthetic catalogue (varied titles, brands, categories and
prices: identical texts would all share one Semantic-ID prefix) go to event-capture as CloudEvents
batches, as an upstream catalogue sync sends them. An item counts as ingested once its vector is in
PostgreSQL and in Milvus; cold-start-embedding writes the production model's code feed first, so an
ingested item that is not in the feed by then got no Semantic ID (its code prefix was full) and is
counted apart. Throughput is items ingested per second from the first batch posted to the last item
ingested; latency is per item, from its batch being accepted (202) to being seen ingested (polled
every ``poll_s``, which bounds its resolution). CPU is measured per local process.

Needs `genrec dev up` and a model in production (`make demo` leaves both).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from genrec.bench.ingest_floor import markdown as floor_markdown
from genrec.bench.ingest_floor import text_model_floor
from genrec.bench.load import CpuMeter, _check_stack, _percentiles, _production_items
from genrec.bench.report import machine_info, write_report
from genrec.config import Settings, get_settings
from genrec.events.codec import BATCH_CONTENT_TYPE
from genrec.events.contracts import ITEM_UPSERTED

SOURCE = "genrec-bench-ingest"
FLOOR_SAMPLE = 128  # texts the text model's floor is measured on


@dataclass
class IngestConfig:
    items: int = 2000
    batch: int = 500  # events per request to event-capture
    seed: int = 0
    timeout_s: float = 600.0  # for the last item to be ingested
    poll_s: float = 0.25
    note: str = ""  # what this run compares, for the report


@dataclass
class Tracker:
    """Which items are ingested, polled from the stores as a client sees them."""

    s: Settings
    catalogs: Any  # genrec.serving.catalog.CatalogCache
    accepted_at: dict[str, float] = field(default_factory=dict)
    done_at: dict[str, float] = field(default_factory=dict)
    coded: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        from genrec.stores.milvus import ItemVectorIndex
        from genrec.stores.postgres import make_pool

        self.pool = make_pool(self.s)
        self.index = ItemVectorIndex(self.s)

    def close(self) -> None:
        self.pool.close()
        self.index.close()

    def poll(self) -> int:
        """Mark the items ingested since the last poll; returns how many are still pending."""
        pending = [i for i in self.accepted_at if i not in self.done_at]
        if not pending:
            return 0
        catalog = self.catalogs.get()
        catalog.refresh(self.catalogs.client)  # now, not at the cache's interval
        in_feed = catalog.indices(pending) >= 0  # read before the stores: written before them
        fed = {i for i, ok in zip(pending, in_feed, strict=True) if ok}
        with self.pool.connection() as conn:
            stored = [r[0] for r in conn.execute(
                "SELECT item_id FROM items WHERE item_id = ANY(%s::text[]) AND embedding IS NOT NULL",
                (pending,)).fetchall()]
        now = time.perf_counter()
        for start in range(0, len(stored), 500):
            for vec in self.index.get(stored[start:start + 500]):
                self.done_at[vec.item_id] = now
                if vec.item_id in fed:
                    self.coded.add(vec.item_id)
        return len(self.accepted_at) - len(self.done_at)


def catalogue(cfg: IngestConfig, tag: str) -> list[dict]:
    """The run's item.upserted events: a synthetic catalogue under fresh ids."""
    from genrec.data import SynthConfig, generate_synthetic

    items = generate_synthetic(SynthConfig(n_items=cfg.items, n_users=10, seed=1000 + cfg.seed)).items
    return [{"specversion": "1.0", "id": f"{tag}-{k}", "source": SOURCE, "type": ITEM_UPSERTED,
             "data": {"item_id": f"ingest-{tag}-{r['item_id']}", "title": r["title"],
                      "description": r["description"], "category_path": r["categories"], "brand": r["brand"],
                      "price": float(r["price"])}}
            for k, r in enumerate(items.to_dict("records"))]


def _post(http: httpx.Client, url: str, batch: list[dict], attempts: int = 20) -> None:
    """As a well-behaved sender: a 503 means "not accepted, send again" (same ids)."""
    for _ in range(attempts):
        resp = http.post(url, content=json.dumps(batch), headers={"content-type": BATCH_CONTENT_TYPE})
        if resp.status_code != 503:
            resp.raise_for_status()
            return
        time.sleep(float(resp.headers.get("retry-after", "1")))
    resp.raise_for_status()


def run_ingest(cfg: IngestConfig, progress: Any = None) -> dict[str, Any]:
    s = get_settings()
    _check_stack(s)
    version, _, catalogs = _production_items(s)
    say = progress or (lambda _m: None)
    tag = uuid.uuid4().hex[:8]
    events = catalogue(cfg, tag)
    tracker = Tracker(s, catalogs)
    url = s.function_url("event_capture") + "/api/v1/events"
    say(f"{len(events)} item upserts in batches of {cfg.batch} against model {version}")
    try:
        with httpx.Client(timeout=60) as http:
            cpu, machine = CpuMeter(s), psutil.cpu_times()
            t0 = time.perf_counter()
            for start in range(0, len(events), cfg.batch):
                batch = events[start:start + cfg.batch]
                _post(http, url, batch)
                accepted = time.perf_counter()
                tracker.accepted_at.update({ev["data"]["item_id"]: accepted for ev in batch})
                tracker.poll()
            posted_s = time.perf_counter() - t0
            while tracker.poll() and time.perf_counter() - t0 < cfg.timeout_s:
                time.sleep(cfg.poll_s)
            elapsed = (max(tracker.done_at.values()) if tracker.done_at else time.perf_counter()) - t0
            cpu_percent, machine_percent = cpu.percent(), _machine_percent(machine, time.perf_counter() - t0)
    finally:
        tracker.close()
    done = len(tracker.done_at)
    latency_s = [tracker.done_at[i] - tracker.accepted_at[i] for i in tracker.done_at]
    say("the text model's compute floor, on this run's texts (after the run: nothing else competes)")
    floor = text_model_floor(run_texts(events[:FLOOR_SAMPLE]))
    return {
        "kind": "ingest", "machine": machine_info(), "config": asdict(cfg), "model_version": version,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "items": len(events), "ingested": done, "with_semantic_id": len(tracker.coded),
        "seconds": round(elapsed, 2), "posted_seconds": round(posted_s, 2),
        "items_per_s": round(done / elapsed, 1) if elapsed > 0 else None,
        "latency_s": {k: None if v is None else round(v, 2) for k, v in _percentiles(latency_s).items()},
        "cpu_percent": cpu_percent,
        # CPU per item ingested, ms of one core: what a process would need with the cores to itself.
        "cpu_ms_per_item": {name: round(10 * pct * elapsed / done, 1) for name, pct in cpu_percent.items()
                            if done and pct >= 1},
        # The whole machine (other tenants included) and, on a VM, time the hypervisor took away.
        "machine_cpu_percent": machine_percent,
        "text_model": floor,
    }


def run_texts(events: list[dict]) -> list[str]:
    """The texts cold-start-embedding embeds for these upserts (genrec.apps.cold_start)."""
    from genrec.apps.cold_start import items_frame, upserted_items
    from genrec.embeddings.text import item_texts
    from genrec.events.contracts import ItemUpsertedData

    items, _ = upserted_items([ItemUpsertedData.model_validate(ev["data"]) for ev in events], {})
    return item_texts(items_frame(items))


def _machine_percent(before: Any, seconds: float) -> dict[str, float]:
    after = psutil.cpu_times()
    busy = sum(getattr(after, f) - getattr(before, f) for f in after._fields if f not in ("idle", "iowait", "steal"))
    steal = getattr(after, "steal", 0.0) - getattr(before, "steal", 0.0)
    return {"busy": round(100 * busy / seconds, 1), "steal": round(100 * steal / seconds, 1)}


def markdown_report(r: dict[str, Any]) -> str:
    m, cfg, lat = r["machine"], r["config"], r["latency_s"]
    missing = r["items"] - r["ingested"]
    lines = [
        "# Ingest: item upserts end to end (event accepted → PostgreSQL + Milvus + code feed)",
        "",
        f"{r['items']} item.upserted events in batches of {cfg['batch']} to event-capture on {m.get('cpu', '?')} "
        f"({m.get('cores', '?')} cores; load average {m.get('load_average_at_start', ['?'])[0]} at the start), "
        f"model {r['model_version']} in production. {cfg.get('note', '')}".rstrip(),
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| items ingested per second, end to end | **{r['items_per_s']}** |",
        f"| items ingested / with a Semantic ID in the code feed | {r['ingested']} / {r['with_semantic_id']} |",
        f"| seconds: all posted / last item ingested | {r['posted_seconds']} / {r['seconds']} |",
        f"| latency per item, accepted → ingested, p50 / p95 / max s | {lat['p50']} / {lat['p95']} / {lat['max']} |",
    ]
    if r["with_semantic_id"] < r["ingested"]:
        lines += ["", "Items without a Semantic ID had a full code prefix: they are stored and served by vector "
                  "retrieval until the next training gives them codes."]
    if missing:
        lines += ["", f"**{missing} items were not ingested within {cfg['timeout_s']:.0f} s.**"]
    if r.get("cpu_percent"):
        busy = r.get("machine_cpu_percent", {})
        lines += ["", f"CPU during the run, % of one core ({m.get('cores', '?')} cores in all): "
                  + ", ".join(f"{name} {pct:.0f}" for name, pct in r["cpu_percent"].items())
                  + f"; the whole machine {busy.get('busy', '?')} (other tenants included), "
                  f"steal {busy.get('steal', '?')}.",
                  "", "CPU per item ingested, ms of one core: "
                  + ", ".join(f"{name} {ms}" for name, ms in r["cpu_ms_per_item"].items()) + "."]
    if r.get("text_model"):
        lines += floor_markdown(r["text_model"])
    return "\n".join(lines) + "\n"


def write_results(r: dict[str, Any], out_dir: Path, label: str = "cpu") -> Path:
    return write_report(r, out_dir / f"ingest-{label}", markdown_report)

