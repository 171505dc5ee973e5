"""Typed containers for a catalogue and its interaction log.

Both wrap pandas DataFrames but normalise column types once, at construction, so that
every consumer can rely on ``item_id``/``user_id`` being ``str`` and ``timestamp`` being
``int64`` seconds, and on interactions being in canonical per-user sequence order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

ITEM_ID = "item_id"
USER_ID = "user_id"
TIMESTAMP = "timestamp"
EVENT_TYPE = "event_type"
VALUE = "value"

# Columns that carry item text, in the order they are rendered into an embedding prompt.
TEXT_COLUMNS: tuple[str, ...] = (
    "title",
    "categories",
    "genres",
    "brand",
    "price",
    "description",
    "tags",
)


@dataclass
class Catalog:
    """Items: ``item_id`` (str, unique) plus any text/metadata columns."""

    items: pd.DataFrame

    def __post_init__(self) -> None:
        if ITEM_ID not in self.items.columns:
            raise ValueError(f"catalog needs an '{ITEM_ID}' column, got {list(self.items.columns)}")
        items = self.items.copy()
        items[ITEM_ID] = items[ITEM_ID].astype(str)
        if items[ITEM_ID].duplicated().any():
            dup = items.loc[items[ITEM_ID].duplicated(), ITEM_ID].iloc[0]
            raise ValueError(f"duplicate item_id in catalog: {dup!r}")
        self.items = items.reset_index(drop=True)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def text_columns(self) -> list[str]:
        return [c for c in TEXT_COLUMNS if c in self.items.columns]

    def with_items(self, item_ids: np.ndarray | list[str]) -> Catalog:
        """A catalogue that also lists ``item_ids`` (missing ones get empty metadata)."""
        known = set(self.items[ITEM_ID])
        extra = [i for i in dict.fromkeys(map(str, item_ids)) if i not in known]
        if not extra:
            return self
        return Catalog(pd.concat([self.items, pd.DataFrame({ITEM_ID: extra})], ignore_index=True))


@dataclass
class InteractionDataset:
    """A catalogue and an event log sorted into canonical per-user order.

    Sorting is stable on (user_id, timestamp) with file order as the final tie-break, which
    is what keeps e.g. the Amazon/P5 same-day order intact.
    """

    catalog: Catalog
    interactions: pd.DataFrame
    name: str = "dataset"
    # False when the source had no timestamps (e.g. this ML-1M copy): row order was used.
    has_timestamps: bool = True
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        df = self.interactions
        for col in (USER_ID, ITEM_ID):
            if col not in df.columns:
                raise ValueError(f"interactions need a '{col}' column, got {list(df.columns)}")
        df = df.copy()
        df[USER_ID] = df[USER_ID].astype(str)
        df[ITEM_ID] = df[ITEM_ID].astype(str)
        if TIMESTAMP not in df.columns:
            # No clock: file order within a user is the only order we have.
            self.has_timestamps = False
            df[TIMESTAMP] = np.arange(len(df), dtype=np.int64)
        df[TIMESTAMP] = pd.to_numeric(df[TIMESTAMP], errors="raise").astype(np.int64)
        df["_row"] = np.arange(len(df), dtype=np.int64)
        df = df.sort_values([USER_ID, TIMESTAMP, "_row"], kind="mergesort").drop(columns="_row")
        self.interactions = df.reset_index(drop=True)
        self.catalog = self.catalog.with_items(self.interactions[ITEM_ID].unique())

    @property
    def items(self) -> pd.DataFrame:
        return self.catalog.items

    @property
    def n_users(self) -> int:
        return int(self.interactions[USER_ID].nunique())

    @property
    def n_items(self) -> int:
        return self.catalog.n_items

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)

    def summary(self) -> dict[str, object]:
        per_user = self.interactions.groupby(USER_ID).size()
        n_u, n_i = self.n_users, self.n_items
        return {
            "name": self.name,
            "users": n_u,
            "items": n_i,
            "interactions": self.n_interactions,
            "density": self.n_interactions / max(1, n_u * n_i),
            "mean_sequence_length": float(per_user.mean()) if len(per_user) else 0.0,
            "median_sequence_length": float(per_user.median()) if len(per_user) else 0.0,
            "items_with_interactions": int(self.interactions[ITEM_ID].nunique()),
            "text_columns": self.catalog.text_columns,
            "has_timestamps": self.has_timestamps,
            "has_event_types": EVENT_TYPE in self.interactions.columns,
        }
