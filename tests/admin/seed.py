"""A small synthetic world for the admin API and browser tests, seeded through the public APIs.

Items and interactions go through event capture (binary-mode CloudEvents), like any upstream
system's. What the offline pipelines would add (text embeddings, semantic IDs, the vector
index, registered model versions) is written with genrec's own library code when no running
function has produced it: the embedding and tokenizer jobs are batch jobs, not services.
Finally some recommendations are served and clicked through the recommend API, so analytics
has rows for the dashboard.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np

from genrec.config import Settings
from genrec.data.synth import SynthConfig, generate_synthetic
from genrec.events.codec import new_event, to_http_binary
from genrec.events.contracts import INTERACTION, ITEM_UPSERTED
from genrec.stores.catalog_repo import CatalogRepo
from genrec.stores.postgres import connect

SOURCE = "genrec-tests/seed"
N_ITEMS, N_USERS = 120, 24
EVENTS_PER_USER = 6


@dataclass
class World:
    item_ids: list[str]
    user_ids: list[str]
    versions: list[str]
    categories: list[str]
    titles: dict[str, str] = field(default_factory=dict)
    run: str = ""


_WORLD: dict[int, World] = {}


def wait_for(check, timeout_s: float, what: str, interval_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


def send_events(s: Settings, events: list, *, key=lambda ev: ev.id, workers: int = 8) -> None:
    """POST each event (binary mode) to event capture; events sharing ``key`` go in order, one
    after the other, while different keys go in parallel (each POST waits for the broker's ack)."""
    from concurrent.futures import ThreadPoolExecutor

    url = s.function_url("event_capture") + "/api/v1/events"
    lanes: dict[str, list] = {}
    for ev in events:
        lanes.setdefault(key(ev), []).append(ev)

    def send_lane(lane: list) -> None:
        with httpx.Client(timeout=30) as client:
            for ev in lane:
                headers, body = to_http_binary(ev)
                resp = client.post(url, headers=headers, content=body)
                assert resp.status_code == 202, resp.text

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(send_lane, lanes.values()))


def seed_world(s: Settings) -> World:
    """Seed once per stack (port base) and per test session."""
    key = s.stack.port_base
    if key not in _WORLD:
        _WORLD[key] = _seed(s)
    return _WORLD[key]


def _seed(s: Settings) -> World:
    data = generate_synthetic(SynthConfig(n_items=N_ITEMS, n_users=N_USERS, seed=11, mean_sessions=1.5))
    items = data.catalog.items
    run = uuid.uuid4().hex[:6]
    send_events(s, [
        new_event(ITEM_UPSERTED, {
            "item_id": r.item_id, "title": r.title, "description": r.description, "category_path": r.categories,
            "brand": r.brand, "price": float(r.price),
        }, source=SOURCE, event_id=f"item-{r.item_id}-{run}")
        for r in items.itertuples()
    ])
    ids = items["item_id"].tolist()
    _complete_catalogue(s, items, ids)

    # Interactions: the synthetic log, moved to the last hour so it is "recent".
    inter = data.interactions.sort_values(["user_id", "timestamp"]).groupby("user_id").tail(EVENTS_PER_USER)
    now = datetime.now(UTC)
    events = []
    for i, r in enumerate(inter.itertuples()):
        ts = now - timedelta(seconds=3600 - i % 3000)
        events.append(new_event(INTERACTION, {
            "user_id": r.user_id, "item_id": r.item_id, "event_type": r.event_type,
            "value": float(r.value), "timestamp": ts.isoformat(),
        }, source=SOURCE, event_id=f"ev-{run}-{i}"))
    send_events(s, events, key=lambda ev: ev.partition_key)
    users = sorted(inter["user_id"].unique().tolist())
    with connect(s) as conn:  # the history is the bulk consumer's (niced, big batches): it may lag
        wait_for(lambda: conn.execute("SELECT count(DISTINCT user_id) FROM user_events WHERE user_id = ANY(%s)",
                                      (users,)).fetchone()[0] == len(users), 240, "analytics-sink to store the events")

    versions = _register_models(s, run)
    _serve_and_click(s, users[:8])
    cats = sorted({c.split("|")[0] for c in items["categories"]})
    return World(ids, users, versions, cats, dict(zip(items["item_id"], items["title"], strict=True)), run)


