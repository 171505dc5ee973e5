"""cold-start-embedding: new items and users become recommendable in seconds.

item.upserted → text embedding (all-MiniLM-L6-v2) → PostgreSQL + Milvus, and, when a model is
in production, a Semantic ID from its tokenizer appended to the serving code feed, which makes
the item generatable by every model server replica at once (no retraining, no re-export).
item.enriched → the LLM's tags and summary join the item's text and attributes.
user.upserted → declared interests → a user vector for cold-start retrieval.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI

from genrec.apps.event_function import create_event_app
from genrec.apps.readiness import Readiness
from genrec.config import Settings, get_settings
from genrec.embeddings.text import TextEmbedder, item_texts
from genrec.events.codec import ValidEvent
from genrec.events.contracts import (
    ITEM_ENRICHED,
    ITEM_UPSERTED,
    USER_UPSERTED,
    ItemEnrichedData,
    ItemUpsertedData,
    UserUpsertedData,
)
from genrec.stores.catalog_repo import Item
from genrec.stores.milvus import ItemVector, coarse_levels
from genrec.stores.resources import Lazy, Resources
from genrec.stores.users_repo import User

log = logging.getLogger("genrec.cold_start")


def items_frame(items: Sequence[Item]) -> pd.DataFrame:
    """The dataset layout (genrec.data) for stored items, so text is rendered one way everywhere."""
    return pd.DataFrame([{
        "item_id": it.item_id, "title": it.title, "description": it.description,
        "categories": it.category_path, "brand": it.attributes.get("brand", ""), "price": it.attributes.get("price"),
        "tags": "|".join(it.attributes.get("tags", [])),
    } for it in items])


def upserted_items(upserts: Sequence[ItemUpsertedData], stored: Mapping[str, Item]) -> tuple[list[Item], set[str]]:
    """The items a run of upserts leaves, applied in order over the stored ones (attributes
    merge, so an enrichment that came first keeps its tags; the rest is the last upsert's, and
    stored codes stay), and the ids upserted as active at least once: those get a Semantic ID,
    as they would if each event were handled alone."""
    items: dict[str, Item] = {}
    active: set[str] = set()
    for d in upserts:
        prev = items.get(d.item_id) or stored.get(d.item_id)
        attrs = {**(prev.attributes if prev else {}), **d.attributes}
        attrs.update({k: v for k, v in (("brand", d.brand), ("price", d.price), ("image_url", d.image_url)) if v})
        items[d.item_id] = Item(d.item_id, title=d.title, description=d.description, category_path=d.category_path,
                                attributes=attrs, status=d.status, semantic_ids=prev.semantic_ids if prev else None)
        if d.status == "active":
            active.add(d.item_id)
    return list(items.values()), active


def stored_vectors(items: Sequence[Item], texts: Sequence[str], stored: Mapping[str, Item]) -> list[np.ndarray | None]:
    """For each item of ``items`` (whose texts are ``texts``), its stored vector where the stored item has one and
    renders to the same text, else None: embedding that text again would give the same vector (a catalogue re-sent
    whole, a change of status or of attributes outside the text, a redelivered batch)."""
    kept = [p for it in items if (p := stored.get(it.item_id)) is not None and p.embedding is not None]
    old = {p.item_id: (text, p.embedding) for p, text in zip(kept, item_texts(items_frame(kept)), strict=True)}
    vectors: list[np.ndarray | None] = []
    for item, text in zip(items, texts, strict=True):
        was = old.get(item.item_id)
        vectors.append(was[1] if was is not None and was[0] == text else None)
    return vectors


class SemanticIds:
    """The production model's tokenizer and code feed, reloaded when production changes."""

    def __init__(self, s: Settings, redis_client: Any) -> None:
        self.s = s
        self.r = redis_client
        self._lock = threading.Lock()
        self._uri: str | None = None
        self._bundle = None
        self._feed = None

    def _current(self):
        from genrec.serving.artifact import ServingArtifact, resolve_current
        from genrec.serving.feed import feed_for
        from genrec.training.bundle import TrainedBundle

        uri = resolve_current(self.s, self.r)
        if uri is None:
            return None, None
        with self._lock:
            if uri != self._uri:
                art = ServingArtifact.open(uri, self.s)
                self._bundle = TrainedBundle.load(art.root)
                self._feed = feed_for(art, self.r)
                self._uri = uri
            return self._bundle, self._feed

    def assign(self, item_ids: Sequence[str], text_vectors: np.ndarray) -> list[list[int] | None]:
        """Each item's code tuple (existing if already known; new ones fed in one append), or None
        when no model is in production or the item's code prefix is full: the item is then
        served by vector retrieval until the next training gives it a code (refusing the event
        would lose the item for good)."""
        from genrec.serving.feed import assign_and_append

        bundle, feed = self._current()
        if bundle is None:
            return [None] * len(item_ids)
        known = feed.codes_of_many(item_ids)
        new = [k for k, codes in enumerate(known) if codes is None]
        if new and bundle.embedding_source == "interactions":
            # The tokenizer was fitted on interaction vectors: content cannot place a new item.
            log.info("no Semantic ID for %d items: the production tokenizer has no text input", len(new))
        elif new:
            got = assign_and_append(bundle.tokenizer, [item_ids[k] for k in new],
                                    bundle.tokenizer_input(text_vectors[new]), artifact=feed.art, settings=self.s,
                                    client=self.r, skip_full=True)
            full = [item_ids[k] for k, index in zip(new, got, strict=True) if index < 0]
            if full:
                log.warning("no Semantic ID until the next training for %d items whose code prefix is full: %s",
                            len(full), ", ".join(full[:10]))
            fed = [k for k, index in zip(new, got, strict=True) if index >= 0]
            for k, codes in zip(fed, feed.codes_of_many([item_ids[k] for k in fed]), strict=True):
                known[k] = codes
        return [None if codes is None else [int(c) for c in codes] for codes in known]


