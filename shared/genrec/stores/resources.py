"""Clients an app opens lazily, once, on first use (so a function starts even while a store is
still coming up, and answers 503 for that store until it is back).

``Lazy`` is the one way genrec builds a client on first use: a typed, thread-safe holder that
builds its value once (a failed build is retried on the next use), and closes it only if it
was built. ``Resources`` is the set of store clients the apps share, each a ``Lazy``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Generic, TypeVar

from genrec.config import Settings

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from genrec.stores.catalog_repo import CatalogRepo
    from genrec.stores.events_repo import EventRepo
    from genrec.stores.hot_state import HotState
    from genrec.stores.milvus import ItemVectorIndex
    from genrec.stores.model_registry import ModelRegistry
    from genrec.stores.users_repo import UserRepo

T = TypeVar("T")


class Lazy(Generic[T]):
    """A value built by ``build()`` on first ``get()``, once, whichever thread asks first."""

    def __init__(self, build: Callable[[], T], close: Callable[[T], object] | None = None) -> None:
        self._build, self._close = build, close
        self._lock = threading.Lock()
        self._box: tuple[T] | None = None  # (value,) once built

    @property
    def built(self) -> bool:
        return self._box is not None

    def get(self) -> T:
        box = self._box
        if box is None:
            with self._lock:
                if self._box is None:  # an exception leaves it unbuilt: the next get() tries again
                    self._box = (self._build(),)
                box = self._box
        return box[0]

    async def aget(self) -> T:
        """``get()`` for async code: a built value at once, a first build in a worker thread."""
        return self.get() if self._box is not None else await asyncio.to_thread(self.get)

    def close(self) -> None:
        """Close the value if it was built (a client never opened is not opened to close it)."""
        box = self._box
        if box is not None and self._close is not None:
            self._close(box[0])


class Resources:
    """The store clients of one app, each opened on first use."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self._pool = Lazy(self._open_pool, close=lambda pool: pool.close())
        self._hot = Lazy(self._open_hot)
        self._vectors = Lazy(self._open_vectors, close=lambda index: index.close())
        self._events = Lazy(self._event_repo)
        self._catalog = Lazy(self._catalog_repo)
        self._users = Lazy(self._user_repo)
        self._registry = Lazy(self._model_registry)

    @property
    def pool(self) -> ConnectionPool:
        return self._pool.get()

    @property
    def hot(self) -> HotState:
        return self._hot.get()

    @property
    def vectors(self) -> ItemVectorIndex:
        return self._vectors.get()

    @property
    def events(self) -> EventRepo:
        return self._events.get()

    @property
    def catalog(self) -> CatalogRepo:
        return self._catalog.get()

    @property
    def users(self) -> UserRepo:
        return self._users.get()

    @property
    def registry(self) -> ModelRegistry:
        return self._registry.get()

    def close(self) -> None:
        self._pool.close()
        self._vectors.close()

    def _open_pool(self) -> ConnectionPool:
        from genrec.stores.postgres import make_pool

        return make_pool(self.s)

    def _open_hot(self) -> HotState:
        from genrec.stores.hot_state import HotState

        return HotState(self.s)

    def _open_vectors(self) -> ItemVectorIndex:
        from genrec.stores.milvus import ItemVectorIndex

        index = ItemVectorIndex(self.s)
        index.ensure_collection()
        return index

    def _event_repo(self) -> EventRepo:
        from genrec.stores.events_repo import EventRepo

        return EventRepo(self.pool)

    def _catalog_repo(self) -> CatalogRepo:
        from genrec.stores.catalog_repo import CatalogRepo

        return CatalogRepo(self.pool)

    def _user_repo(self) -> UserRepo:
        from genrec.stores.users_repo import UserRepo

        return UserRepo(self.pool)

    def _model_registry(self) -> ModelRegistry:
        from genrec.stores.model_registry import ModelRegistry

        return ModelRegistry(self.pool)


class TTLCache:
    """A tiny thread-safe cache with expiry (e.g. item → category for popularity boards)."""

    def __init__(self, ttl_s: float, max_size: int = 100_000) -> None:
        self.ttl_s, self.max_size = ttl_s, max_size
        self._data: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, load):
        now = time.monotonic()
        with self._lock:
            hit = self._data.get(key)
            if hit and hit[0] > now:
                return hit[1]
        value = load(key)
        self._put({key: value}, now)
        return value

    def get_many(self, keys: Iterable[str], load_many: Callable[[list[str]], dict[str, object]]) -> dict[str, object]:
        """Each key's value; the missing and expired ones loaded by one ``load_many`` call."""
        now, wanted = time.monotonic(), list(dict.fromkeys(keys))
        found: dict[str, object] = {}
        with self._lock:
            for key in wanted:
                hit = self._data.get(key)
                if hit and hit[0] > now:
                    found[key] = hit[1]
        missing = [key for key in wanted if key not in found]
        if missing:
            loaded = load_many(missing)
            self._put(loaded, now)
            found.update(loaded)
        return found

    def _put(self, values: dict[str, object], now: float) -> None:
        with self._lock:
            if len(self._data) + len(values) > self.max_size:
                self._data.clear()
            for key, value in values.items():
                self._data[key] = (now + self.ttl_s, value)
