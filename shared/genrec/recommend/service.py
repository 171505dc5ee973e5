"""The recommend path: cache → generative model → vector retrieval → popularity.

Each request is answered by the first path that can: a user with history goes to the model
server; when it is down (or the user has no history) a user vector (declared interests, or the
mean of recently seen items) retrieves from Milvus; with nothing else, decayed popularity.
The response says which path served it. Filters and pages apply to the ranked list, which is
kept per request so that paging never repeats an item.

No store outage is an error here: without PostgreSQL the lists are made of the item rows this
process last read (``ItemRows``); without Redis a page token is served from a fresh ranking at its
offset. Such an answer lists why in ``debug.degraded``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np
import redis

from genrec.config import Settings
from genrec.recommend.context import RequestContext, reweigh
from genrec.recommend.experiment import Experiment, Variant
from genrec.recommend.guard import StoreGuard, StoreUnavailable
from genrec.recommend.item_rows import ItemRows
from genrec.recommend.pages import PageStore, PageTokenError, RankedList
from genrec.recommend.reasons import Reasons
from genrec.recommend.schemas import Filters, GenerateRequest, RecommendationList, RecommendedItem, ServedBy
from genrec.serving.client import ModelUnavailable
from genrec.stores import postgres
from genrec.stores.catalog_repo import Item
from genrec.stores.categories import category_levels
from genrec.stores.hot_state import HotState, redis_client
from genrec.stores.resources import Resources

log = logging.getLogger("genrec.recommend")

NEW_ITEM_AGE = timedelta(days=1)
FALLBACK_VERSION = "fallback"
FALLBACK_BOARD_TTL_S = 60.0
FALLBACK_BOARD_SIZE = 500


@dataclass(frozen=True)
class Candidate:
    item_id: str
    score: float


class ModelBackend(Protocol):
    """Generative retrieval behind the model server (see genrec.serving)."""

    def generate(self, history: Sequence[str], user_id: str | None, k: int, *,
                 canary: bool = False) -> tuple[str, list[Candidate]]:
        """The answering artifact version and its top-k, from the canary's model for its arm
        (raises ModelUnavailable)."""
        ...

    def generate_many(self, histories: Sequence[Sequence[str]], user_ids: Sequence[str | None], k: int, *,
                      canary: Sequence[bool] | None = None) -> list[tuple[str, list[Candidate]]]:
        """``generate`` for several users in one model-server call per arm (raises ModelUnavailable)."""
        ...


@dataclass
class Ranked:
    served_by: ServedBy
    version: str
    candidates: list[Candidate]
    debug: dict = field(default_factory=dict)
    variant: Variant = "production"  # the live A/B arm it was ranked for


class RecommendService:
    def __init__(self, s: Settings, res: Resources, model: ModelBackend | None) -> None:
        self.s = s
        self.res = res
        self.model = model
        # Every store call on the request path goes through a guard: a stalled store costs a request
        # at most its budget (PostgreSQL) or its client's timeout (Redis), a failing one nothing
        # once the breaker is open.
        self.hot = HotState(s, client=redis_client(s, timeout_s=s.redis.request_timeout_s))
        self.redis = StoreGuard("Redis", budget_s=None, unavailable=(redis.RedisError,))
        self.pages = PageStore(self.hot.r)
        self.postgres = StoreGuard("PostgreSQL", budget_s=0.3, unavailable=postgres.UNAVAILABLE)
        self.item_rows = ItemRows(res, self.postgres, max_age_s=s.postgres.item_rows_max_age_s)
        self.top_k = s.model.top_k
        self.experiment = Experiment(self.hot.r)
        self._fallback_board: tuple[list[tuple[str, float]], float] = ([], float("-inf"))

    # ------------------------------------------------------------------ public API
    def for_user(self, user_id: str, count: int, *, exclude: Sequence[str] = (), filters: Filters | None = None,
                 page_token: str | None = None, context: RequestContext | None = None,
                 variant: Variant | None = None) -> RecommendationList:
        """``variant``: the A/B arm to serve from (testing); the user's own by default."""
        offset, degraded = 0, []
        if page_token:
            try:
                return self.redis.call(lambda: self._page(page_token, count, user_id))
            except StoreUnavailable as exc:
                offset, degraded = PageStore.offset(page_token), [f"page store unavailable ({exc}): ranked again"]
        filters = filters or Filters()
        (history, cached), = self._states([user_id])
        arm = self.experiment.variant(user_id, variant)
        category = filters.category or ""
        ranked = self._reuse(cached, history, category, arm) or self._rank(user_id, history, category, arm)
        return self._first_page(ranked, count, user_id=user_id, history=history, exclude=exclude, filters=filters,
                                offset=offset, degraded=degraded, context=context)

    def for_users(self, requests: Sequence[GenerateRequest], variant: Variant | None = None
                  ) -> list[RecommendationList]:
        """``for_user`` for each request, in order: the users' Redis state in one round trip, and those
        the model answers (a history, no valid cached list, no page token) sent to the model server as
        one batch per A/B arm."""
        fresh = [i for i, r in enumerate(requests) if not r.page_token]
        states = dict(zip(fresh, self._states([requests[i].user_id for i in fresh]), strict=True))
        arms = [self.experiment.variant(r.user_id, variant) for r in requests]
        reused = {i: self._reuse(cached, history, requests[i].filters.category or "", arms[i])
                  for i, (history, cached) in states.items()}
        need = [i for i in fresh if reused[i] is None and states[i][0]]
        generated = dict(zip(need, self._generate_many([states[i][0] for i in need],
                                                       [requests[i].user_id for i in need],
                                                       [arms[i] for i in need]), strict=True))
        pages = []
        for i, r in enumerate(requests):
            if r.page_token:
                pages.append(self.for_user(r.user_id, r.count, exclude=r.exclude, filters=r.filters,
                                           page_token=r.page_token, context=r.context, variant=arms[i]))
                continue
            history = states[i][0]
            ranked = reused[i] or self._rank(r.user_id, history, r.filters.category or "", arms[i],
                                             asked=i in generated, generated=generated.get(i))
            pages.append(self._first_page(ranked, r.count, user_id=r.user_id, history=history, exclude=r.exclude,
                                          filters=r.filters, context=r.context))
        return pages

    def for_session(self, items: Sequence[str], count: int, *, filters: Filters | None = None) -> RecommendationList:
        """Anonymous session: its item list is the history; nothing is cached per user.

        The model reads the most recent items it was trained to read; every item of the
        session is excluded from the results, however long the session."""
        history = list(reversed(dict.fromkeys(reversed(items))))  # a repeated item counts where last seen
        ranked = self._generate(history, None) or self._vector_for(history, None, set(history))
        if ranked is None:
            ranked = self._popular("", set(history))
        ranked.served_by = "session" if ranked.served_by == "model" else ranked.served_by
        return self._first_page(ranked, count, user_id=None, history=history, exclude=(), filters=filters or Filters())

    def similar(self, item_id: str, count: int) -> RecommendationList | None:
        item, remembered = self.item_rows.get(item_id)
        if item is None and not remembered:
            return None
        vec = self._item_vectors([item_id])
        if vec is None:
            try:
                similar = self.postgres.call(lambda: self.res.catalog.similar_to(item_id, k=count))
            except StoreUnavailable:
                similar = []  # neither store can say now: an empty list (degraded), not "unknown item"
            neighbours = [Candidate(n.item_id, n.score) for n in similar]
        else:
            hits = self.res.vectors.search(vec, k=count + 1, exclude=[item_id])
            neighbours = [Candidate(h.item_id, h.score) for h in hits]
        ranked = Ranked("vector", FALLBACK_VERSION, neighbours[:count])
        return self._first_page(ranked, count, user_id=None, history=[item_id], exclude=(), filters=Filters())

    def popular(self, category: str, count: int, page_token: str | None = None) -> RecommendationList:
        offset, degraded = 0, []
        if page_token:
            try:
                return self.redis.call(lambda: self._page(page_token, count, None))
            except StoreUnavailable as exc:
                offset, degraded = PageStore.offset(page_token), [f"page store unavailable ({exc}): ranked again"]
        ranked = self._popular(category, set(), size=max(self.top_k, 200))
        return self._first_page(ranked, count, user_id=None, history=[], exclude=(),
                                filters=Filters(category=category or None), offset=offset, degraded=degraded)

    # ------------------------------------------------------------------ ranking paths
    def _states(self, user_ids: list[str]) -> list[tuple[list[str], dict | None]]:
        """Each user's history and cached list, in one Redis round trip; without Redis, served
        without either rather than failed."""
        if not user_ids:
            return []
        try:
            return self.redis.call(lambda: self.hot.users_state(user_ids, self.s.model.max_history))
        except StoreUnavailable as exc:
            log.warning("no history for %d users: %s", len(user_ids), exc)
            return [([], None)] * len(user_ids)

    def _reuse(self, cached: dict | None, history: list[str], category: str, variant: Variant) -> Ranked | None:
        """The cached list, if it may serve this request.

        A list is reused only for the history it was made from. An event can land between
        reading the history and writing the cache (its invalidation then comes first), and
        that stale list must not be served until the TTL ends. A popularity list is one
        category's board: it serves only that category again. A list ranked for the other A/B
        arm (a new canary, an arm named for testing), or for a canary since replaced, is not
        reused either."""
        if cached and cached.get("history") == history and cached.get("board", category) == category \
                and cached.get("variant", "production") == variant \
                and (variant != "canary" or cached.get("canary") == self._canary_version()):
            return Ranked("cache", cached["version"], [Candidate(i, s) for i, s in cached["items"]],
                          {"cached_from": cached["served_by"]}, variant)
        return None

    def _rank(self, user_id: str, history: list[str], category: str, variant: Variant, *, asked: bool = False,
              generated: Ranked | None = None) -> Ranked:
        """A new ranked list for the user's arm, cached for the user: the model's (``generated`` when
        it was ``asked`` already, in a batch), else the fallbacks."""
        seen = set(history)
        if not asked:
            generated = self._generate(history, user_id, variant) if history else None
        ranked = generated or self._vector_for(history, user_id, seen) or self._popular(category, seen)
        ranked.variant = variant
        if ranked.candidates:
            board = {"board": category} if ranked.served_by == "popularity" else {}
            entry = {"served_by": ranked.served_by, "version": ranked.version, "variant": variant,
                     **({"canary": self._canary_version()} if variant == "canary" else {}),
                     "items": [[c.item_id, c.score] for c in ranked.candidates], "history": history, **board}
            try:
                self.redis.call(lambda: self.hot.cache_recommendations(user_id, entry))
            except StoreUnavailable as exc:
                log.warning("could not cache recommendations: %s", exc)
        return ranked

    def _canary_version(self) -> str | None:
        canary = self.experiment.canary()
        return canary.version if canary is not None else None

    def _generate(self, history: list[str], user_id: str | None, variant: Variant = "production") -> Ranked | None:
        if self.model is None or not history:
            return None
        try:
            version, candidates = self.model.generate(history, user_id, self.top_k, canary=variant == "canary")
            return Ranked("model", version, candidates)
        except ModelUnavailable as exc:
            log.info("model unavailable, falling back: %s", exc)
            return None

    def _generate_many(self, histories: list[list[str]], user_ids: list[str],
                       variants: list[Variant]) -> list[Ranked | None]:
        if self.model is None or not histories:
            return [None] * len(histories)
        try:
            answers = self.model.generate_many(histories, user_ids, self.top_k,
                                               canary=[v == "canary" for v in variants])
        except ModelUnavailable as exc:
            log.info("model unavailable, falling back: %s", exc)
            return [None] * len(histories)
        return [Ranked("model", version, candidates) for version, candidates in answers]

    def _user_vector(self, user_id: str | None, history: list[str]) -> np.ndarray | None:
        if user_id:
            try:
                user = self.postgres.call(lambda: self.res.users.get(user_id))
            except StoreUnavailable:
                user = None
            if user is not None and user.embedding is not None and not history:
                return user.embedding
        return self._item_vectors(history[-10:]) if history else None

    def _item_vectors(self, item_ids: list[str]) -> np.ndarray | None:
        try:
            found = self.res.vectors.get(item_ids)
        except Exception as exc:
            log.warning("vector store unavailable: %s", exc)
            return None
        if not found:
            return None
        vec = np.mean([v.embedding for v in found], axis=0)
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else None

    def _vector_for(self, history: list[str], user_id: str | None, seen: set[str]) -> Ranked | None:
        vec = self._user_vector(user_id, history)
        if vec is None:
            return None
        try:
            hits = self.res.vectors.search(vec, k=self.top_k, exclude=sorted(seen))
        except Exception as exc:
            log.warning("vector retrieval failed: %s", exc)
            return None
        if not hits:
            return None
        return Ranked("vector", FALLBACK_VERSION, [Candidate(h.item_id, h.score) for h in hits])

    def _popular(self, category: str, seen: set[str], size: int | None = None) -> Ranked:
        """The category's board, topped up from the global board (filtered to the category later)
        when the category board is short, e.g. for a category nobody has interacted with yet."""
        size = size or self.top_k
        try:
            board = self.redis.call(lambda: self._board(category, size + len(seen)))
        except StoreUnavailable as exc:
            log.warning("popularity unavailable in Redis, using recent events: %s", exc)
            board = self._recent_board()
        return Ranked("popularity", FALLBACK_VERSION, [Candidate(i, s) for i, s in board if i not in seen])

    def _board(self, category: str, size: int) -> list[tuple[str, float]]:
        board = self.hot.popular_items(category, size)
        if category and len(board) < size:
            have = {i for i, _ in board}
            board += [(i, s) for i, s in self.hot.popular_items("", 4 * size) if i not in have]
        return board

    def _recent_board(self) -> list[tuple[str, float]]:
        """Most interacted items of the last week from PostgreSQL, cached for a minute so a
        Redis outage does not turn every request into a scan."""
        now = time.monotonic()
        board, at = self._fallback_board
        if now - at > FALLBACK_BOARD_TTL_S:
            try:
                board = self.postgres.call(lambda: self.res.events.top_items(
                    FALLBACK_BOARD_SIZE, datetime.now(UTC) - timedelta(days=7)))
            except StoreUnavailable as exc:
                log.warning("no popularity from PostgreSQL either: %s", exc)
            self._fallback_board = (board, now)
        return board

    # ------------------------------------------------------------------ lists and pages
    def _first_page(self, ranked: Ranked, count: int, *, user_id: str | None, history: list[str],
                    exclude: Sequence[str], filters: Filters, offset: int = 0,
                    degraded: list[str] | None = None, context: RequestContext | None = None) -> RecommendationList:
        """The page at ``offset`` (0 but for a page token whose list could not be loaded) of the
        ranked list re-weighted for the ``context``, which is kept for the next pages."""
        request_id = uuid.uuid4().hex
        drop = set(exclude)
        degraded = list(degraded or [])
        ids = [c.item_id for c in ranked.candidates if c.item_id not in drop]
        rows, remembered = self.item_rows.get_many(ids + history)
        if remembered:
            degraded.append("catalogue unavailable: the item rows last read")
        items = {i.item_id: i for i in rows}
        kept = {c.item_id: c for c in ranked.candidates
                if c.item_id in items and c.item_id not in drop and _passes(items[c.item_id], filters)}
        order, moved = reweigh(list(kept), items, context, self.s.recommend)
        why = Reasons(ranked.served_by, [items[h] for h in history if h in items], filters.category)
        new_since = datetime.now(UTC) - NEW_ITEM_AGE
        rows = [_row(kept[i], items[i], why, new_since) for i in order]
        debug = {**ranked.debug, "degraded": degraded} if degraded else ranked.debug
        if moved:
            debug = {**debug, "context_reweighted": moved}  # items the context moved up or down
        stored = RankedList(request_id=request_id, user_id=user_id, served_by=ranked.served_by,
                            version=ranked.version, rows=rows, debug=debug, variant=ranked.variant)
        if len(rows) > offset + count:
            try:
                self.redis.call(lambda: self.pages.save(stored))
            except StoreUnavailable as exc:  # serve this page without a next token
                log.warning("pages unavailable: %s", exc)
                stored.rows = stored.rows[:offset + count]
        return _to_page(stored, offset, count)

    def _page(self, token: str, count: int, user_id: str | None) -> RecommendationList:
        stored, offset = self.pages.load(token)
        if user_id is not None and stored.user_id not in (None, user_id):
            raise PageTokenError("page_token belongs to another user")
        return _to_page(stored, offset, count)


