"""Store clients an app opens lazily, once, on first use (so a function starts even while a
store is still coming up, and answers 503 for that store until it is back)."""

from __future__ import annotations

import threading
import time
from functools import cached_property
from typing import TYPE_CHECKING

from genrec.config import Settings

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from genrec.stores.catalog_repo import CatalogRepo
    from genrec.stores.events_repo import EventRepo
    from genrec.stores.hot_state import HotState
    from genrec.stores.milvus import ItemVectorIndex
    from genrec.stores.users_repo import UserRepo


class Resources:
    def __init__(self, s: Settings) -> None:
        self.s = s
        self._lock = threading.Lock()

    @cached_property
    def pool(self) -> ConnectionPool:
        from genrec.stores.postgres import make_pool

        with self._lock:
            return make_pool(self.s)

    @cached_property
    def hot(self) -> HotState:
        from genrec.stores.hot_state import HotState

        return HotState(self.s)

    @cached_property
    def events(self) -> EventRepo:
        from genrec.stores.events_repo import EventRepo

        return EventRepo(self.pool)

    @cached_property
    def catalog(self) -> CatalogRepo:
        from genrec.stores.catalog_repo import CatalogRepo

        return CatalogRepo(self.pool)

    @cached_property
    def users(self) -> UserRepo:
        from genrec.stores.users_repo import UserRepo

        return UserRepo(self.pool)

    @cached_property
    def vectors(self) -> ItemVectorIndex:
        from genrec.stores.milvus import ItemVectorIndex

        index = ItemVectorIndex(self.s)
        index.ensure_collection()
        return index

    def close(self) -> None:
        if "pool" in self.__dict__:
            self.pool.close()
        if "vectors" in self.__dict__:
            self.vectors.close()


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
        with self._lock:
            if len(self._data) >= self.max_size:
                self._data.clear()
            self._data[key] = (now + self.ttl_s, value)
        return value
