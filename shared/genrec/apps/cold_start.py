"""cold-start-embedding: new items and users become recommendable in seconds.

item.upserted → text embedding (all-MiniLM-L6-v2) → PostgreSQL + Milvus, and, when a model is
in production, a Semantic ID from its tokenizer appended to the serving code feed, which makes
the item generatable by every model server replica at once (no retraining, no re-export).
item.enriched → the LLM's tags and summary join the item's text and attributes.
user.upserted → declared interests → a user vector for cold-start retrieval.
"""

from __future__ import annotations

import logging
import threading
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


def item_frame(item: Item) -> pd.DataFrame:
    """The dataset layout (genrec.data) for one stored item, so text is rendered one way everywhere."""
    attrs = item.attributes
    return pd.DataFrame([{
        "item_id": item.item_id, "title": item.title, "description": item.description,
        "categories": item.category_path, "brand": attrs.get("brand", ""), "price": attrs.get("price"),
        "tags": "|".join(attrs.get("tags", [])),
    }])


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

    def assign(self, item_id: str, text_vector: np.ndarray) -> list[int] | None:
        """The item's code tuple (existing if already known), or None when no model is in production
        or the item's code prefix is full: the item is then served by vector retrieval until the
        next training gives it a code (refusing the event would lose the item for good)."""
        from genrec.semantic.tokenizer import PrefixFull
        from genrec.serving.feed import assign_and_append

        bundle, feed = self._current()
        if bundle is None:
            return None
        known = feed.codes_of(item_id)
        if known is None:
            if bundle.embedding_source == "interactions":
                # The tokenizer was fitted on interaction vectors: content cannot place a new item.
                log.info("no Semantic ID for %s: the production tokenizer has no text input", item_id)
                return None
            try:
                assign_and_append(bundle.tokenizer, [item_id], bundle.tokenizer_input(text_vector[None, :]),
                                  artifact=feed.art, settings=self.s, client=self.r)
            except PrefixFull as exc:
                log.warning("no Semantic ID for %s until the next training: %s", item_id, exc)
                return None
            known = feed.codes_of(item_id)
        return [int(c) for c in known]


class ColdStart:
    def __init__(self, s: Settings, res: Resources) -> None:
        self.s, self.res = s, res
        self.embedder = Lazy(lambda: TextEmbedder("cpu", batch_size=32))
        self.semantic = Lazy(lambda: SemanticIds(s, res.hot.r))

    def embed(self, item: Item) -> np.ndarray:
        return self.embedder.get().encode(item_texts(item_frame(item)), progress=False)[0]

    def store(self, item: Item, codes: list[int] | None) -> None:
        self.res.catalog.upsert(item)
        self.res.vectors.upsert([ItemVector(item.item_id, item.embedding, coarse_levels(codes), item.category_path,
                                            item.status)])

    def on_item(self, ev: ValidEvent[ItemUpsertedData]) -> dict:
        d = ev.data
        existing = self.res.catalog.get(d.item_id)
        attrs = {**(existing.attributes if existing else {}), **d.attributes}
        attrs.update({k: v for k, v in (("brand", d.brand), ("price", d.price), ("image_url", d.image_url)) if v})
        item = Item(d.item_id, title=d.title, description=d.description, category_path=d.category_path,
                    attributes=attrs, status=d.status)
        item.embedding = self.embed(item)
        codes = self.semantic.get().assign(d.item_id, item.embedding) if d.status == "active" else None
        item.semantic_ids = codes if codes else (existing.semantic_ids if existing else None)
        self.store(item, item.semantic_ids)
        return {"id": ev.id, "item_id": d.item_id, "semantic_ids": item.semantic_ids}

    def on_enriched(self, ev: ValidEvent[ItemEnrichedData]) -> dict:
        d = ev.data
        item = self.res.catalog.get(d.item_id)
        if item is None:  # enrichment overtook the upsert (different topics): the upsert re-embeds later
            return {"id": ev.id, "item_id": d.item_id, "applied": False}
        item.attributes = {**item.attributes, "tags": d.tags, "summary": d.summary,
                           **{f"llm_{k}": v for k, v in d.attributes.items()}}
        item.embedding = self.embed(item)  # codes stay: a Semantic ID is an item's stable address
        self.store(item, item.semantic_ids)
        return {"id": ev.id, "item_id": d.item_id, "applied": True}

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
    app = create_event_app("cold-start-embedding", "genrec cold-start embedding", {
        ITEM_UPSERTED: cold.on_item, ITEM_ENRICHED: cold.on_enriched, USER_UPSERTED: cold.on_user,
    }, ready=Readiness(s, ("postgres", "milvus", "redis")))  # redis: the production model's code feed
    # Load the embedding model in the background: the function answers health checks at once,
    # and the first event waits for the load instead of the whole start-up.
    app.state.on_start = lambda: threading.Thread(target=lambda: cold.embedder.get().load(), daemon=True).start()
    app.state.on_stop = res.close
    return app
