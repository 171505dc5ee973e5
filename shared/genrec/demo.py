"""The end-to-end demo on the embedded stack, through the same public interfaces a user has.

stack up → synthetic catalogue and events through event-capture → a model trained quickly and
promoted to the model server → recommendations with reasons → a new item upserted and
generated for a shopper whose session matches it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pandas as pd
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from genrec.config import Settings
from genrec.data import SynthConfig, generate_synthetic
from genrec.data.schema import InteractionDataset
from genrec.devstack import stack
from genrec.devstack.watch import crash_guard
from genrec.events.codec import BATCH_CONTENT_TYPE
from genrec.events.contracts import INTERACTION, ITEM_UPSERTED

SOURCE = "genrec-demo"
QUICK_TRAINING = {
    "max_history": 20, "top_k": 50, "val_beam_width": 20, "threads": 2,
    "embeddings": {"mode": "auto"},
    "tokenizer": {"levels": 3, "codebook_size": 32, "latent_dim": 32, "steps": 400},
    "model": {"d_model": 64, "n_heads": 2, "encoder_layers": 2, "decoder_layers": 2, "d_ff": 128},
    "optim": {"epochs": 5, "batch_size": 128, "lr": 3e-3, "warmup_steps": 50, "patience": 2},
}


class Demo:
    def __init__(self, s: Settings, console: Console, n_items: int = 400, n_users: int = 300,
                 training: dict | None = None) -> None:
        self.s, self.console = s, console
        self.n_items, self.n_users = n_items, n_users
        self.training = training or QUICK_TRAINING
        self.http = httpx.Client(timeout=60)

    # ------------------------------------------------------------------ helpers
    def step(self, title: str) -> None:
        self.console.rule(f"[bold]{title}")

    def _send(self, events: list[dict], label: str) -> None:
        url = self.s.function_url("event_capture") + "/api/v1/events"
        with Progress(console=self.console, transient=True) as bar:
            task = bar.add_task(label, total=len(events))
            for start in range(0, len(events), 500):
                chunk = events[start:start + 500]
                resp = self.http.post(url, content=json.dumps(chunk), headers={"content-type": BATCH_CONTENT_TYPE})
                resp.raise_for_status()
                bar.advance(task, len(chunk))

    def _wait(self, what: str, check: Callable[[], bool], timeout_s: float = 600) -> None:
        start = time.monotonic()
        with self.console.status(f"waiting for {what} ..."):
            while not check():
                if time.monotonic() - start > timeout_s:
                    raise TimeoutError(f"{what} did not happen within {timeout_s:.0f}s")
                time.sleep(0.5)
        self.console.print(f"[green]✓[/] {what} ({time.monotonic() - start:.1f}s)")

    def _count(self, sql: str, *args) -> int:
        from genrec.stores.postgres import connect

        with connect(self.s) as conn:
            return int(conn.execute(sql, args).fetchone()[0])

    def _caught_up(self, function: str) -> bool:
        from genrec.events.kafka import consumer_lag
        from genrec.events.subscriptions import consumer_groups

        return all(lag == 0 for lag in consumer_lag(self.s, consumer_groups(self.s, function=function)).values())

    # ------------------------------------------------------------------ steps
    def bring_up(self) -> None:
        self.step("1. embedded local stack")
        rows = stack.up(self.s, on_progress=lambda m: self.console.print(f"[cyan]•[/] {m}"))
        for r in rows:
            self.console.print(f"  {r.name:<21} {'healthy' if r.healthy else 'UNHEALTHY'}  {r.endpoint}")

    def load_data(self) -> InteractionDataset:
        self.step("2. synthetic catalogue and events → event-capture → Kafka → functions")
        ds = generate_synthetic(SynthConfig(n_items=self.n_items, n_users=self.n_users, seed=42))
        self.console.print(f"{ds.n_items} items, {ds.n_users} users, {ds.n_interactions} interactions")
        self.tag = uuid.uuid4().hex[:6]  # fresh event ids on every demo run
        items = [self._item_event(r) for r in ds.items.to_dict("records")]
        self._send(items, "items")
        # Every item stored with a vector, and cold-start-embedding caught up with its topic (on a
        # re-run the items exist already: only the consumer's lag shows this run's events are done).
        embedded = "SELECT count(*) FROM items WHERE item_id = ANY(%s) AND embedding IS NOT NULL"
        self._wait(f"{ds.n_items} items embedded into PostgreSQL and Milvus by cold-start-embedding",
                   lambda: self._count(embedded, list(ds.items.item_id)) >= ds.n_items
                   and self._caught_up("cold-start-embedding"))
        events = [{
            "specversion": "1.0", "id": f"{self.tag}-{i}", "source": SOURCE, "type": INTERACTION,
            "data": {"user_id": r["user_id"], "item_id": r["item_id"], "event_type": r["event_type"],
                     "value": r["value"], "timestamp": int(r["timestamp"])},
        } for i, r in enumerate(ds.interactions.to_dict("records"))]
        self._send(events, "interactions")
        self._wait(f"{len(events)} interactions in the event history (analytics-sink)",
                   lambda: self._count("SELECT count(*) FROM user_event_ids WHERE source = %s AND event_id LIKE %s",
                                       SOURCE, f"{self.tag}-%") >= len(events))
        return ds

    def _item_event(self, r: dict, event_id: str | None = None) -> dict:
        return {"specversion": "1.0", "id": event_id or f"{self.tag}-item-{r['item_id']}", "source": SOURCE,
                "type": ITEM_UPSERTED,
                "data": {"item_id": r["item_id"], "title": r["title"], "description": r.get("description", ""),
                         "category_path": r.get("categories", ""), "brand": r.get("brand", ""),
                         "price": float(r["price"]) if pd.notna(r.get("price")) else None}}

    def train_and_promote(self, ds: InteractionDataset) -> str:
        self.step("3. train the generative model (quick CPU budget) and promote it")
        from genrec.pipelines.publish import stamp_manifest
        from genrec.serving.artifact import set_current
        from genrec.stores.catalog_repo import CatalogRepo
        from genrec.stores.hot_state import redis_client
        from genrec.stores.model_registry import ModelRegistry
        from genrec.stores.postgres import make_pool
        from genrec.training import TrainConfig, train_generative

        version = time.strftime("demo-%Y%m%d-%H%M%S")
        out = Path(self.s.model.artifacts_dir) / version
        bundle = train_generative(ds, TrainConfig.model_validate(self.training), out_dir=out)
        test = bundle.report.get("test", {})
        self.console.print(f"test metrics: {json.dumps({k: round(v, 4) for k, v in test.items()})}")
        pool = make_pool(self.s)
        codes = bundle.code_table.item_codes.tolist()
        CatalogRepo(pool).set_semantic_ids({str(i): codes[k] for k, i in enumerate(bundle.item_index.ids)})
        registry = ModelRegistry(pool)
        registry.register(version, str(out.resolve()), metrics=test)
        registry.promote(version)
        pool.close()
        stamp_manifest(out, version, {"metrics": test})  # the server then reports the registry's name
        set_current(out, self.s, redis_client(self.s))
        self._wait(f"the model server to load {version}", lambda: self._model_version() == version, 180)
        return version

    def _model_version(self) -> str | None:
        from genrec.serving.client import ModelClient

        return ModelClient(self.s).status().get("version")

    def show_recommendations(self, ds: InteractionDataset, users: list[str]) -> None:
        self.step("4. recommendations (recommend API → model server)")
        url = self.s.function_url("recommend") + "/api/v1/recommend/generate"
        titles = ds.items.set_index("item_id")["title"].to_dict()
        for user in users:
            body = self.http.post(url, json={"user_id": user, "count": 5}).json()
            recent = ds.interactions[ds.interactions.user_id == user].item_id.tolist()[-3:]
            table = Table(title=f"{user} — served by {body['served_by']} ({body['algorithm_version']}), "
                                f"{body['debug'].get('latency_ms', 0):.1f} ms; recently: "
                                + "; ".join(titles.get(i, i)[:28] for i in recent))
            for col in ("item", "title", "semantic id", "score", "reason"):
                table.add_column(col)
            for it in body["items"]:
                table.add_row(it["item_id"], it["title"][:40], str(it["semantic_ids"]), f"{it['score']:.3f}",
                              it["reason"])
            self.console.print(table)

    def new_item(self, ds: InteractionDataset) -> None:
        self.step("5. a new item, recommendable within seconds of its upsert event")
        top = ds.interactions.item_id.value_counts().index[0]  # a session on the most popular item
        anchor = ds.items[ds.items.item_id == top].iloc[0].to_dict()
        new_id = f"NEW-{self.tag}"
        record = {**anchor, "item_id": new_id, "title": anchor["title"] + " (new edition)"}
        started = time.monotonic()
        self._send([self._item_event(record, event_id=f"{self.tag}-new")], "new item")
        self._wait(f"{new_id} to get a Semantic ID from the production tokenizer",
                   lambda: self._count("SELECT count(*) FROM items WHERE item_id = %s AND semantic_ids IS NOT NULL",
                                       new_id) == 1, 60)
        url = self.s.function_url("recommend") + "/api/v1/recommend/session"
        session = [anchor["item_id"]]
        found = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and found is None:
            body = self.http.post(url, json={"items": session, "count": 50}).json()
            found = next((k for k, it in enumerate(body["items"]) if it["item_id"] == new_id), None)
            time.sleep(0.5)
        if found is None:
            self.console.print(f"[yellow]{new_id} was not among the top 50 for a session on “{anchor['title']}”[/]")
        else:
            self.console.print(f"[green]✓[/] {new_id} “{record['title']}” generated at rank {found + 1} for a "
                               f"session on “{anchor['title']}”, {time.monotonic() - started:.1f}s after its "
                               f"upsert event (served by {body['served_by']})")

    def finish(self) -> None:
        self.step("done")
        self.console.print(f"admin app:      {self.s.function_url('admin_api')}/   (token dev-admin-token)")
        self.console.print(f"shopper page:   {self.s.function_url('admin_api')}/#/shop")
        self.console.print(f"recommend API:  {self.s.function_url('recommend')}/docs")
        self.console.print("stop everything: genrec dev down   (or make down)")


def run(s: Settings, console: Console | None = None) -> None:
    console = console or Console()
    demo = Demo(s, console)
    demo.bring_up()
    with crash_guard(s):  # a server that dies meanwhile stops the demo at once, named, with its log
        ds = demo.load_data()
        demo.train_and_promote(ds)
        top_users = ds.interactions.user_id.value_counts().index[:3].tolist()
        demo.show_recommendations(ds, top_users)
        demo.new_item(ds)
    demo.finish()