def event_path_embedder(workers: int | None = None) -> TextEmbedder:
    """bf16 where the CPU has it natively, and one torch thread per product unless OMP_NUM_THREADS
    says otherwise: on a busy 2-core machine two intra-op threads spent two to three times the CPU
    per text waiting on each other (`genrec bench ingest`). A delivered batch's texts are encoded
    ``workers`` batches at once instead, each on one thread, none waiting (None: one per CPU this
    process may run on; ``functions.cold_start_workers``). KafkaSource delivers one event a request, and
    the function scales out by pods; the dev stack's bridge delivers batches, which then use every core."""
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(1)
    return TextEmbedder("cpu", batch_size=64, precision="auto", workers=workers or len(os.sched_getaffinity(0)))


class ColdStart:
    """Each handler takes a delivered batch at once: one catalogue read, one embedding call, one
    code-feed append, one PostgreSQL upsert and one Milvus upsert, whatever the batch size. A
    failure fails the batch, which is redelivered whole: every step is idempotent."""

    def __init__(self, s: Settings, res: Resources) -> None:
        self.s, self.res = s, res
        self.embedder = Lazy(lambda: event_path_embedder(s.functions.cold_start_workers))
        self.semantic = Lazy(lambda: SemanticIds(s, res.hot.r))
        # Upserts and enrichments come on different topics, at once: each reads an item, merges
        # and writes it back, seconds later for a batch, so they take turns (no lost tags).
        self._writes = threading.Lock()

    def embed(self, items: Sequence[Item], stored: Mapping[str, Item]) -> set[str]:
        """Set each item's vector: its stored one where its text has not changed (``stored_vectors``), else its text
        embedded (about 10 ms of a core an item: the function's main cost). Returns the ids embedded."""
        texts = item_texts(items_frame(items))
        vectors = stored_vectors(items, texts, stored)
        todo = [k for k, vector in enumerate(vectors) if vector is None]
        if todo:
            fresh = self.embedder.get().encode([texts[k] for k in todo], progress=False)
            for k, vector in zip(todo, fresh, strict=True):
                vectors[k] = vector
        for item, vector in zip(items, vectors, strict=True):
            item.embedding = vector
        return {items[k].item_id for k in todo}

    def store(self, items: Sequence[Item]) -> None:
        self.res.catalog.upsert_many(items)
        self.res.vectors.upsert([ItemVector(it.item_id, it.embedding, coarse_levels(it.semantic_ids),
                                            it.category_path, it.status) for it in items])

    def stored(self, item_ids: Iterable[str]) -> dict[str, Item]:
        return {it.item_id: it for it in self.res.catalog.get_many(list(dict.fromkeys(item_ids)))}

    def on_items(self, events: Sequence[ValidEvent[ItemUpsertedData]]) -> list[dict]:
        with self._writes:
            stored = self.stored(ev.data.item_id for ev in events)
            items, active = upserted_items([ev.data for ev in events], stored)
            embedded = self.embed(items, stored)
            coded = [it for it in items if it.item_id in active]  # an inactive item gets no new code
            if coded:
                got = self.semantic.get().assign([it.item_id for it in coded],
                                                 np.stack([it.embedding for it in coded]))
                for item, codes in zip(coded, got, strict=True):
                    item.semantic_ids = codes or item.semantic_ids
            self.store(items)
        by_id = {it.item_id: it for it in items}
        return [{"id": ev.id, "item_id": ev.data.item_id, "semantic_ids": by_id[ev.data.item_id].semantic_ids,
                 "embedded": ev.data.item_id in embedded} for ev in events]

    def on_enriched(self, events: Sequence[ValidEvent[ItemEnrichedData]]) -> list[dict]:
        with self._writes:
            stored = self.stored(ev.data.item_id for ev in events)
            enriched = dict(stored)
            for ev in events:  # an enrichment that overtook its upsert (other topic): the upsert re-embeds later
                d, item = ev.data, enriched.get(ev.data.item_id)
                if item is not None:
                    enriched[d.item_id] = replace(item, attributes={
                        **item.attributes, "tags": d.tags, "summary": d.summary,
                        **{f"llm_{k}": v for k, v in d.attributes.items()}})
            items, embedded = list(enriched.values()), set()
            if items:
                embedded = self.embed(items, stored)  # codes stay: a Semantic ID is an item's stable address
                self.store(items)
        return [{"id": ev.id, "item_id": ev.data.item_id, "applied": ev.data.item_id in stored,
                 "embedded": ev.data.item_id in embedded} for ev in events]

    def on_user(self, ev: ValidEvent[UserUpsertedData]) -> dict:
        d = ev.data
        embedding = None
        if d.interests:
            embedding = self.embedder.get().encode(["interests: " + ", ".join(d.interests)], progress=False)[0]
        self.res.users.upsert(User(d.user_id, profile=d.profile, preferences={"interests": d.interests},
                                   embedding=embedding))
        return {"id": ev.id, "user_id": d.user_id, "has_vector": embedding is not None}


def create_app(s: Settings | None = None) -> FastAPI:
    s = s or get_settings()
    res = Resources(s)
    cold = ColdStart(s, res)
    app = create_event_app("cold-start-embedding", "genrec cold-start embedding", {USER_UPSERTED: cold.on_user},
                           batch_handlers={ITEM_UPSERTED: cold.on_items, ITEM_ENRICHED: cold.on_enriched},
                           ready=Readiness(s, ("postgres", "milvus", "redis")))  # redis: the code feed
    # Load the embedding model in the background: the function answers health checks at once,
    # and the first event waits for the load instead of the whole start-up.
    app.state.on_start = lambda: threading.Thread(target=lambda: cold.embedder.get().load(), daemon=True).start()
    app.state.on_stop = res.close
    return app
