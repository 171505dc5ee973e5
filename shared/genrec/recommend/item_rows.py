"""The item rows a list is made of: read from PostgreSQL, reused for a few seconds, and the last ones
seen kept for its outages.

Every list needs its items' rows (title, category, status, Semantic IDs) from the catalogue. A row
read less than ``postgres.item_rows_max_age_s`` ago is reused; the others are read in one query
through a ``StoreGuard``. Every row read is remembered (a bounded LRU), and while PostgreSQL is down
or stalled a list is made of the remembered rows, however old: items never seen by this process drop
out of it, and a status change waits for PostgreSQL to be back. The response then says ``degraded``;
a list is never refused for want of the catalogue.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

from genrec.recommend.guard import StoreGuard, StoreUnavailable
from genrec.stores.catalog_repo import Item
from genrec.stores.resources import Resources


class ItemRows:
    def __init__(self, res: Resources, postgres: StoreGuard, *, max_age_s: float, capacity: int = 50_000) -> None:
        self.res, self.postgres = res, postgres  # the pool opens inside the guard, on first use
        self.max_age_s, self.capacity = max_age_s, capacity
        self._seen: OrderedDict[str, tuple[Item, float]] = OrderedDict()  # item id -> (row, when read)
        self._lock = threading.Lock()

    def get_many(self, item_ids: Sequence[str]) -> tuple[list[Item], bool]:
        """The rows of ``item_ids`` that exist, in order, and whether some came from memory because
        PostgreSQL could not answer (only remembered items are then returned)."""
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return [], False
        now = time.monotonic()
        with self._lock:
            rows = {i: seen[0] for i in ids if (seen := self._seen.get(i)) and now - seen[1] < self.max_age_s}
        missing = [i for i in ids if i not in rows]
        degraded = False
        if missing:
            try:
                read = self.postgres.call(lambda: self.res.catalog.get_many(missing, with_embedding=False))
            except StoreUnavailable:
                read, degraded = [], True
            with self._lock:
                for row in read:
                    self._seen[row.item_id] = (row, now)
                    self._seen.move_to_end(row.item_id)
                while len(self._seen) > self.capacity:
                    self._seen.popitem(last=False)
                if degraded:
                    read = [seen[0] for i in missing if (seen := self._seen.get(i))]
            rows.update((row.item_id, row) for row in read)
        return [rows[i] for i in ids if i in rows], degraded

    def get(self, item_id: str) -> tuple[Item | None, bool]:
        rows, degraded = self.get_many([item_id])
        return (rows[0] if rows else None), degraded
