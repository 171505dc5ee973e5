"""Which function consumes which topic: declared once, used by the local eventing bridge
and by the Pulumi program (KafkaSources), so local and production wiring cannot differ."""

from __future__ import annotations

from dataclasses import dataclass

from genrec.config import Settings
from genrec.events.codec import MAX_BATCH
from genrec.events.contracts import INTERACTION, ITEM_ENRICHED, ITEM_UPSERTED, RECOMMENDATION_SERVED, USER_UPSERTED
from genrec.events.delivery import DELIVERY, DeliveryPolicy
from genrec.workloads import Priority, workload


@dataclass(frozen=True)
class Subscription:
    function: str  # service name (dev stack) == Knative Service name
    topic_key: str  # key into settings.kafka.topics
    event_types: tuple[str, ...]
    path: str = "/"  # where the function receives CloudEvents
    # Retries and backoff; when they run out the record goes to the topic's dead-letter topic.
    delivery: DeliveryPolicy = DELIVERY
    # Records per delivery by the local bridge (a CloudEvents batch, at most the codec's MAX_BATCH:
    # a function refuses a bigger one, and the bridge would re-send it record by record). KafkaSource
    # delivers one per request and scales out with pods; one machine needs batches to keep up.
    max_batch: int = 500
    # How long the broker may hold a fetch (None: ``kafka.fetch_wait_max_ms``). tansu holds it
    # the full time and every fetch reads its S3 log, so this trades delivery delay against
    # idle load; below ~500 ms it also starves a backlog (see the setting's comment).
    fetch_wait_ms: int | None = None
    # KafkaSource's per-partition order (one record in flight per partition). A consumer whose
    # writes are idempotent and order-free (the analytics sink's inserts) takes records unordered,
    # many in flight. The local bridge delivers each subscription in order either way.
    ordered: bool = True

    @property
    def priority(self) -> Priority:
        """Its function's priority: which local bridge delivers it, which PriorityClass its pods get."""
        return workload(self.function).priority

    @property
    def group_id(self) -> str:
        return f"genrec-{self.function}"

    def topic(self, s: Settings) -> str:
        return s.kafka.topic(self.topic_key)


SUBSCRIPTIONS: tuple[Subscription, ...] = (
    # Freshness target (interaction → next recommendation < 1 s): the settings' wait, the
    # shortest that still drains a burst on tansu. The biggest batches the function takes: a
    # delivery holds only what is waiting, so they are small unless a backlog built up, which
    # then drains in fewer round trips (fetch, POST, commit) per event.
    Subscription("feature-update", "user_events", (INTERACTION,), max_batch=MAX_BATCH),
    # New item → recommendable < 5 s.
    Subscription("cold-start-embedding", "item_events", (ITEM_UPSERTED,), fetch_wait_ms=250),
    Subscription("cold-start-embedding", "item_enriched", (ITEM_ENRICHED,), fetch_wait_ms=1000),
    Subscription("cold-start-embedding", "user_profile_events", (USER_UPSERTED,), fetch_wait_ms=1000),
    # Asked of the LLM llm.concurrency (8) at a time: 16 items are two answers' time, far inside the delivery
    # timeout; without an LLM they pass through in one request instead of 16 (1.5 of ingest's ~14 ms of CPU per item).
    Subscription("llm-enrichment", "item_events", (ITEM_UPSERTED,), max_batch=16, fetch_wait_ms=1000),
    # Bulk: the event history (PostgreSQL) and ClickHouse, which wants few, large inserts (each
    # one is a new part to merge). A backlog is absorbed in the biggest batches a function takes.
    Subscription("analytics-sink", "user_events", (INTERACTION,), path="/events", max_batch=MAX_BATCH,
                 fetch_wait_ms=1000, ordered=False),
    Subscription("analytics-sink", "recommendation_logs", (RECOMMENDATION_SERVED,), path="/events",
                 max_batch=MAX_BATCH, fetch_wait_ms=1000, ordered=False),
)


def consumer_groups(s: Settings, subscriptions: tuple[Subscription, ...] = SUBSCRIPTIONS,
                    function: str | None = None) -> dict[str, list[str]]:
    """Consumer group -> the topics it reads (optionally only ``function``'s): what lag is measured on."""
    groups: dict[str, list[str]] = {}
    for sub in subscriptions:
        if function is None or sub.function == function:
            groups.setdefault(sub.group_id, []).append(sub.topic(s))
    return groups
