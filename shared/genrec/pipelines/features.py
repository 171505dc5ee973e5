"""The Spark feature job: raw events -> clean sequences, leave-one-out splits, item statistics.

Semantics (kept identical to ``genrec.data`` so offline training and the loaders agree):

* dedup on (source, event_id): redeliveries and replays keep their first-received copy;
* only positive interactions (``genrec.signals.is_positive``) enter sequences;
* per user, events are ordered by (ts, event_id, source): the event time, not arrival, so a
  late event lands where it happened, and ties break the same way on every run;
* dense item indices: catalogue items in catalogue order, then items only seen in events in
  order of first appearance (as ``InteractionDataset`` + ``ItemIndex`` do);
* leave-one-out as ``genrec.data.splits``: last = test, second-last = validation, histories
  truncated to ``max_history``; users with fewer than ``min_length`` events (e.g. one) stay
  in ``sequences`` (``in_split`` false) and in the item statistics, but not in ``splits``.

Outputs (parquet folders under ``out``): ``events`` (clean, positioned), ``sequences``,
``splits``, ``items`` (catalogue text + index + statistics), and ``manifest.json``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from genrec.config import MAX_HISTORY
from genrec.pipelines.schema import (
    EVENTS_DIR,
    ITEM_TEXT_COLUMNS,
    ITEMS_DIR,
    SEQUENCES_DIR,
    SPLITS_DIR,
)
from genrec.signals import is_positive

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

_MIN_LENGTH = 3  # leave_one_out's own floor: train, validation and test need one item each
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_SIGNAL_PAIRS = 200_000  # distinct (event_type, value) pairs evaluated on the driver
_DATA_FIELDS = "user_id string, item_id string, event_type string, value double, timestamp string"


@dataclass(frozen=True)
class FeatureParams:
    max_history: int = MAX_HISTORY
    min_length: int = _MIN_LENGTH

    def __post_init__(self) -> None:
        if self.min_length < _MIN_LENGTH:
            raise ValueError(f"min_length must be at least {_MIN_LENGTH} (train, validation, test)")
        if self.max_history < 1:
            raise ValueError("max_history must be positive")


@dataclass
class FeatureFrames:
    """The job's outputs as (lazy) DataFrames, plus the counters gathered on the way."""

    events: DataFrame
    sequences: DataFrame
    splits: DataFrame
    items: DataFrame
    counts: dict[str, int]
    time_range: dict[str, str | None]
    hashes: dict[str, str]


# --------------------------------------------------------------------------- inputs
def _as_timestamp(col: Column, dtype: str) -> Column:
    from pyspark.sql import functions as F

    if dtype.startswith("timestamp"):
        return col
    if dtype in ("bigint", "int", "double", "float") or dtype.startswith("decimal"):
        return F.timestamp_seconds(col)  # numeric event times are Unix seconds (the contract's choice)
    return F.try_to_timestamp(col.cast("string"))


def normalise_events(df: DataFrame) -> DataFrame:
    """Any supported events layout -> the canonical columns (see ``genrec.pipelines.schema``).

    Accepts the PostgreSQL export, and Kafka topic exports with CloudEvent names (``id``,
    ``time``) and the interaction payload as a ``data`` struct or JSON string.
    """
    from pyspark.sql import functions as F

    types = dict(df.dtypes)
    if "data" in types:
        data = F.from_json(F.col("data"), _DATA_FIELDS) if types["data"] == "string" else F.col("data")
        df = df.withColumn("_data", data)
        for name in ("user_id", "item_id", "event_type", "value"):
            df = df.withColumn(name, F.col(f"_data.{name}"))
        # The payload's own timestamp wins over the envelope's time (the contract's default rule).
        df = df.withColumn("_data_ts", F.try_to_timestamp(F.col("_data.timestamp")))
    types = dict(df.dtypes)
    if "event_id" not in types and "id" in types:
        df = df.withColumnRenamed("id", "event_id")
    if "ts" not in types and "time" in types:
        df = df.withColumnRenamed("time", "ts")
    types = dict(df.dtypes)
    ts = _as_timestamp(F.col("ts"), types["ts"])
    if "_data_ts" in types:
        ts = F.coalesce(F.col("_data_ts"), ts)
    received = (_as_timestamp(F.col("received_at"), types["received_at"]) if "received_at" in types
                else F.lit(None).cast("timestamp"))
    value = F.col("value").cast("double") if "value" in types else F.lit(None).cast("double")
    return df.select(
        F.col("event_id").cast("string").alias("event_id"),
        F.col("source").cast("string").alias("source"),
        F.col("user_id").cast("string").alias("user_id"),
        F.col("item_id").cast("string").alias("item_id"),
        F.col("event_type").cast("string").alias("event_type"),
        value.alias("value"),
        ts.alias("ts"),
        received.alias("received_at"),
    )


