"""Analytics in ClickHouse: served recommendations and every interaction, and the admin queries.

One SQL dialect, two engines, one client library: clickhouse-connect talks to a ClickHouse
server when ``settings.clickhouse.url`` is set, and otherwise to chDB, the same engine
in-process, at ``settings.clickhouse.chdb_path``. chDB allows one engine per path per
process, so locally exactly one process (the analytics sink) should own the store and
serve the query methods to others; every method returns plain dataclasses for that
reason, and calls are serialised by a lock so one instance can back a threaded server.

Tables are ReplacingMergeTree (MergeTree that also drops exact re-deliveries at merge
time, keyed by the ORDER BY), partitioned by month, with a TTL of
``settings.clickhouse.log_ttl_days``. All timestamps are DateTime64(3, 'UTC'). With
``settings.clickhouse.cluster`` set they are replicated per shard behind Distributed tables of
the same names (see ``analytics_schema``); the queries below are the same in both modes.

Latency quantiles use ``quantilesExactInclusive``: exact, linearly interpolated between
order statistics at position (n - 1) * q (the R-7 / numpy ``linear`` definition).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import clickhouse_connect

from genrec.config import Settings, get_settings
from genrec.stores.analytics_schema import cluster_engines, insert_settings, schema_ddl

QUANTILES = (0.5, 0.95, 0.99)
ALL_VERSIONS = "*"  # algorithm_version label of the all-versions row in coverage()

# Time range as epoch milliseconds: unambiguous whatever the client or server timezone.
_RANGE = ("timestamp >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')"
          " AND timestamp < fromUnixTimestamp64Milli({until_ms:Int64}, 'UTC')")


@dataclass
class RecommendationLog:
    request_id: str
    user_id: str
    items: list[str]
    scores: list[float]
    algorithm_version: str
    served_by: str
    latency_ms: float
    timestamp: datetime
    variant: str = "production"  # the live A/B arm the user is in


@dataclass
class AnalyticsEvent:
    event_id: str
    user_id: str
    item_id: str
    event_type: str
    timestamp: datetime
    value: float = 1.0
    source: str = ""
    request_id: str = ""  # the recommendation request the interaction came from, when known


@dataclass(frozen=True)
class LatencyRow:
    hour: datetime
    requests: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True)
class CtrRow:
    algorithm_version: str
    impressions: int  # (request, position) pairs served
    clicks: int  # of those, clicked by the same user within the window after serving
    ctr: float


@dataclass(frozen=True)
class CoverageRow:
    algorithm_version: str  # ALL_VERSIONS for the row over every version
    distinct_items: int
    catalog_size: int
    coverage: float


@dataclass(frozen=True)
class AbRow:
    hour: datetime | None  # None: the whole window
    variant: str
    lists: int
    users: int
    clicked: int  # lists with a click
    converted: int  # lists with an add-to-cart or purchase
    versions: list[str]  # the model versions (or "fallback") that served the arm's lists


@dataclass(frozen=True)
class VersionRow:
    algorithm_version: str
    requests: int
    users: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    impressions: int
    clicks: int
    ctr: float
    distinct_items: int
    coverage: float | None  # None when no catalogue size was given
    served_by: dict[str, int] = field(default_factory=dict)


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _ms(ts: datetime) -> int:
    return round(_utc(ts).timestamp() * 1000)


def analytics_client(s: Settings) -> Any:
    """A clickhouse-connect client for the server URL, or for chDB at chdb_path."""
    ch = s.clickhouse
    if ch.url is not None:
        return clickhouse_connect.get_client(dsn=ch.url.get_secret_value(), tz_mode="aware")
    path = Path(ch.chdb_path)
    path.mkdir(parents=True, exist_ok=True)
    return clickhouse_connect.get_client(interface="chdb", path=str(path), tz_mode="aware")


class AnalyticsStore:
    def __init__(self, s: Settings | None = None, *, client: Any = None, database: str | None = None,
                 create_schema: bool = True) -> None:
        self.s = s or get_settings()
        self.db = database or self.s.clickhouse.database
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.db):
            raise ValueError(f"invalid ClickHouse database name {self.db!r}")
        self.client = client or analytics_client(self.s)
        self._lock = threading.Lock()  # chDB and HTTP sessions take one query at a time
        self._column_types: dict[str, dict[str, str]] = {}  # table → column → type, read once
        if create_schema:
            self.ensure_schema()

    def close(self) -> None:
        self.client.close()

    def ensure_schema(self) -> None:
        cluster = self.s.clickhouse.cluster
        with self._lock:
            for ddl in schema_ddl(self.db, self.s.clickhouse.log_ttl_days, cluster):
                self.client.command(ddl)
            if cluster:
                self._check_engines()

    def _check_engines(self) -> None:
        """Fail loudly when a table predates the cluster schema (e.g. a plain ReplacingMergeTree
        named like the Distributed table): IF NOT EXISTS would have kept it, unreplicated."""
        rows = self.client.query("SELECT name, engine FROM system.tables WHERE database = {db:String}",
                                 parameters={"db": self.db}).result_rows
        have = {name: engine for name, engine in rows}
        wrong = {t: have.get(t) for t, engine in cluster_engines().items() if have.get(t) != engine}
        if wrong:
            raise RuntimeError(f"ClickHouse tables in {self.db} do not match the cluster schema "
                               f"(table: engine found): {wrong}; see infra/pulumi/README.md, ClickHouse")

    def _query(self, sql: str, params: dict[str, Any]) -> list[tuple]:
        with self._lock:
            return self.client.query(sql.replace("{db}", self.db), parameters=params).result_rows

    # -- writes -------------------------------------------------------------------------------
    def insert_recommendation_logs(self, rows: Iterable[RecommendationLog], batch_size: int = 50_000) -> int:
        """Insert in blocks of ``batch_size`` rows (ClickHouse wants few, large inserts)."""
        data = [(r.request_id, r.user_id, list(r.items), [float(x) for x in r.scores], r.algorithm_version,
                 r.served_by, float(r.latency_ms), _utc(r.timestamp), r.variant) for r in rows]
        columns = ["request_id", "user_id", "items", "scores", "algorithm_version", "served_by", "latency_ms",
                   "timestamp", "variant"]
        return self._insert("recommendation_logs", data, columns, batch_size)

    def insert_events(self, rows: Iterable[AnalyticsEvent], batch_size: int = 50_000) -> int:
        data = [(e.event_id, e.source, e.user_id, e.item_id, e.event_type, float(e.value), e.request_id,
                 _utc(e.timestamp)) for e in rows]
        columns = ["event_id", "source", "user_id", "item_id", "event_type", "value", "request_id", "timestamp"]
        return self._insert("events", data, columns, batch_size)

    def _insert(self, table: str, data: list[tuple], columns: list[str], batch_size: int) -> int:
        with self._lock:
            # Given the types, the client skips the DESCRIBE it would otherwise run per insert.
            if table not in self._column_types:
                described = self.client.query(f"DESCRIBE TABLE {self.db}.{table}").result_rows
                self._column_types[table] = {row[0]: row[1] for row in described}
            types = [self._column_types[table][c] for c in columns]
            settings = insert_settings(self.s.clickhouse.cluster) or None
            for start in range(0, len(data), batch_size):
                self.client.insert(table, data[start:start + batch_size], column_names=columns,
                                   column_type_names=types, database=self.db, settings=settings)
        return len(data)

    # -- admin queries ------------------------------------------------------------------------
    def latency_by_hour(self, since: datetime, until: datetime, *, algorithm_version: str = "",
                        ) -> list[LatencyRow]:
        """Requests and p50/p95/p99 latency per hour in [since, until); '' means every version."""
        rows = self._query(
            f"""
            SELECT toStartOfHour(timestamp) AS hour, count(),
                   quantilesExactInclusive({", ".join(map(str, QUANTILES))})(latency_ms)
            FROM {{db}}.recommendation_logs
            WHERE {_RANGE} AND ({{version:String}} = '' OR algorithm_version = {{version:String}})
            GROUP BY hour ORDER BY hour
            """,
            {"since_ms": _ms(since), "until_ms": _ms(until), "version": algorithm_version},
        )
        return [LatencyRow(_utc(h), int(n), *map(float, q)) for h, n, q in rows]

    def click_through(self, since: datetime, until: datetime, *, window_s: int = 1800,
                      click_types: Sequence[str] = ("click",)) -> list[CtrRow]:
        """Per version: served (request, position) pairs in [since, until) and how many of them the
        same user clicked (an event of ``click_types`` on that item) within ``window_s`` after
        serving. Clicks up to ``window_s`` past ``until`` count for requests served before it."""
        rows = self._query(
            f"""
            WITH served AS (
                SELECT request_id, user_id, algorithm_version, timestamp AS served_at, item_id, position
                FROM {{db}}.recommendation_logs
                ARRAY JOIN items AS item_id, arrayEnumerate(items) AS position
                WHERE {_RANGE}
            ),
            clicks AS (
                SELECT user_id, item_id, timestamp AS clicked_at FROM {{db}}.events
                WHERE has({{click_types:Array(String)}}, event_type)
                  AND timestamp > fromUnixTimestamp64Milli({{since_ms:Int64}}, 'UTC')
                  AND timestamp <= fromUnixTimestamp64Milli({{until_ms:Int64}}, 'UTC')
                                   + toIntervalSecond({{window_s:UInt32}})
            )
            SELECT algorithm_version, count() AS impressions, sum(clicked) AS clicks
            FROM (
                -- one row per served slot; a re-delivered log row collapses here too
                SELECT s.request_id, s.position, any(s.algorithm_version) AS algorithm_version,
                       max(c.clicked_at > s.served_at
                           AND c.clicked_at <= s.served_at + toIntervalSecond({{window_s:UInt32}})) AS clicked
                FROM served AS s LEFT JOIN clicks AS c ON s.user_id = c.user_id AND s.item_id = c.item_id
                GROUP BY s.request_id, s.position
            )
            GROUP BY algorithm_version ORDER BY algorithm_version
            """,
            {"since_ms": _ms(since), "until_ms": _ms(until), "window_s": int(window_s),
             "click_types": list(click_types)},
        )
        return [CtrRow(v, int(n), int(c), (c / n) if n else 0.0) for v, n, c in rows]

    def coverage(self, since: datetime, until: datetime, catalog_size: int) -> list[CoverageRow]:
        """Distinct recommended items / catalogue size, over all versions (first row) and per version."""
        rows = self._query(
            f"""
            SELECT if(grouping(algorithm_version) = 1, {{all:String}}, algorithm_version) AS version,
                   uniqExact(item_id)
            FROM {{db}}.recommendation_logs ARRAY JOIN items AS item_id
            WHERE {_RANGE}
            GROUP BY GROUPING SETS ((), (algorithm_version))
            ORDER BY grouping(algorithm_version) DESC, version
            """,
            {"since_ms": _ms(since), "until_ms": _ms(until), "all": ALL_VERSIONS},
        )
        return [CoverageRow(v, int(d), catalog_size, d / catalog_size if catalog_size else 0.0) for v, d in rows]

    def event_copies(self, source: str, event_ids: Sequence[str], *, final: bool = True) -> dict[str, int]:
        """Rows per event id of one source: as the queries see them after ReplacingMergeTree's
        collapse (``final``), or as stored right now, before background merges drop re-deliveries."""
        found: dict[str, int] = {}
        for start in range(0, len(event_ids), 10_000):
            rows = self._query(
                f"SELECT event_id, count() FROM {{db}}.events {'FINAL' if final else ''}"
                " WHERE source = {source:String} AND event_id IN {ids:Array(String)} GROUP BY event_id",
                {"source": source, "ids": list(event_ids[start:start + 10_000])})
            found.update({event_id: int(n) for event_id, n in rows})
        return found

    def ab_arms(self, since: datetime, until: datetime, *, click_types: Sequence[str] = ("click",),
                conversion_types: Sequence[str] = ("add_to_cart", "purchase"), by_hour: bool = False) -> list[AbRow]:
        """Per live A/B arm (and hour, with ``by_hour``): the lists served in [since, until), their
        users, and how many lists got a click / a conversion, joined by ``request_id`` (the
        feedback's). A re-delivered log row or event collapses in the grouping."""
        hour = "toStartOfHour(served_at)" if by_hour else "toDateTime64(0, 3, 'UTC')"
        rows = self._query(
            f"""
            WITH lists AS (
                SELECT request_id, any(variant) AS variant, any(user_id) AS user_id,
                       any(algorithm_version) AS version, min(timestamp) AS served_at
                FROM {{db}}.recommendation_logs WHERE {_RANGE} GROUP BY request_id
            ),
            outcomes AS (
                SELECT request_id, max(has({{click_types:Array(String)}}, event_type)) AS clicked,
                       max(has({{conversion_types:Array(String)}}, event_type)) AS converted
                FROM {{db}}.events
                WHERE request_id != '' AND timestamp >= fromUnixTimestamp64Milli({{since_ms:Int64}}, 'UTC')
                GROUP BY request_id
            )
            SELECT {hour} AS hour, l.variant, count(), uniqExact(l.user_id), sum(o.clicked), sum(o.converted),
                   arraySort(groupUniqArray(l.version))
            FROM lists AS l LEFT JOIN outcomes AS o ON l.request_id = o.request_id
            GROUP BY hour, l.variant ORDER BY hour, l.variant
            """,
            {"since_ms": _ms(since), "until_ms": _ms(until), "click_types": list(click_types),
             "conversion_types": list(conversion_types)},
        )
        return [AbRow(_utc(h) if by_hour else None, v, int(n), int(u), int(c), int(k), list(vs))
                for h, v, n, u, c, k, vs in rows]

    def compare_versions(self, since: datetime, until: datetime, *, catalog_size: int | None = None,
                         window_s: int = 1800, click_types: Sequence[str] = ("click",)) -> list[VersionRow]:
        """Side by side per algorithm version: traffic, latency, CTR, coverage, who served it."""
        base = self._query(
            f"""
            SELECT algorithm_version, count(), uniqExact(user_id),
                   quantilesExactInclusive({", ".join(map(str, QUANTILES))})(latency_ms),
                   sumMap(map(served_by, toUInt64(1)))
            FROM {{db}}.recommendation_logs WHERE {_RANGE}
            GROUP BY algorithm_version ORDER BY algorithm_version
            """,
            {"since_ms": _ms(since), "until_ms": _ms(until)},
        )
        ctr = {r.algorithm_version: r for r in self.click_through(since, until, window_s=window_s,
                                                                   click_types=click_types)}
        cov = {r.algorithm_version: r for r in self.coverage(since, until, catalog_size or 0)}
        out = []
        for version, n, users, q, served in base:
            c, v = ctr.get(version), cov.get(version)
            out.append(VersionRow(
                version, int(n), int(users), *map(float, q),
                impressions=c.impressions if c else 0, clicks=c.clicks if c else 0, ctr=c.ctr if c else 0.0,
                distinct_items=v.distinct_items if v else 0,
                coverage=(v.coverage if v else 0.0) if catalog_size else None,
                served_by={k: int(x) for k, x in dict(served).items()},
            ))
        return out
