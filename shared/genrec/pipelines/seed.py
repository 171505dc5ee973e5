"""Load a dataset folder into PostgreSQL (``items`` + ``user_events``) for local runs and tests.

The live path writes these tables through the functions (event-capture -> Kafka ->
feature-update); this shortcut lets ``genrec pipeline nightly`` run on a fresh local stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from genrec.config import Settings, get_settings
from genrec.data.schema import EVENT_TYPE, ITEM_ID, TIMESTAMP, USER_ID, VALUE, InteractionDataset
from genrec.stores.catalog_repo import CatalogRepo, Item
from genrec.stores.events_repo import EventRepo, UserEvent
from genrec.stores.postgres import make_pool

_ATTRIBUTE_COLUMNS = ("brand", "price", "genres", "tags")


@dataclass
class SeedResult:
    items: int
    events: int


def dataset_items(ds: InteractionDataset) -> list[Item]:
    rows = ds.items.to_dict("records")
    out = []
    for r in rows:
        attrs = {k: r[k] for k in _ATTRIBUTE_COLUMNS if k in r and r[k] not in (None, "")}
        out.append(Item(
            str(r[ITEM_ID]), title=str(r.get("title") or ""), description=str(r.get("description") or ""),
            category_path=str(r.get("categories") or ""), attributes={k: _plain(v) for k, v in attrs.items()},
        ))
    return out


def dataset_events(ds: InteractionDataset, source: str) -> list[UserEvent]:
    df = ds.interactions
    types = df[EVENT_TYPE] if EVENT_TYPE in df.columns else ["interaction"] * len(df)
    values = df[VALUE] if VALUE in df.columns else [None] * len(df)
    return [
        UserEvent(event_id=f"{i:012d}", source=source, user_id=str(u), item_id=str(it), event_type=str(t),
                  ts=datetime.fromtimestamp(int(ts), UTC), value=_number(v))
        for i, (u, it, ts, t, v) in enumerate(zip(df[USER_ID], df[ITEM_ID], df[TIMESTAMP], types, values,
                                                  strict=True))
    ]


def seed_postgres(ds: InteractionDataset, s: Settings | None = None, *, source: str = "genrec/seed",
                  batch_size: int = 5000) -> SeedResult:
    """Upsert the catalogue and insert the events (idempotent: re-seeding adds nothing)."""
    s = s or get_settings()
    pool = make_pool(s)
    try:
        CatalogRepo(pool).upsert_many(dataset_items(ds))
        repo = EventRepo(pool)
        events = dataset_events(ds, source)
        n = sum(repo.insert_many(events[i:i + batch_size]) for i in range(0, len(events), batch_size))
    finally:
        pool.close()
    return SeedResult(ds.n_items, n)


def _number(v: object) -> float | None:
    """NaN and None -> NULL."""
    return None if v is None or v != v else float(v)  # NaN is the only value != itself


def _plain(v: object) -> object:
    """numpy scalars -> Python (JSON) values."""
    return v.item() if hasattr(v, "item") else v