def _complete_catalogue(s: Settings, items, ids: list[str]) -> None:
    """Wait for the catalogue rows; fill in what the offline embedding/tokenizer jobs would add."""
    from genrec.devstack.services import SERVICES

    with connect(s, vector=True) as conn:
        repo = CatalogRepo(conn)
        if "cold-start-embedding" in SERVICES:
            wait_for(lambda: repo.count() >= len(ids) and len(repo.get_many(ids)) == len(ids), 120,
                     "cold-start-embedding to write the catalogue")
        else:
            # Stand-in until the cold-start-embedding function exists: the row it would write.
            from genrec.stores.catalog_repo import Item

            repo.upsert_many(Item(r.item_id, r.title, r.description, r.categories, {"brand": r.brand,
                                  "price": float(r.price)}) for r in items.itertuples())
            conn.commit()
        stored = {it.item_id: it for it in repo.get_many(ids)}
        missing_emb = [i for i in ids if stored[i].embedding is None]
        if missing_emb:
            from genrec.embeddings.text import TextEmbedder

            texts = [f"{stored[i].title}. {stored[i].description}" for i in missing_emb]
            repo.set_embeddings(dict(zip(missing_emb, TextEmbedder().encode(texts, progress=False), strict=True)))
            conn.commit()
            stored = {it.item_id: it for it in repo.get_many(ids)}
        if any(stored[i].semantic_ids is None for i in ids):
            from genrec.semantic.tokenizer import SemanticIdTokenizer, TokenizerConfig

            tok = SemanticIdTokenizer(TokenizerConfig(method="rqkmeans", levels=2, codebook_size=6,
                                                      disambiguation_size=64))
            codes = tok.fit(np.stack([stored[i].embedding for i in ids]), progress=False)
            repo.set_semantic_ids({i: c.tolist() for i, c in zip(ids, codes, strict=True)})
            conn.commit()
            stored = {it.item_id: it for it in repo.get_many(ids)}
    from genrec.stores.milvus import ItemVector, ItemVectorIndex

    index = ItemVectorIndex(s)
    try:
        index.ensure_collection()
        index.upsert(ItemVector(i, stored[i].embedding, tuple(stored[i].semantic_ids[:3]), stored[i].category_path)
                     for i in ids)
    finally:
        index.close()


def _register_models(s: Settings, run: str) -> list[str]:
    from genrec.stores.model_registry import ModelRegistry

    versions = [f"demo-{run}-a", f"demo-{run}-b", f"demo-{run}-c"]
    with connect(s) as conn:
        reg = ModelRegistry(conn)
        for n, v in enumerate(versions):
            reg.register(v, f"s3://genrec/models/{v}", metrics={"recall@10": 0.21 + n / 50, "ndcg@10": 0.12 + n / 80})
        reg.promote(versions[0])
        reg.set_status(versions[1], "canary", traffic_weight=0.1)
        conn.commit()
    return versions


def _serve_and_click(s: Settings, users: list[str]) -> None:
    """Recommendations served and clicked through the recommend API (analytics rows for the dashboard)."""
    base = s.function_url("recommend") + "/api/v1/recommend"
    with httpx.Client(timeout=30) as client:
        for u in users:
            resp = client.post(f"{base}/generate", json={"user_id": u, "count": 10})
            assert resp.status_code == 200, resp.text
            body = resp.json()
            if body["items"]:
                fb = client.post(f"{base}/feedback", json={"user_id": u, "item_id": body["items"][0]["item_id"],
                                                           "feedback": "click", "request_id": body["request_id"]})
                assert fb.status_code == 202, fb.text
        analytics = s.function_url("analytics_sink") + "/api/v1/analytics/versions"
        wait_for(lambda: sum(r["requests"] for r in client.get(analytics, params={"hours": 2}).json()) >= len(users),
                 60, "analytics-sink to record served recommendations")
