"""feature-update: interaction events → each user's hot state and popularity in Redis.

This is the freshness path (a click changes the user's next list within a second), so it does
nothing else: the event history (PostgreSQL) and ClickHouse get the same events from the
analytics sink, a bulk consumer of the same topic that may lag without harm.

Idempotent under redelivery: the user's Redis state changes in one script together with a
claim on (source, id), so it is applied exactly once even across crashes.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI

from genrec import signals
from genrec.apps.event_function import create_event_app
from genrec.apps.readiness import Readiness
from genrec.config import Settings, get_settings
from genrec.events.codec import ValidEvent
from genrec.events.contracts import INTERACTION, InteractionData
from genrec.stores.categories import category_levels
from genrec.stores.hot_state import Interaction
from genrec.stores.resources import Resources, TTLCache


class FeatureUpdate:
    def __init__(self, s: Settings) -> None:
        self.res = Resources(s)
        self.categories = TTLCache(ttl_s=60)

    def categories_of(self, item_ids: list[str]) -> dict[str, str]:
        """Each item's category path ("" for an item not in the catalogue), in one query."""
        found = {item.item_id: item.category_path
                 for item in self.res.catalog.get_many(item_ids, with_embedding=False)}
        return {item_id: found.get(item_id, "") for item_id in item_ids}

    def as_interaction(self, ev: ValidEvent[InteractionData], category: str) -> Interaction:
        """What the hot state applies for one delivered event (``category``: its item's path)."""
        d = ev.data
        positive = signals.is_positive(d.event_type, d.value)
        return Interaction(
            ev.source, ev.id, d.user_id, d.item_id, event_type=d.event_type, ts=d.timestamp or ev.time,
            append=positive, weight=signals.weight(d.event_type, d.value) if positive else 0.0,
            categories=tuple(category_levels(category)) if positive else (),
        )

    def on_interactions(self, evs: Sequence[ValidEvent[InteractionData]]) -> list[dict]:
        # The items' categories in one query for those not cached (a query per item held the
        # batch up); then in stream order, in one script call per user; claims make it once per event.
        categories = self.categories.get_many((ev.data.item_id for ev in evs), self.categories_of)
        applied = self.res.hot.apply_interactions_once(
            [self.as_interaction(ev, categories[ev.data.item_id]) for ev in evs])
        return [{"id": ev.id, "hot_state_applied": ok} for ev, ok in zip(evs, applied, strict=True)]


def create_app(s: Settings | None = None) -> FastAPI:
    s = s or get_settings()
    fu = FeatureUpdate(s)
    app = create_event_app("feature-update", "genrec feature update", batch_handlers={INTERACTION: fu.on_interactions},
                           ready=Readiness(s, ("redis", "postgres")))
    app.state.on_stop = fu.res.close
    return app
