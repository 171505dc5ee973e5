"""Column layout of the parquet files the pipelines exchange (input exports and feature outputs).

Events input (one row per received event, duplicates allowed)::

    event_id, source, user_id, item_id, event_type: string; value: double (nullable);
    ts: timestamp[us, UTC] (when it happened); received_at: timestamp[us, UTC] (nullable)

Items input (the catalogue)::

    item_id: string; position: int64 (catalogue order); TEXT_COLUMNS...: string; status: string

A Kafka topic exported as parquet may use CloudEvent names instead (``id``, ``time``, a
``data`` struct or JSON string); ``genrec.pipelines.features.normalise_events`` maps them.
"""

from __future__ import annotations

import pyarrow as pa

from genrec.data.schema import TEXT_COLUMNS

TS_TYPE = pa.timestamp("us", tz="UTC")

EVENT_SCHEMA = pa.schema([
    ("event_id", pa.string()),
    ("source", pa.string()),
    ("user_id", pa.string()),
    ("item_id", pa.string()),
    ("event_type", pa.string()),
    ("value", pa.float64()),
    ("ts", TS_TYPE),
    ("received_at", TS_TYPE),
])

ITEM_TEXT_COLUMNS: tuple[str, ...] = TEXT_COLUMNS
ITEM_SCHEMA = pa.schema([
    ("item_id", pa.string()),
    ("position", pa.int64()),
    *[(c, pa.string()) for c in ITEM_TEXT_COLUMNS],
    ("status", pa.string()),
])

# Sub-folders of a feature output (each a parquet dataset) and its manifest.
EVENTS_DIR = "events"
SEQUENCES_DIR = "sequences"
SPLITS_DIR = "splits"
ITEMS_DIR = "items"
MANIFEST = "manifest.json"
FEATURES_FORMAT = "genrec-features"
FEATURES_FORMAT_VERSION = 1
