"""The event contract: CloudEvents 1.0 types, their data schemas, topics and partition keys.

Each CloudEvent type has a pydantic model for its ``data``; the JSON Schemas published under
``genrec/schemas/`` are generated from these models (``genrec events schemas``), so the code
and the published contract cannot drift apart (a test checks it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

# Identifiers come from upstream systems: any printable text, bounded, no control characters.
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$", strip_whitespace=True)
]
MAX_TEXT, MAX_SHORT_TEXT = 20_000, 512  # characters in any string of an event; in a name or title
ShortText = Annotated[str, StringConstraints(max_length=MAX_SHORT_TEXT)]
LongText = Annotated[str, StringConstraints(max_length=MAX_TEXT)]

# Free-form JSON (context, attributes, profile): bounded in depth, in entries (keys and list
# items at every level together) and in the length of every key and string.
MAX_JSON_DEPTH = 8
MAX_JSON_ENTRIES = 1000
MAX_KEY = 256

# An interaction whose context says ``{"trust": "untrusted"}`` is a signal nobody vouches for
# (the public shop demo's): it moves that user's hot state, and training leaves it out.
TRUST, UNTRUSTED = "trust", "untrusted"


def bounded(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` if it is JSON of a bounded size (depth, entries, key and string lengths), else ValueError."""
    entries, pending = 0, [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        for key, child in node.items() if isinstance(node, dict) else enumerate(node):
            entries += 1
            if entries > MAX_JSON_ENTRIES:
                raise ValueError(f"more than {MAX_JSON_ENTRIES} entries")
            if isinstance(key, str) and len(key) > MAX_KEY:
                raise ValueError(f"a key longer than {MAX_KEY} characters")
            if isinstance(child, str) and len(child) > MAX_TEXT:
                raise ValueError(f"a string longer than {MAX_TEXT} characters")
            if isinstance(child, dict | list):
                pending.append((child, depth + 1))
    return value


FreeForm = Annotated[dict[str, Any], AfterValidator(bounded)]


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _finite(v: float | None) -> float | None:
    if v is not None and not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=MAX_TEXT)


InteractionType = Literal["view", "click", "like", "add_to_cart", "purchase", "rating", "skip"]


class InteractionData(_Data):
    """A user's interaction with an item (`dev.genrec.interaction.v1`)."""

    user_id: Identifier
    item_id: Identifier
    event_type: InteractionType
    value: Annotated[float | None, AfterValidator(_finite)] = Field(
        default=None, description="Rating, dwell seconds or amount; meaning depends on event_type."
    )
    timestamp: Annotated[datetime | None, AfterValidator(lambda t: _aware(t) if t else t)] = Field(
        default=None, description="When it happened (RFC 3339 or Unix seconds); defaults to the event's time."
    )
    context: FreeForm = Field(default_factory=dict, description="Device, page, session id, ...")


class ItemUpsertedData(_Data):
    """A new or changed catalogue item (`dev.genrec.item.upserted.v1`)."""

    item_id: Identifier
    title: ShortText
    description: LongText = ""
    category_path: ShortText = Field(default="", description="Levels joined by '|', e.g. 'Beauty|Skin Care|Face'")
    brand: ShortText = ""
    price: Annotated[float | None, AfterValidator(_finite)] = Field(default=None, ge=0)
    image_url: ShortText = ""
    attributes: FreeForm = Field(default_factory=dict)
    status: Literal["active", "inactive", "deleted"] = "active"


class ItemEnrichedData(_Data):
    """LLM enrichment of an item (`dev.genrec.item.enriched.v1`)."""

    item_id: Identifier
    tags: list[ShortText] = Field(default_factory=list, max_length=50)
    summary: LongText = ""
    attributes: FreeForm = Field(default_factory=dict)
    model: ShortText = ""


class UserUpsertedData(_Data):
    """A new or changed user profile (`dev.genrec.user.upserted.v1`)."""

    user_id: Identifier
    profile: FreeForm = Field(default_factory=dict)
    interests: list[ShortText] = Field(default_factory=list, max_length=100,
                                       description="Declared interests, used for cold start.")


class RecommendationServedData(_Data):
    """One served recommendation list (`dev.genrec.recommendation.served.v1`)."""

    request_id: Identifier
    user_id: Identifier
    items: list[Identifier] = Field(max_length=1000)
    scores: list[float] = Field(max_length=1000)
    algorithm_version: ShortText
    served_by: Literal["cache", "model", "vector", "popularity", "session"]
    latency_ms: float = Field(ge=0)
    timestamp: Annotated[datetime, AfterValidator(_aware)]
    variant: Literal["production", "canary"] = Field(
        default="production", description="The live A/B arm of the user (the registry's canary or production)")


@dataclass(frozen=True)
class EventType:
    """Where one CloudEvent type goes: its data model, topic and partition-key field."""

    type: str
    data_model: type[_Data]
    topic_key: str  # key into settings.kafka.topics
    partition_field: str  # records keyed by this data field keep per-key order


EVENT_TYPES: dict[str, EventType] = {
    et.type: et
    for et in (
        EventType("dev.genrec.interaction.v1", InteractionData, "user_events", "user_id"),
        EventType("dev.genrec.item.upserted.v1", ItemUpsertedData, "item_events", "item_id"),
        EventType("dev.genrec.item.enriched.v1", ItemEnrichedData, "item_enriched", "item_id"),
        EventType("dev.genrec.user.upserted.v1", UserUpsertedData, "user_profile_events", "user_id"),
        EventType("dev.genrec.recommendation.served.v1", RecommendationServedData, "recommendation_logs",
                  "user_id"),
    )
}

INTERACTION = "dev.genrec.interaction.v1"
ITEM_UPSERTED = "dev.genrec.item.upserted.v1"
ITEM_ENRICHED = "dev.genrec.item.enriched.v1"
USER_UPSERTED = "dev.genrec.user.upserted.v1"
RECOMMENDATION_SERVED = "dev.genrec.recommendation.served.v1"


def json_schema(event_type: str) -> dict[str, Any]:
    """JSON Schema of a CloudEvent of this type: the 1.0 envelope with its data schema."""
    et = EVENT_TYPES[event_type]
    data_schema = et.data_model.model_json_schema()
    defs = data_schema.pop("$defs", {})
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://genrec.dev/schemas/{event_type}.json",
        "title": event_type,
        "description": (et.data_model.__doc__ or "").strip(),
        "type": "object",
        "required": ["specversion", "id", "source", "type", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1, "maxLength": 256},
            "source": {"type": "string", "minLength": 1, "maxLength": 512},
            "type": {"const": event_type},
            "time": {"type": "string", "format": "date-time"},
            "subject": {"type": "string"},
            "datacontenttype": {"const": "application/json"},
            "data": data_schema,
        },
        "x-genrec-topic": et.topic_key,
        "x-genrec-partition-key": f"data.{et.partition_field}",
    }
    if defs:
        schema["$defs"] = defs
    return schema


def now_utc() -> datetime:
    return datetime.now(UTC)
