"""Client-side mapping between external item ids and the model's dense indices.

Trained items come from the artifact's ``item_ids.json``; items fed after training come
from the code feed (index ``n_base + position``). The recommend function keeps one
``ItemCatalog`` per artifact version (``CatalogCache``) and maps the indices of whichever
version answered a request, so a model switch never mislabels items.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from genrec.config import Settings
from genrec.serving import keys
from genrec.serving.artifact import ServingArtifact, resolve_current, uri_for_version
from genrec.serving.feed import decode_entry


class ItemCatalog:
    def __init__(self, art: ServingArtifact) -> None:
        self.art = art
        self.version = art.version
        self.n_base = art.n_items
        self._ids: list[str] = list(art.item_ids)
        self._index: dict[str, int] = {iid: i for i, iid in enumerate(self._ids)}
        self._lock = threading.Lock()
        self._checked_at = 0.0

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def n_fed(self) -> int:
        return len(self._ids) - self.n_base

    def refresh(self, client: Any, min_interval_s: float = 0.0) -> int:
        """Pull fed items not seen yet (one LLEN when nothing changed); returns how many."""
        now = time.monotonic()
        if now - self._checked_at < min_interval_s:
            return 0
        with self._lock:
            self._checked_at = now
            start = self.n_fed
            if int(client.llen(keys.feed(self.version))) <= start:
                return 0
            entries = [decode_entry(r) for r in client.lrange(keys.feed(self.version), start, -1)]
            for entry in entries:
                self._index.setdefault(entry.item_id, len(self._ids))
                self._ids.append(entry.item_id)
            return len(entries)

    def item_id(self, index: int) -> str | None:
        return self._ids[index] if 0 <= index < len(self._ids) else None

    def item_ids(self, indices: Iterable[int]) -> list[str | None]:
        return [self.item_id(int(i)) for i in indices]

    def indices(self, item_ids: Sequence[str]) -> np.ndarray:
        """Dense indices (-1 for ids the model does not know yet)."""
        return np.fromiter((self._index.get(str(i), -1) for i in item_ids), dtype=np.int64, count=len(item_ids))

    def user_token(self, user_id: str | None) -> int:
        """The hashed user bucket the model was trained with (0 = anonymous)."""
        if not user_id:
            return 0
        from zlib import crc32  # same hash as genrec.model.generative.user_bucket (no torch here)

        buckets = self.art.user_buckets
        return 0 if buckets <= 1 else 1 + crc32(user_id.encode()) % (buckets - 1)


class CatalogCache:
    """One ``ItemCatalog`` per artifact version, opened on first use and refreshed lazily.

    ``get()`` follows the production pointer: it is re-read at most every
    ``refresh_interval_s`` (one Redis GET), so a promotion or rollback reaches every
    client within that interval without a restart.
    """

    def __init__(self, client: Any, settings: Settings | None = None, refresh_interval_s: float = 0.5) -> None:
        self.client = client
        self.settings = settings
        self.refresh_interval_s = refresh_interval_s
        self._catalogs: dict[str, ItemCatalog] = {}  # by version
        self._by_uri: dict[str, str] = {}  # artifact URI -> version
        self._current: str | None = None
        self._pointer_checked_at = float("-inf")
        self._lock = threading.Lock()

    def get(self, version: str | None = None) -> ItemCatalog:
        """The catalogue of ``version`` (default: the production artifact), kept fresh."""
        cat = self._catalogs.get(version or self._current_version())
        if cat is None:
            with self._lock:
                cat = self._catalogs.get(version) if version else None
                if cat is None:
                    uri = uri_for_version(self.client, version) if version else None
                    if uri is None:
                        raise LookupError(f"no artifact known for version {version!r}")
                    cat = self._open(uri)
        cat.refresh(self.client, self.refresh_interval_s)
        return cat

    def current(self) -> ItemCatalog:
        """Re-read the production pointer now (e.g. right after a promotion)."""
        self._pointer_checked_at = float("-inf")
        return self.get()

    def _current_version(self) -> str:
        now = time.monotonic()
        if self._current is not None and now - self._pointer_checked_at < self.refresh_interval_s:
            return self._current
        uri = resolve_current(self.settings, self.client)
        if uri is None:
            raise LookupError("no production artifact")
        with self._lock:
            version = self._by_uri.get(uri) or self._open(uri).version
            self._current, self._pointer_checked_at = version, now
        return version

    def _open(self, uri: str) -> ItemCatalog:
        cat = ItemCatalog(ServingArtifact.open(uri, self.settings))
        self._catalogs.setdefault(cat.version, cat)
        self._by_uri[uri] = cat.version
        return self._catalogs[cat.version]