def _row(c: Candidate, item: Item, why: Reasons, new_since: datetime) -> RecommendedItem:
    """An item of the list, as kept in the ranked list (built from typed rows: not validated)."""
    return {
        "item_id": item.item_id, "score": float(c.score), "semantic_ids": item.semantic_ids, "title": item.title,
        "description": item.description[:500], "category_path": item.category_path,
        "image_url": str(item.attributes.get("image_url", "")), "reason": why.explain(item),
        "is_new": item.created_at is not None and item.created_at > new_since,
    }


def _passes(item: Item, filters: Filters) -> bool:
    if item.status != "active":
        return False
    if filters.category and filters.category not in category_levels(item.category_path):
        return False
    return all(item.attributes.get(k) == v for k, v in filters.attributes.items())


def _to_page(stored: RankedList, offset: int, count: int) -> RecommendationList:
    rows = stored.rows[offset:offset + count]
    nxt = offset + count
    # The rows are this module's own (kept in memory or in the page store): not validated again.
    return RecommendationList.model_construct(
        request_id=stored.request_id, user_id=stored.user_id, served_by=stored.served_by,
        algorithm_version=stored.version, variant=stored.variant,
        items=rows,
        next_page_token=PageStore.token(stored.request_id, nxt) if nxt < len(stored.rows) else None,
        debug=stored.debug,
    )
