"""The item rows a list is made of: read from PostgreSQL, the last ones seen kept for its outages.

Every list needs its items' rows (title, category, status, Semantic IDs) from the catalogue. Each
read goes to PostgreSQL through a ``StoreGuard``; the rows read are remembered (a bounded LRU),
and while PostgreSQL is down or stalled a list is made of the remembered rows: items never seen
by this process drop out of it, and a status change waits for PostgreSQL to be back. The
response then says ``degraded``; a list is never refused for want of the catalogue.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from genrec.recommend.guard import StoreGuard, StoreUnavailable
from genrec.stores.catalog_repo import Item
from genrec.stores.resources import Resources


class ItemRows:
    def __init__(self, res: Resources, postgres: StoreGuard, *, capacity: int = 50_000) -> None:
        self.res, self.postgres = res, postgres  # the pool opens inside the guard, on first use
        self.capacity = capacity
        self._seen: OrderedDict[str, Item] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, item_ids: Sequence[str]) -> tuple[list[Item], bool]:
        """The rows of ``item_ids`` that exist, in order, and whether they came from memory
        because PostgreSQL could not answer (only remembered items are then returned)."""
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return [], False
        try:
            rows = self.postgres.call(lambda: self.res.catalog.get_many(ids, with_embedding=False))
        except StoreUnavailable:
            with self._lock:
                return [self._seen[i] for i in ids if i in self._seen], True
        with self._lock:
            for row in rows:
                self._seen[row.item_id] = row
                self._seen.move_to_end(row.item_id)
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
        return rows, False

    def get(self, item_id: str) -> tuple[Item | None, bool]:
        rows, degraded = self.get_many([item_id])
        return (rows[0] if rows else None), degraded
