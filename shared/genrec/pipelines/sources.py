"""Inputs of the feature job as parquet: exports from PostgreSQL, or a dataset folder.

Why COPY and not Spark JDBC: JDBC needs the PostgreSQL driver jar on the Spark classpath
(not downloadable here, one more artifact to pin on a cluster) and hits the partitioned
``user_events`` table with one query per Spark partition. ``COPY (SELECT ...) TO STDOUT``
streams the rows once at full speed; pyarrow's CSV reader parses them in C++ and writes
parquet parts that Spark (or anything else) reads. Timestamps travel as integer
microseconds so no time-zone rendering can shift them.

Kafka topics exported to parquet (e.g. by an S3 sink connector) skip this step: pass their
folder to the feature job directly.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from genrec.config import Settings, get_settings
from genrec.data.loaders import ITEMS_FILE, load_dataset
from genrec.data.schema import EVENT_TYPE, ITEM_ID, TIMESTAMP, USER_ID, VALUE
from genrec.events.contracts import TRUST, UNTRUSTED
from genrec.pipelines.schema import EVENT_SCHEMA, ITEM_SCHEMA, ITEM_TEXT_COLUMNS, TS_TYPE
from genrec.stores import objects
from genrec.stores.postgres import connect

EVENTS_FILE_ROWS = 1_000_000  # rows per parquet part: bounded memory while exporting

_EVENTS_SQL = """
COPY (
    SELECT event_id, source, user_id, item_id, event_type, value,
           (extract(epoch FROM ts) * 1000000)::bigint AS ts_us,
           (extract(epoch FROM received_at) * 1000000)::bigint AS received_us
    FROM user_events
    WHERE (%(since)s::timestamptz IS NULL OR ts >= %(since)s)
      AND (%(until)s::timestamptz IS NULL OR ts < %(until)s)
      AND (%(sources)s::text[] IS NULL OR source = ANY(%(sources)s))
      AND context->>%(trust)s IS DISTINCT FROM %(untrusted)s  -- signals nobody vouches for never train
) TO STDOUT (FORMAT CSV, HEADER)
"""

# Attributes that hold catalogue text; arrays (tags) are joined with "|" like dataset files.
_ATTR = "CASE jsonb_typeof(attributes->'{k}') WHEN 'array' THEN (SELECT string_agg(x, '|') FROM " \
        "jsonb_array_elements_text(attributes->'{k}') x) ELSE attributes->>'{k}' END AS {k}"
_ITEMS_SQL = f"""
COPY (
    SELECT item_id, row_number() OVER (ORDER BY item_id) - 1 AS position, title, description,
           category_path AS categories, {", ".join(_ATTR.format(k=k) for k in ("genres", "brand", "price", "tags"))},
           status
    FROM items
    WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s))
    ORDER BY item_id
) TO STDOUT (FORMAT CSV, HEADER)
"""


@dataclass
class ExportResult:
    events_dir: Path
    items_dir: Path
    events: int
    items: int
    source: dict[str, Any] = field(default_factory=dict)


def _copy_to_csv(conn: Any, statement: str, params: dict[str, Any], dest: Path) -> None:
    # COPY parameters are bound client-side by psycopg; the stream is written as it arrives.
    with dest.open("wb") as fh, conn.cursor().copy(statement, params) as copy:
        for block in copy:
            fh.write(block)


def _csv_to_parquet(csv_path: Path, out_dir: Path, types: dict[str, pa.DataType], schema: pa.Schema,
                    convert: Any, prefix: str) -> int:
    """Stream a CSV into parquet parts of at most EVENTS_FILE_ROWS rows; returns the row count."""
    out_dir.mkdir(parents=True, exist_ok=True)
    opts = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False, quoted_strings_can_be_null=False)
    reader = pacsv.open_csv(csv_path, convert_options=opts, read_options=pacsv.ReadOptions(block_size=8 << 20))
    n, part, writer, in_part = 0, 0, None, 0
    try:
        for batch in reader:
            table = convert(pa.Table.from_batches([batch]))
            if writer is None or in_part >= EVENTS_FILE_ROWS:
                if writer is not None:
                    writer.close()
                writer = pq.ParquetWriter(out_dir / f"{prefix}-{part:05d}.parquet", schema)
                part, in_part = part + 1, 0
            writer.write_table(table)
            n += table.num_rows
            in_part += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    if n == 0:  # an empty export still has a readable, typed file
        pq.write_table(schema.empty_table(), out_dir / f"{prefix}-00000.parquet")
    return n


def _events_table(t: pa.Table) -> pa.Table:
    cols = {name: t.column(name) for name in ("event_id", "source", "user_id", "item_id", "event_type", "value")}
    cols["ts"] = t.column("ts_us").cast(pa.timestamp("us")).cast(TS_TYPE)
    cols["received_at"] = t.column("received_us").cast(pa.timestamp("us")).cast(TS_TYPE)
    return pa.table(cols, schema=EVENT_SCHEMA)


def _items_table(t: pa.Table) -> pa.Table:
    n = t.num_rows
    cols = {name: (t.column(name) if name in t.column_names else pa.nulls(n, pa.string()))
            for name in ITEM_SCHEMA.names}
    return pa.table(cols, schema=ITEM_SCHEMA)


def export_postgres(out_dir: Path, s: Settings | None = None, *, since: datetime | None = None,
                    until: datetime | None = None, sources: list[str] | None = None,
                    statuses: list[str] | None = None) -> ExportResult:
    """``user_events`` (optionally a time window / some sources) and ``items`` as parquet."""
    s = s or get_settings()
    out_dir = Path(out_dir)
    str_ = pa.string()
    ev_types = {"event_id": str_, "source": str_, "user_id": str_, "item_id": str_, "event_type": str_,
                "value": pa.float64(), "ts_us": pa.int64(), "received_us": pa.int64()}
    it_types = {"item_id": str_, "position": pa.int64(), **{c: str_ for c in ITEM_TEXT_COLUMNS}, "status": str_}
    with tempfile.TemporaryDirectory(prefix="genrec-export-") as tmp, connect(s) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        ev_csv, it_csv = Path(tmp) / "events.csv", Path(tmp) / "items.csv"
        # One snapshot for both tables: REPEATABLE READ makes events and items agree.
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        _copy_to_csv(conn, _EVENTS_SQL, {"since": since, "until": until, "sources": sources, "trust": TRUST,
                                         "untrusted": UNTRUSTED}, ev_csv)
        _copy_to_csv(conn, _ITEMS_SQL, {"statuses": statuses}, it_csv)
        conn.execute("COMMIT")
        n_ev = _csv_to_parquet(ev_csv, out_dir / "events", ev_types, EVENT_SCHEMA, _events_table, "events")
        n_it = _csv_to_parquet(it_csv, out_dir / "items", it_types, ITEM_SCHEMA, _items_table, "items")
    return ExportResult(
        out_dir / "events", out_dir / "items", n_ev, n_it,
        source={"kind": "postgres", "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None, "sources": sources},
    )


def export_dataset(path: str | Path, out_dir: Path) -> ExportResult:
    """A dataset folder (interactions.csv + items.csv, local or s3://) in the events layout.

    Event ids number the rows in the loader's canonical order (user, timestamp, file row),
    so the feature job's (ts, event_id) tie-break reproduces the in-memory order exactly.
    """
    if str(path).startswith("s3://"):
        with tempfile.TemporaryDirectory(prefix="genrec-ds-") as tmp:
            objects.download_dir(str(path), Path(tmp))
            return export_dataset(tmp, out_dir)
    ds = load_dataset(path)
    df = ds.interactions
    n = len(df)
    name = ds.name
    etype = df[EVENT_TYPE].astype(str) if EVENT_TYPE in df.columns else np.full(n, "interaction", dtype=object)
    if VALUE in df.columns:
        value = df[VALUE].astype("float64")
    elif "rating" in df.columns:
        value = df["rating"].astype("float64")
    else:
        value = np.full(n, np.nan)
    events = pa.table(
        {
            "event_id": pa.array([f"{i:012d}" for i in range(n)], pa.string()),
            "source": pa.array([f"dataset:{name}"] * n, pa.string()),
            "user_id": pa.array(df[USER_ID].astype(str), pa.string()),
            "item_id": pa.array(df[ITEM_ID].astype(str), pa.string()),
            "event_type": pa.array(etype, pa.string()),
            "value": pa.array(value, pa.float64(), from_pandas=True),
            "ts": pa.array(df[TIMESTAMP].to_numpy(np.int64) * 1_000_000, pa.int64()).cast(pa.timestamp("us"))
            .cast(TS_TYPE),
            "received_at": pa.nulls(n, TS_TYPE),
        },
        schema=EVENT_SCHEMA,
    )
    # The file's rows only: the loader appends event-only items to its catalogue, but here
    # the feature job must see them as event-only (it indexes them by first use, as the loader).
    items_file = Path(path) / ITEMS_FILE
    items_df = (pd.read_csv(items_file, dtype={ITEM_ID: str}, keep_default_na=False, na_values=[])
                if items_file.is_file() else pd.DataFrame({ITEM_ID: pd.Series([], dtype=str)}))
    cols: dict[str, pa.Array] = {
        "item_id": pa.array(items_df[ITEM_ID].astype(str), pa.string()),
        "position": pa.array(np.arange(len(items_df), dtype=np.int64)),
    }
    for c in ITEM_TEXT_COLUMNS:
        cols[c] = (pa.array([None if _missing(v) else str(v) for v in items_df[c]], pa.string())
                   if c in items_df.columns else pa.nulls(len(items_df), pa.string()))
    cols["status"] = pa.array(["active"] * len(items_df), pa.string())
    items = pa.table(cols, schema=ITEM_SCHEMA)
    for sub, table in (("events", events), ("items", items)):
        (Path(out_dir) / sub).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, Path(out_dir) / sub / f"{sub}-00000.parquet")
    return ExportResult(Path(out_dir) / "events", Path(out_dir) / "items", n, len(items_df),
                        source={"kind": "dataset", "path": str(path), "name": name})


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))
