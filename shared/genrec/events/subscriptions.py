"""Which function consumes which topic: declared once, used by the local eventing bridge
and by the Pulumi program (KafkaSources), so local and production wiring cannot differ."""

from __future__ import annotations

from dataclasses import dataclass

from genrec.config import Settings
from genrec.events.contracts import INTERACTION, ITEM_ENRICHED, ITEM_UPSERTED, RECOMMENDATION_SERVED, USER_UPSERTED


@dataclass(frozen=True)
class Subscription:
    function: str  # service name (dev stack) == Knative Service name
    topic_key: str  # key into settings.kafka.topics
    event_types: tuple[str, ...]
    path: str = "/"  # where the function receives CloudEvents
    max_attempts: int = 5  # then the record goes to the topic's dead-letter topic

    @property
    def group_id(self) -> str:
        return f"genrec-{self.function}"

    def topic(self, s: Settings) -> str:
        return s.kafka.topic(self.topic_key)


SUBSCRIPTIONS: tuple[Subscription, ...] = (
    Subscription("feature-update", "user_events", (INTERACTION,)),
    Subscription("cold-start-embedding", "item_events", (ITEM_UPSERTED,)),
    Subscription("cold-start-embedding", "item_enriched", (ITEM_ENRICHED,)),
    Subscription("cold-start-embedding", "user_profile_events", (USER_UPSERTED,)),
    Subscription("llm-enrichment", "item_events", (ITEM_UPSERTED,)),
    Subscription("analytics-sink", "user_events", (INTERACTION,), path="/events"),
    Subscription("analytics-sink", "recommendation_logs", (RECOMMENDATION_SERVED,), path="/events"),
)


def consumer_groups(s: Settings, subscriptions: tuple[Subscription, ...] = SUBSCRIPTIONS,
                    function: str | None = None) -> dict[str, list[str]]:
    """Consumer group -> the topics it reads (optionally only ``function``'s): what lag is measured on."""
    groups: dict[str, list[str]] = {}
    for sub in subscriptions:
        if function is None or sub.function == function:
            groups.setdefault(sub.group_id, []).append(sub.topic(s))
    return groups