def normalise_items(df: DataFrame | None, spark: SparkSession) -> DataFrame:
    """The catalogue with every text column present; duplicate ids keep their first row."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cols = ["item_id", "position", *ITEM_TEXT_COLUMNS, "status"]
    if df is None:
        return spark.createDataFrame([], "item_id string, position bigint, "
                                     + ", ".join(f"{c} string" for c in ITEM_TEXT_COLUMNS) + ", status string")
    types = dict(df.dtypes)
    df = df.select(*[
        (F.col(c).cast("bigint" if c == "position" else "string") if c in types
         else (F.lit(None).cast("bigint") if c == "position" else F.lit(None).cast("string"))).alias(c)
        for c in cols
    ]).where(F.col("item_id").isNotNull() & (F.length("item_id") > 0))
    first = Window.partitionBy("item_id").orderBy(F.col("position").asc_nulls_last())
    return df.withColumn("_r", F.row_number().over(first)).where("_r = 1").drop("_r")


# ----------------------------------------------------------------------- transforms
def _positive_udf() -> Any:
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("boolean")
    def positive(event_type: pd.Series, value: pd.Series) -> pd.Series:
        vals = value.astype("float64").to_numpy()
        return pd.Series([is_positive(t, None if np.isnan(v) else float(v))
                          for t, v in zip(event_type, vals, strict=True)], dtype=bool)

    return positive


def positive_flag(df: DataFrame, max_pairs: int = MAX_SIGNAL_PAIRS) -> DataFrame:
    """``df`` plus ``_positive``: ``genrec.signals.is_positive`` itself decides, never a copy of it.

    The rule depends only on (event_type, value), and real streams have few distinct pairs,
    so they are evaluated on the driver and broadcast-joined back: no Python workers, so
    cluster executors need no genrec install. Streams with more distinct pairs than
    ``max_pairs`` fall back to a pandas UDF (executors then need genrec).
    """
    from pyspark.sql import functions as F

    pairs = df.select("event_type", "value").distinct().limit(max_pairs + 1).collect()
    if len(pairs) > max_pairs:
        return df.withColumn("_positive", _positive_udf()(F.col("event_type"), F.col("value")))
    rows = [(t, v, is_positive(t, None if v is None or math.isnan(v) else v)) for t, v in pairs]
    lookup = df.sparkSession.createDataFrame(rows, "_t string, _v double, _positive boolean")
    cond = df["event_type"].eqNullSafe(lookup["_t"]) & df["value"].eqNullSafe(lookup["_v"])
    return df.join(F.broadcast(lookup), cond, "left").drop("_t", "_v")


def clean_events(raw: DataFrame) -> tuple[DataFrame, dict[str, int], dict[str, Any], str]:
    """Valid, deduplicated, positive events; counters, event-time range and hash in one pass."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    valid = F.lit(True)
    for c in ("event_id", "source", "user_id", "item_id", "event_type"):
        valid = valid & F.col(c).isNotNull() & (F.length(c) > 0)
    valid = valid & F.col("ts").isNotNull()
    # The first-received valid copy wins (a broken copy cannot shadow a good one).
    first = Window.partitionBy("source", "event_id").orderBy(
        F.col("_valid").desc(), F.col("received_at").asc_nulls_last(), F.col("ts").asc(), F.col("user_id"),
        F.col("item_id"))
    marked = (
        positive_flag(raw)
        .withColumn("_valid", valid)
        .withColumn("_copy", F.when(F.col("_valid"), F.row_number().over(first)))
    )
    kept = F.col("_valid") & (F.col("_copy") == 1)
    # Late = arrived after an event of the same user that happened later (out of order on
    # arrival); the sort by ts puts it back in place, the counter makes it visible.
    arrival = Window.partitionBy("user_id").orderBy(F.col("received_at").asc_nulls_last(), "ts", "event_id") \
        .rowsBetween(Window.unboundedPreceding, -1)
    marked = marked.withColumn("_late", F.col("ts") < F.max(F.when(kept & F.col("_positive"), F.col("ts")))
                               .over(arrival)).cache()
    row = marked.agg(
        F.count(F.lit(1)).alias("raw_events"),
        F.sum((~F.col("_valid")).cast("long")).alias("invalid_events"),
        F.sum((F.col("_valid") & (F.col("_copy") > 1)).cast("long")).alias("duplicate_events"),
        F.sum((kept & ~F.col("_positive")).cast("long")).alias("non_positive_events"),
        F.sum((kept & F.col("_positive")).cast("long")).alias("positive_events"),
        F.sum((kept & F.col("_positive") & F.coalesce(F.col("_late"), F.lit(False))).cast("long"))
        .alias("late_events"),
        # As integer microseconds: collecting a timestamp would render it in the driver's zone.
        F.unix_micros(F.min(F.when(kept & F.col("_positive"), F.col("ts")))).alias("min_ts"),
        F.unix_micros(F.max(F.when(kept & F.col("_positive"), F.col("ts")))).alias("max_ts"),
        F.bit_xor(F.when(kept & F.col("_positive"), F.xxhash64("source", "event_id"))).alias("events_hash"),
    ).first()
    counts = {k: int(row[k] or 0) for k in ("raw_events", "invalid_events", "duplicate_events",
                                            "non_positive_events", "positive_events", "late_events")}
    time_range: dict[str, Any] = {k: (_iso(row[k]) if row[k] is not None else None) for k in ("min_ts", "max_ts")}
    clean = marked.where(kept & F.col("_positive")).drop("_valid", "_copy", "_positive", "_late")
    return clean, counts, time_range, _hex(row["events_hash"])


def item_index(clean: DataFrame, catalog: DataFrame) -> DataFrame:
    """(item_id, item_idx, in_catalog): catalogue order first, then event-only items by first use."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    first_type = "struct<user_id:string,ts:timestamp,event_id:string,source:string>"
    cat = catalog.select("item_id", F.lit(0).alias("_group"), F.col("position").alias("_pos"),
                         F.lit(None).cast(first_type).alias("_first"))
    first_use = clean.groupBy("item_id").agg(F.min(F.struct("user_id", "ts", "event_id", "source")).alias("_first"))
    extra = first_use.join(catalog.select("item_id"), "item_id", "left_anti").select(
        "item_id", F.lit(1).alias("_group"), F.lit(None).cast("bigint").alias("_pos"), "_first")
    # One global ordering over item ids (not events): the index must be dense 0..N-1.
    order = Window.orderBy("_group", F.col("_pos").asc_nulls_last(), "_first", "item_id")
    return cat.unionByName(extra).select(
        "item_id", (F.row_number().over(order) - 1).alias("item_idx"), (F.col("_group") == 0).alias("in_catalog"))


def user_sequences(clean: DataFrame, index: DataFrame, params: FeatureParams) -> DataFrame:
    """One row per user: events sorted by (ts, event_id, source) as parallel arrays."""
    from pyspark.sql import functions as F

    ev = clean.join(index.select("item_id", "item_idx"), "item_id")
    # sort_array orders structs field by field: exactly the (ts, event_id, source) order.
    seq = ev.groupBy("user_id").agg(F.sort_array(F.collect_list(F.struct(
        "ts", "event_id", "source", "item_idx", "item_id", "event_type", "value"))).alias("ev"))
    return seq.select(
        "user_id",
        F.col("ev.item_idx").alias("item_idx"),
        F.col("ev.item_id").alias("item_ids"),
        F.size("ev").alias("length"),
        F.col("ev")[0]["ts"].alias("first_ts"),
        F.element_at("ev", -1)["ts"].alias("last_ts"),
        (F.size("ev") >= params.min_length).alias("in_split"),
        "ev",
    )


def positioned_events(sequences: DataFrame) -> DataFrame:
    """The clean event log in sequence order (position = 0-based index in the user's sequence)."""
    from pyspark.sql import functions as F

    return sequences.select("user_id", F.posexplode("ev").alias("position", "e")).select(
        "user_id", "position", "e.item_id", "e.item_idx", "e.ts",
        F.unix_seconds("e.ts").alias("timestamp"), "e.event_type", "e.value", "e.source", "e.event_id",
    )


def leave_one_out_splits(sequences: DataFrame, params: FeatureParams) -> DataFrame:
    """Train / validation / test columns per user, as ``LeaveOneOutSplit`` defines them."""
    from pyspark.sql import functions as F

    h = int(params.max_history)
    return sequences.where("in_split").select(
        "user_id",
        F.expr("slice(item_idx, 1, length - 2)").alias("train"),
        F.expr(f"slice(item_idx, greatest(length - 2 - {h} + 1, 1), least(length - 2, {h}))").alias("valid_history"),
        F.element_at("item_idx", -2).alias("valid_target"),
        F.expr(f"slice(item_idx, greatest(length - 1 - {h} + 1, 1), least(length - 1, {h}))").alias("test_history"),
        F.element_at("item_idx", -1).alias("test_target"),
    )


def item_statistics(clean: DataFrame, catalog: DataFrame, index: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    stats = clean.groupBy("item_id").agg(
        F.count(F.lit(1)).alias("interactions"),
        F.countDistinct("user_id").alias("users"),
        F.min("ts").alias("first_seen"),
        F.max("ts").alias("last_seen"),
    )
    return (
        index.join(catalog.drop("position"), "item_id", "left")
        .join(stats, "item_id", "left")
        .fillna({"interactions": 0, "users": 0})
        .select("item_idx", "item_id", *ITEM_TEXT_COLUMNS, "status", "in_catalog", "interactions", "users",
                "first_seen", "last_seen")
    )


def _iso(micros: int) -> str:
    return (_EPOCH + timedelta(microseconds=int(micros))).isoformat()  # exact, unlike float seconds


def _hex(value: int | None) -> str:
    return f"{(value or 0) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def _xor_hash(*cols: str) -> Column:
    """An order-independent content fingerprint: XOR of per-row 64-bit hashes."""
    from pyspark.sql import functions as F

    return F.bit_xor(F.xxhash64(*cols))


def build_features(raw_events: DataFrame, raw_items: DataFrame | None, params: FeatureParams) -> FeatureFrames:
    """The whole job as DataFrames; counters and hashes come from three small aggregations."""
    spark = raw_events.sparkSession
    clean, counts, time_range, events_hash = clean_events(normalise_events(raw_events))
    catalog = normalise_items(raw_items, spark)
    index = item_index(clean, catalog).cache()
    sequences = user_sequences(clean, index, params).cache()
    seq_row = sequences.agg(
        _count_all(), _sum_expr("in_split"), _sum_expr("length = 1"), _sum_expr("NOT in_split"),
        _xor_hash("user_id", "item_ids"),
    ).first()
    counts.update({
        "users": int(seq_row[0]), "users_in_split": int(seq_row[1] or 0),
        "single_event_users": int(seq_row[2] or 0), "short_users": int(seq_row[3] or 0),
    })
    item_row = index.agg(_count_all(), _sum_expr("in_catalog"), _sum_expr("NOT in_catalog"),
                         _xor_hash("item_id", "item_idx")).first()
    counts.update({"items": int(item_row[0]), "catalog_items": int(item_row[1] or 0),
                   "event_only_items": int(item_row[2] or 0)})
    hashes = {"sequences": _hex(seq_row[4]), "items": _hex(item_row[3]), "events": events_hash}
    return FeatureFrames(
        events=positioned_events(sequences), sequences=sequences.drop("ev"),
        splits=leave_one_out_splits(sequences, params), items=item_statistics(clean, catalog, index),
        counts=counts, time_range=time_range, hashes=hashes,
    )


def _count_all() -> Column:
    from pyspark.sql import functions as F

    return F.count(F.lit(1))


def _sum_expr(condition: str) -> Column:
    from pyspark.sql import functions as F

    return F.sum(F.expr(condition).cast("long"))


def write_features(frames: FeatureFrames, out: str) -> None:
    """Parquet folders under ``out`` (overwritten).

    Files are sorted within themselves only: a global sort would cost a sampling pass per
    output, and readers sort by user_id / item_idx anyway.
    """
    base = out.rstrip("/")
    frames.events.sortWithinPartitions("user_id", "position").write.mode("overwrite").parquet(f"{base}/{EVENTS_DIR}")
    frames.sequences.sortWithinPartitions("user_id").write.mode("overwrite").parquet(f"{base}/{SEQUENCES_DIR}")
    frames.splits.sortWithinPartitions("user_id").write.mode("overwrite").parquet(f"{base}/{SPLITS_DIR}")
    frames.items.sortWithinPartitions("item_idx").write.mode("overwrite").parquet(f"{base}/{ITEMS_DIR}")


def params_dict(params: FeatureParams) -> dict[str, Any]:
    return asdict(params)
